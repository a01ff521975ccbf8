// Public API of Mix-n-Match slicing: spec parsing, pure planning, streaming execution.
export {
  SliceSpecError,
  parseSpecFlags,
  resolveSpec,
  validateSpec,
  parseSkipList,
  parseWidthList,
  parentBlocks,
  expandBlocks,
  findPreset,
  readSpecFile,
  runLength,
  rangeList,
  TRAINED_WIDTHS,
} from './spec';
export type { SpecFlags, ResolvedSpec } from './spec';
export { planSlice, SlicePlanError, DEFAULT_MAX_SHARD_BYTES } from './plan';
export type { SlicePlan, PlannedTensor, PlannedShard, SliceOp, SourceTensor, LayerRow } from './plan';
export { executePlan, sourceTensors, checkOutput, SliceOutputError, SliceAbortedError } from './execute';
export type { ExecuteOptions, ExecuteResult } from './execute';
export { renderCard, reproduceCommand } from './card';
export { formatPlan } from './format';
export { sliceCheckpoint } from './run';
export type { SliceOptions, SliceOutcome, OpenedParent } from './run';
export { planReads } from './reads';
export type { ReadPlan, TensorLocation } from './reads';
