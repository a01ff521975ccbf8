export * from './errors';
export * from './dtype';
export * from './safetensors';
export * from './checkpoint';
export * from './config';
export * from './tensors';
export * from './spec';
export * from './accounting';
