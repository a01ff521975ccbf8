// File formats and the base every layer shares: user-input errors, dtypes, streaming safetensors, checkpoint
// folders (the sharded reader and the one sharded writer), CSV, atomic output, byte sizes, the PRNG and the
// normal quantile, and the GGUF v3 writer. Imports nothing else of the project.
export * from './errors';
export * from './dtype';
export * from './safetensors';
export * from './byte-source';
export * from './checkpoint';
export * from './sharded';
export * from './csv';
export * from './atomic';
export * from './bytes';
export * from './prng';
export * from './normal';
export * from './files';
export * from './output';
export * from './gguf';
