// Mix-n-Match slicing: pure planning from the tensor table and the submodel, streaming execution through the
// one sharded writer, the model card. Spec parsing lives in ../gemma3n.
export { planSlice, SlicePlanError, DEFAULT_MAX_SHARD_BYTES } from './plan';
export type { SlicePlan, PlannedTensor, PlannedShard, SliceOp, SourceTensor, LayerRow } from './plan';
export { executePlan, executePlans, sourceTensors, slicedConfigText, SliceAbortedError } from './execute';
export type { ExecuteOptions, ExecuteResult, PlanOutput } from './execute';
export { editJsonObject } from './config-text';
export { renderCard, reproduceCommand, shellQuote, sliceCommandLine } from './card';
export { LAYER_HEADER, formatParams, layerRows, markdownTable, summaryRows } from './summary';
export { sliceCheckpoint } from './run';
export type { SliceOptions, SliceOutcome, OpenedParent } from './run';
export { planReads } from './reads';
export type { ReadPlan, TensorLocation } from './reads';
