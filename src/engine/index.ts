// Public API of the TensorFlow.js inference core for Gemma 3n.
export {
  BACKEND_CHOICES,
  type BackendChoice,
  type BackendInfo,
  currentBackend,
  initBackend,
  installWebGpu,
  isSoftwareAdapter,
  webgpuUnavailableReason,
} from './backend';
export {
  Engine,
  type EngineLoadOptions,
  type GenerateOptions,
  type Positions,
  TextModel,
  type TokenBatch,
  submodelConfig,
} from './engine';
export { KvCache, PAD_KEY_POSITION, buildMasks } from './cache';
export { LmHead, type RestrictedRow } from './head';
export { EngineScorer, type ScorerOptions } from './scorer';
export { type Gemma3nTextConfig, type LayerPlan, gaussianZ, ropeInvFreq } from './gemma3n';
export { type BenchResult, runBench } from './bench';
export { type OpenOptions, type OpenedModel, openModel, parseIdList, stopTokenIds } from './session';
export { type LoadProgress, type ParentWeights, CheckpointTables, loadParentWeights } from './weights';
