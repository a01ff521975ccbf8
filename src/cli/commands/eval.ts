// `matformer-lab eval`: MMLU with the lm-evaluation-harness protocol on a checkpoint or an elastic submodel.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { OutputGuard, UserInputError, checkpointFingerprint } from '../../formats';
import { EngineScorer, type Precision, openModel, resolveModelSpec } from '../../engine';
import { identitySpec, loadConfig, maxPositionEmbeddings } from '../../gemma3n';
import { ProgressBar } from '../progress';
import { MODEL_OPTIONS, type ModelFlags, intFlag, precisionFlag, seedFlag, specFlags } from '../flags';
import {
  type Agreement,
  EvalJournal,
  type EvalRecord,
  type Evaluation,
  type QuestionPrediction,
  type Subset,
  agreementJournalPath,
  agreementSample,
  agreementWith,
  PROMPT_PROTOCOL,
  type Progress,
  type SubsetSpec,
  checkPromptLengths,
  checkShots,
  evaluate,
  journalPath,
  loadMmlu,
  loadTokenizer,
  selectSubset,
  subsetId,
  writePredictionsJsonl,
  writeResults,
} from '../../eval';

interface EvalArgs extends ModelFlags {
  dir: string;
  mmlu?: string;
  split: string;
  subjects?: string;
  categories?: string;
  'limit-per-subject'?: number;
  sample?: number;
  seed: number;
  shots: number;
  'batch-size': number;
  out: string;
  predictions?: string;
  resume: boolean;
  force: boolean;
  'agreement-sample'?: number;
}

/** Questions of an int8 run also scored in exact mode unless --agreement-sample says otherwise. */
export const DEFAULT_AGREEMENT_SAMPLE = 100;

const list = (s: string | undefined): string[] | undefined =>
  s === undefined
    ? undefined
    : s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);

function positiveInt(flag: string, v: number | undefined): number | undefined {
  return v === undefined ? undefined : intFlag(flag, v, 1);
}

