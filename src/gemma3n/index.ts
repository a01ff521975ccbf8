// Gemma 3n knowledge: the typed config, the tensor table, the submodel derivation and Mix-n-Match spec
// parsing, parameter accounting, Google's published presets, random checkpoints and the inspect report.
// Builds only on ../formats.
export * from './config';
export * from './tensors';
export * from './submodel';
export * from './spec';
export * from './accounting';
export * from './presets';
export * from './random';
export * from './inspect';
