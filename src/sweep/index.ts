// Public API of sweeps: search Mix-n-Match submodels from a sweep file, results in a store (SQLite, or
// PostgreSQL shared by distributed workers), computation shared across candidates.
export {
  type CandidateEntry,
  type Metric,
  type ParamsBound,
  type Strategy,
  type SweepData,
  type SweepFile,
  DEFAULT_MEMORY_CAP,
  SweepFileError,
  parseSweep,
  readSweepFile,
} from './sweep-file';
export {
  type Candidate,
  E2B_PRESET,
  canonicalSpec,
  describeSpec,
  makeCandidate,
  specHash,
  sweepCandidates,
} from './candidates';
export {
  type Round,
  firstRound,
  nestedOrder,
  nextRound,
  roundPrecision,
  roundSizes,
  sensitivitySpecs,
} from './strategy';
export {
  type BatchStats,
  type ResultScope,
  type RunInfo,
  type RunRecord,
  type SensitivityRow,
  type StoredCandidate,
  type StoredRound,
  type SweepStore,
  MIGRATIONS,
  PROTOCOL_VERSION,
  SCHEMA,
  SCHEMA_VERSION,
  SqliteSweepStore,
  StoreError,
} from './store';
export { modelFingerprint } from './fingerprint';
export { type SensitivityPrior, predictedDrops, sensitivityPrior } from './prior';
export {
  type ShareCandidate,
  type SharedEvalOptions,
  type SharedScores,
  buildTrie,
  scoreShared,
  trieLayers,
} from './shared-eval';
export { type CandidateResult, againstParent, candidateResult } from './metrics';
export { type SweepOutcome, type SweepProgress, type SweepRunOptions, runSweep, sweepHash } from './run';
export { type CandidateReport, type RunReport, runReport } from './report';
export {
  type BestSelection,
  type ExportBestOptions,
  type ExportedCandidate,
  bestCandidates,
  bestOutputName,
  exportBest,
  measuredSection,
  selectBest,
} from './export';
export { type SweepPlan, checkFastRungs, planSweep } from './plan';
export { type OpenStoreOptions, closeSweepStore, openSweepStore } from './open-store';
export {
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  PostgresSweepStore,
  checkPostgresUrl,
  isPostgresUrl,
  redactUrl,
} from './pg-store';
export {
  type DistributedProgress,
  type EnqueueOutcome,
  type JobSettings,
  DEFAULT_JOB_SETTINGS,
  checkEnqueueable,
  distributedProgress,
  enqueueSweep,
  planJobs,
  prefixOrder,
} from './queue';
export { type WorkerOptions, type WorkerOutcome, runWorker } from './worker';