/** Progress of this run (resumed questions excluded, so rate and ETA are this run's), with absolute counts. */
function progressBar(
  total: number,
  resumed: number,
  label = 'eval',
): { update: (p: Progress) => void; bar: ProgressBar } {
  let last: Progress | null = null;
  const bar = new ProgressBar(Math.max(1, total - resumed), {
    label,
    stats: () => (last ? `${last.done}/${last.total} questions, ${last.questions_per_s.toFixed(2)} q/s` : ''),
  });
  return {
    bar,
    update: (p) => {
      last = p;
      bar.update(p.done - resumed);
    },
  };
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval <dir>',
  describe: 'Score MMLU (lm-evaluation-harness protocol) on a checkpoint or a Mix-n-Match submodel of it',
  builder: (y: Argv<object>) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'checkpoint folder' })
      .option('mmlu', {
        type: 'string',
        describe:
          'MMLU data: folder of hendrycks CSVs (dev/val/test), cais/mmlu parquet, or .jsonl (default: $MMLU_DIR)',
      })
      .option('split', { type: 'string', default: 'test', choices: ['test', 'val', 'dev'] })
      .option('subjects', {
        type: 'string',
        describe: 'comma-separated subjects, e.g. abstract_algebra,virology',
      })
      .option('categories', {
        type: 'string',
        describe: 'comma-separated: stem,humanities,social_sciences,other',
      })
      .option('limit-per-subject', { type: 'number', describe: 'first N questions of each subject' })
      .option('sample', { type: 'number', describe: 'N questions in total, stratified by subject' })
      .option('seed', { type: 'number', default: 0, describe: 'seed for --sample' })
      .option('shots', { type: 'number', default: 5, describe: 'few-shot examples from dev (0-5)' })
      .option('batch-size', {
        type: 'number',
        default: 8,
        describe: 'questions per forward against a shared prefix',
      })
      .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'results JSON' })
      .option('predictions', { type: 'string', describe: 'also write one JSON line per question here' })
      .option('resume', {
        type: 'boolean',
        default: false,
        describe:
          'continue an interrupted run (same --out, checkpoint, submodel, subset, shots; refused otherwise)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'replace existing --out/--predictions; discard an interrupted run that is not resumed',
      })
      .option('agreement-sample', {
        type: 'number',
        describe: `with --precision int8: also score N questions (round-robin over the subjects) in exact mode and report the agreement; 0 = off (default ${DEFAULT_AGREEMENT_SAMPLE}, or every question if fewer)`,
      })
      .options(MODEL_OPTIONS)
      .example('$0 eval ./gemma-3n-E4B --mmlu ./mmlu --limit-per-subject 10 --out e4b.json', '')
      .example(
        '$0 eval ./gemma-3n-E4B --mmlu ./mmlu --limit-per-subject 10 --precision int8 --agreement-sample 200 --out e4b-int8.json',
        'fast mode, its agreement with exact mode on 200 questions',
      )
      .example(
        '$0 eval ./gemma-3n-E4B --mmlu ./mmlu --preset "Config for E2.98B (layer-level)" --subjects virology --out e298.json --predictions e298.jsonl',
        '',
      ) as unknown as Argv<EvalArgs>,
  handler: async (argv) => {
    const source = argv.mmlu ?? process.env.MMLU_DIR;
    if (!source) throw new UserInputError('--mmlu: give the MMLU data folder (or set MMLU_DIR)');
    // Every flag is checked before anything is read or loaded.
    checkShots(argv.shots, '--shots');
    const spec: SubsetSpec = {
      split: argv.split as SubsetSpec['split'],
      subjects: list(argv.subjects),
      categories: list(argv.categories),
      limitPerSubject: positiveInt('--limit-per-subject', argv['limit-per-subject']),
      sample: positiveInt('--sample', argv.sample),
      seed: seedFlag('--seed', argv.seed),
    };
    const batchSize = intFlag('--batch-size', argv['batch-size'], 1, MAX_BATCH);
    const precision = precisionFlag(argv);
    const given = argv['agreement-sample'];
    if (given !== undefined && precision === 'exact')
      throw new UserInputError(
        '--agreement-sample: only with --precision int8 (exact mode agrees with itself)',
      );
    const sampleSize =
      precision === 'exact' ? 0 : intFlag('--agreement-sample', given ?? DEFAULT_AGREEMENT_SAMPLE, 0);
    const journalFile = journalPath(argv.out);
    // Outputs: not inside the checkpoint or the data, distinct, new unless --force, writable, locked.
    const guard = OutputGuard.acquire({
      outputs: [
        { flag: '--out', path: argv.out, kind: 'file' },
        ...(argv.predictions
          ? [{ flag: '--predictions', path: argv.predictions, kind: 'file' as const }]
          : []),
      ],
      inputs: [
        { flag: 'checkpoint', path: argv.dir },
        { flag: '--mmlu', path: source },
      ],
      reserved: [
        { flag: 'journal', path: journalFile },
        { flag: 'journal', path: agreementJournalPath(argv.out) },
      ],
      force: argv.force,
      onNotice: notice,
    });
    try {
      await run(argv, source, spec, batchSize, guard, journalFile, precision, sampleSize);
    } finally {
      guard.release();
    }
  },
};

const notice = (line: string) => process.stderr.write(`${line}\n`);

/** Far beyond any useful batch against one prefix; a typo such as 80000 would only exhaust memory. */
const MAX_BATCH = 4096;

