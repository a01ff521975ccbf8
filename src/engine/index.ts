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
  ENGINE_PRECISION,
  Engine,
  type EngineLoadOptions,
  type GenerateOptions,
  type Positions,
  PausedForward,
  gpuWeightBytes,
  PRECISIONS,
  type Precision,
  type ViewOptions,
  TextModel,
  type TokenBatch,
  submodelConfig,
} from './engine';
export { KvCache, PAD_KEY_POSITION, buildMasks } from './cache';
export { LmHead, type RestrictedRow } from './head';
export { EngineScorer, type ScorerOptions } from './scorer';
export {
  type Gemma3nTextConfig,
  type LayerPlan,
  type SparsityStd,
  gaussianZ,
  ropeInvFreq,
  samePlan,
} from './gemma3n';
export { type BenchResult, benchPrompts, runBench } from './bench';
export {
  type OpenOptions,
  type OpenedModel,
  checkPromptIds,
  openModel,
  parseIdList,
  resolveModelSpec,
  stopTokenIds,
} from './session';
export {
  type LoadProgress,
  type ParentWeights,
  CheckpointTables,
  loadParentWeights,
  residentWeightBytes,
} from './weights';
export { type OpProfile, type PhaseProfile, countDispatches, profilePhase, renderProfile } from './profile';
export { LinearWeight, type WeightFormat, setGateUpFusion } from './kernels/linear';
export { int8MatMul, int8WeightBytes, quantizeInt8Into, quantizeRows } from './kernels/int8-matmul';
export { bf16MatMul, packBf16Transposed } from './kernels/bf16-matmul';
export {
  type MatMulKernel,
  kernelFor,
  kernelWorkgroupBytes,
  matMulTable,
  parseTable,
  setMatMulTable,
} from './kernels/matmul-table';
export {
  fusedGeluGate,
  fusedGeluGateOf,
  fusedNormAdd,
  fusedNormRope,
  fusedRmsNorm,
  fusedStreamsAdd,
} from './kernels/row-ops';
export { altupCorrect, altupPredict } from './kernels/altup';
export { altupRoute } from './kernels/altup-route';
export { fusedAttention, sharedPrefixAttention, packKeyPositions } from './kernels/attention';
