/**
 * The 57 MMLU subjects and the lm-evaluation-harness category of each (its `_generate_configs.py` mapping;
 * it puts `anatomy` in STEM, unlike hendrycks' `categories.py`). Order: categories as the harness lists them,
 * subjects alphabetical within each.
 */
export const CATEGORIES = ['stem', 'humanities', 'social_sciences', 'other'] as const;
export type Category = (typeof CATEGORIES)[number];

const TABLE: Record<Category, readonly string[]> = {
  stem: [
    'abstract_algebra',
    'anatomy',
    'astronomy',
    'college_biology',
    'college_chemistry',
    'college_computer_science',
    'college_mathematics',
    'college_physics',
    'computer_security',
    'conceptual_physics',
    'electrical_engineering',
    'elementary_mathematics',
    'high_school_biology',
    'high_school_chemistry',
    'high_school_computer_science',
    'high_school_mathematics',
    'high_school_physics',
    'high_school_statistics',
    'machine_learning',
  ],
  humanities: [
    'formal_logic',
    'high_school_european_history',
    'high_school_us_history',
    'high_school_world_history',
    'international_law',
    'jurisprudence',
    'logical_fallacies',
    'moral_disputes',
    'moral_scenarios',
    'philosophy',
    'prehistory',
    'professional_law',
    'world_religions',
  ],
  social_sciences: [
    'econometrics',
    'high_school_geography',
    'high_school_government_and_politics',
    'high_school_macroeconomics',
    'high_school_microeconomics',
    'high_school_psychology',
    'human_sexuality',
    'professional_psychology',
    'public_relations',
    'security_studies',
    'sociology',
    'us_foreign_policy',
  ],
  other: [
    'business_ethics',
    'clinical_knowledge',
    'college_medicine',
    'global_facts',
    'human_aging',
    'management',
    'marketing',
    'medical_genetics',
    'miscellaneous',
    'nutrition',
    'professional_accounting',
    'professional_medicine',
    'virology',
  ],
};

/** subject -> category, in alphabetical subject order (the order used for every per-subject listing). */
export const SUBJECT_CATEGORY: ReadonlyMap<string, Category> = new Map(
  CATEGORIES.flatMap((c) => TABLE[c].map((s) => [s, c] as const)).sort((a, b) => (a[0] < b[0] ? -1 : 1)),
);

export const SUBJECTS: readonly string[] = [...SUBJECT_CATEGORY.keys()];

export function isSubject(s: string): boolean {
  return SUBJECT_CATEGORY.has(s);
}

export function categoryOf(subject: string): Category {
  const c = SUBJECT_CATEGORY.get(subject);
  if (!c) throw new Error(`unknown MMLU subject ${JSON.stringify(subject)}`);
  return c;
}

export function isCategory(s: string): s is Category {
  return (CATEGORIES as readonly string[]).includes(s);
}