async function run(
  argv: EvalArgs,
  source: string,
  spec: SubsetSpec,
  batchSize: number,
  guard: OutputGuard,
  journalFile: string,
  precision: Precision,
  sampleSize: number,
): Promise<void> {
  // Data, tokenizer, submodel and prompt lengths first: a bad flag or file fails before minutes of loading.
  const dataset = await loadMmlu(source);
  const subset = selectSubset(dataset, spec);
  if (subset.items.length === 0) throw new UserInputError('the subset flags select no questions');
  const tokenizer = await loadTokenizer(argv.dir);
  const config = loadConfig(argv.dir);
  checkPromptLengths(tokenizer, dataset, subset, argv.shots, maxPositionEmbeddings(config));
  const mnm = resolveModelSpec(argv.dir, specFlags(argv), warn);
  const header = {
    checkpoint: checkpointFingerprint(argv.dir),
    spec: mnm ?? identitySpec(config.text.intermediate_size),
    subset: subsetId(subset, argv.shots),
    shots: argv.shots,
    protocol: PROMPT_PROTOCOL,
  };
  const keys = (s: Subset) => new Set(s.items.map((it) => `${it.subject}#${it.index}`));
  const journal = EvalJournal.open(
    journalFile,
    { ...header, precision },
    { resume: argv.resume, force: argv.force, questions: keys(subset), onNotice: notice },
  );
  // The agreement sample has its own journal (exact mode), so a resumed int8 run neither rescores it nor
  // mixes its answers with the int8 ones; its subset id pins the sample size.
  const sample = agreementSample(subset, sampleSize);
  const sampleJournal =
    sample.items.length > 0
      ? EvalJournal.open(
          agreementJournalPath(argv.out),
          { ...header, subset: subsetId(sample, argv.shots), precision: 'exact' },
          { resume: argv.resume, force: argv.force, questions: keys(sample), onNotice: notice },
        )
      : null;
  const score = async (
    p: Precision,
    target: Subset,
    on: EvalJournal,
    label: string,
  ): Promise<Evaluation & { backend: string }> => {
    const { engine, model, loadSeconds } = await openModel(
      argv.dir,
      { submodel: specFlags(argv), backend: argv.backend, precision: p },
      { onWarning: warn, spec: mnm },
    );
    try {
      process.stderr.write(
        `loaded ${argv.dir} on ${engine.backend.name} (${engine.precision}) in ${loadSeconds.toFixed(1)} s; ` +
          `${target.items.length} questions, ${argv.shots}-shot${label === 'eval' ? '' : ` (${label})`}\n`,
      );
      const progress = progressBar(target.items.length, on.done.length, label);
      const out = await evaluate({
        scorer: new EngineScorer(model, { groupSize: batchSize }),
        tokenizer,
        dataset,
        subset: target,
        shots: argv.shots,
        batchSize,
        model: path.resolve(argv.dir),
        spec: mnm,
        onProgress: progress.update,
        onPredictions: (batch) => on.append(batch),
        done: on.done,
      });
      progress.bar.finish();
      return { ...out, backend: engine.backend.name };
    } finally {
      // One engine at a time: exact mode's weights are gone before int8's load.
      engine.dispose();
    }
  };

  // Exact mode on the sample first (skipped when a resumed run's journal already holds all of it).
  let exactSample: QuestionPrediction[] = [];
  if (sampleJournal) {
    exactSample =
      sampleJournal.done.length === sample.items.length
        ? [...sampleJournal.done]
        : (await score('exact', sample, sampleJournal, 'exact sample')).predictions;
  }
  const { results, predictions, backend } = await score(precision, subset, journal, 'eval');
  const agreement: Agreement | null = sampleJournal ? agreementWith(exactSample, predictions) : null;
  const record: EvalRecord = {
    ...results,
    backend,
    precision,
    agreement,
    predictions_file: argv.predictions ?? null,
  };
  if (argv.predictions) {
    await guard.writeFile('--predictions', (tmp) => writePredictionsJsonl(tmp, predictions));
  }
  await guard.writeFile('--out', (tmp) => writeResults(tmp, record));
  journal.remove();
  // Also a sample journal an earlier, interrupted run with another --agreement-sample left.
  fs.rmSync(agreementJournalPath(argv.out), { force: true });
  const o = results.overall;
  process.stdout.write(
    `accuracy ${(o.acc * 100).toFixed(2)}% (${o.correct}/${o.n}, 95% CI ${(o.ci[0] * 100).toFixed(1)}-${(o.ci[1] * 100).toFixed(1)}%); ` +
      `${results.timing.questions_per_s.toFixed(2)} q/s; tokens ${results.timing.tokens_processed} (naive ${results.timing.tokens_naive}); ` +
      `subset ${results.subset.id}; precision ${precision}` +
      (agreement ? `; ${describeAgreement(agreement)}` : '') +
      `; wrote ${argv.out}\n`,
  );
}

/** The summary's agreement clause: "agreement with exact on 100 questions: 98.0% same answers, ...". */
export function describeAgreement(a: Agreement): string {
  return (
    `agreement with ${a.with} on ${a.questions} questions: ${(a.predictions * 100).toFixed(1)}% same answers, ` +
    `|Δ log-prob| max ${a.max_dlogprob.toPrecision(3)} mean ${a.mean_dlogprob.toPrecision(3)}`
  );
}

const warn = (w: string) => process.stderr.write(`warning: ${w}\n`);
