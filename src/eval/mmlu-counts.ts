// Rows per subject and split of the released MMLU (dev, val, test), as the evaluator expects them: a
// downloaded copy is checked against these before use. Totals: 285 dev, 1,531 val, 14,042 test.
import { EvalInputError } from './errors';
import { MmluDataset, SPLITS, Split, questionsOf } from './dataset';
import { SUBJECTS } from './subjects';

export const MMLU_ROW_COUNTS: Readonly<Record<string, readonly [dev: number, val: number, test: number]>> = {
  abstract_algebra: [5, 11, 100],
  anatomy: [5, 14, 135],
  astronomy: [5, 16, 152],
  business_ethics: [5, 11, 100],
  clinical_knowledge: [5, 29, 265],
  college_biology: [5, 16, 144],
  college_chemistry: [5, 8, 100],
  college_computer_science: [5, 11, 100],
  college_mathematics: [5, 11, 100],
  college_medicine: [5, 22, 173],
  college_physics: [5, 11, 102],
  computer_security: [5, 11, 100],
  conceptual_physics: [5, 26, 235],
  econometrics: [5, 12, 114],
  electrical_engineering: [5, 16, 145],
  elementary_mathematics: [5, 41, 378],
  formal_logic: [5, 14, 126],
  global_facts: [5, 10, 100],
  high_school_biology: [5, 32, 310],
  high_school_chemistry: [5, 22, 203],
  high_school_computer_science: [5, 9, 100],
  high_school_european_history: [5, 18, 165],
  high_school_geography: [5, 22, 198],
  high_school_government_and_politics: [5, 21, 193],
  high_school_macroeconomics: [5, 43, 390],
  high_school_mathematics: [5, 29, 270],
  high_school_microeconomics: [5, 26, 238],
  high_school_physics: [5, 17, 151],
  high_school_psychology: [5, 60, 545],
  high_school_statistics: [5, 23, 216],
  high_school_us_history: [5, 22, 204],
  high_school_world_history: [5, 26, 237],
  human_aging: [5, 23, 223],
  human_sexuality: [5, 12, 131],
  international_law: [5, 13, 121],
  jurisprudence: [5, 11, 108],
  logical_fallacies: [5, 18, 163],
  machine_learning: [5, 11, 112],
  management: [5, 11, 103],
  marketing: [5, 25, 234],
  medical_genetics: [5, 11, 100],
  miscellaneous: [5, 86, 783],
  moral_disputes: [5, 38, 346],
  moral_scenarios: [5, 100, 895],
  nutrition: [5, 33, 306],
  philosophy: [5, 34, 311],
  prehistory: [5, 35, 324],
  professional_accounting: [5, 31, 282],
  professional_law: [5, 170, 1534],
  professional_medicine: [5, 31, 272],
  professional_psychology: [5, 69, 612],
  public_relations: [5, 12, 110],
  security_studies: [5, 27, 245],
  sociology: [5, 22, 201],
  us_foreign_policy: [5, 11, 100],
  virology: [5, 18, 166],
  world_religions: [5, 19, 171],
};

/** Rows per split over all subjects. */
export function expectedMmluTotals(): Record<Split, number> {
  const totals = { dev: 0, val: 0, test: 0 };
  for (const counts of Object.values(MMLU_ROW_COUNTS)) SPLITS.forEach((s, i) => (totals[s] += counts[i]!));
  return totals;
}

/** Throws, naming the first subject and split that differ, unless every count is as expected. */
export function checkMmluRowCounts(ds: MmluDataset): Record<Split, number> {
  const totals = { dev: 0, val: 0, test: 0 };
  for (const subject of SUBJECTS) {
    const want = MMLU_ROW_COUNTS[subject];
    if (!want) throw new Error(`no expected row counts for subject ${subject}`);
    SPLITS.forEach((split, i) => {
      const got = questionsOf(ds, split, subject).length;
      if (got !== want[i]) {
        throw new EvalInputError(
          `${ds.source}: ${subject} has ${got} ${split} rows, the evaluator expects ${want[i]} (not the released MMLU?)`,
        );
      }
      totals[split] += got;
    });
  }
  return totals;
}
