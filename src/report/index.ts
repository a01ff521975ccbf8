// Public API of the HTML report: a pure function from a sweep's results (`results --json`) to one page.
export type {
  CandidateResult,
  CategoryResult,
  Rung,
  SensitivityEntry,
  SweepCandidate,
  SweepResults,
  SweepRun,
} from './types';
export { JsonReader, ReportInputError, isSweepResults, parseSweepResults } from './parse';
export {
  type EvalSummary,
  type FromEvalsOptions,
  isEvalResults,
  parseEvalResults,
  sweepResultsFromEvals,
} from './from-evals';
export { type FrontierPoint, paretoFrontier } from './pareto';
export { candidateName, escapeHtml, fileSafeName, formatParams, specSummary, widthsByLayer } from './figures';
export {
  CHANCE_ACCURACY,
  type ReportOptions,
  chanceWarning,
  renderReport,
  scriptJson,
  selectRun,
  sensitivityRun,
} from './html';
export { PLOTLY_BUNDLE, loadPlotlyBundle, plotlyBundlePath } from './plotly';
