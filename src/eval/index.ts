// Public API of the MMLU evaluation stages (lm-evaluation-harness `mmlu` protocol).
export { EvalInputError } from './errors';
export { CATEGORIES, SUBJECTS, type Category, categoryOf } from './subjects';
export {
  LETTERS,
  SPLITS,
  type Letter,
  type Split,
  type MmluDataset,
  type MmluQuestion,
  loadMmlu,
  questionsOf,
} from './dataset';
export { type Subset, type SubsetItem, type SubsetSpec, selectSubset, subsetId, uniform01 } from './subset';
export { type TextCodec, type TextTokenizer, choiceTokenIds, loadTokenizer } from './tokenizer';
export { GEMMA_TEXT_VOCAB, MIN_CUT_VOCAB, type TokenizerFiles, cutGemmaTokenizer } from './small-vocab';
export {
  type TokenizedPrompt,
  PROMPT_PROTOCOL,
  checkShots,
  fewShotPrefix,
  formatQuestion,
  promptText,
  tokenizeSubject,
} from './prompts';
export { checkPromptLengths } from './limits';
export { EvalJournal, type JournalHeader, agreementJournalPath, journalPath } from './journal';
export { type Agreement, agreementSample, agreementWith } from './agreement';
export {
  type Accuracy,
  type Aggregate,
  type QuestionPrediction,
  aggregate,
  predict,
  wilsonInterval,
} from './scoring';
export { type McNemarResult, mcnemarExact } from './compare';
export { type FrontierPoint, paretoFrontier } from './pareto';
export type { ChoiceScorer } from './model';
export {
  RESULTS_VERSION,
  type EvalRecord,
  type EvalResults,
  type EvaluateOptions,
  type Evaluation,
  type Progress,
  evaluate,
  readPredictionsJsonl,
  parsePredictionLine,
  writePredictionsJsonl,
  writeResults,
} from './run';
export { MMLU_ROW_COUNTS, checkMmluRowCounts, expectedMmluTotals } from './mmlu-counts';
