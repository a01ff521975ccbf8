// Public API of export to other runtimes: the compatibility matrix, the GGUF plan and writer, the
// vocabulary, and --verify's fidelity measurement.
export {
  TARGETS,
  LLAMA_CPP_FIXED,
  compatibilityMatrix,
  formatMatrix,
  llamaCppReasons,
  matrixJson,
  padFfnProblem,
  submodelFacts,
} from './compat';
export type { CompatRow, SubmodelFacts, Target, MatrixOptions } from './compat';
export { GGUF_GLOBAL_TENSORS, GGUF_LAYER_TENSORS } from './gguf-tensors';
export type { GgufFamily } from './gguf-tensors';
export {
  GgufPlanError,
  GGML_TYPE_OF,
  idToTitle,
  planGgufExport,
  sizeLabel,
  tokenizerKeys,
} from './gguf-plan';
export type { ExportDtype, GgufPlan, GgufPlanOptions, GgufTensorPlan, Provenance } from './gguf-plan';
export { writeGgufPlan, DEFAULT_EXPORT_CHUNK_BYTES } from './gguf-write';
export {
  TokenType,
  VocabError,
  encodeSentencePieceModel,
  loadGgufVocab,
  parseSentencePieceModel,
} from './vocab';
export type { GgufVocab, SentencePiece } from './vocab';
export { VERIFY_PROMPTS, centredRelRms, fidelityMarkdown, verifyGguf } from './verify';
export type { FidelityReport, FidelityRow, VerifyOptions } from './verify';
export { renderGgufCard } from './card';
export {
  ExportRefusedError,
  cardPathFor,
  checkExport,
  exportGgufs,
  exportModel,
  ggufRefusal,
  refusal,
  sourceFingerprint,
} from './run';
export type {
  ExportCheck,
  ExportFormat,
  ExportOptions,
  ExportResult,
  GgufBatchOptions,
  GgufJob,
} from './run';
