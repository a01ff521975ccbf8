// `matformer-lab eval`: MMLU with the lm-evaluation-harness protocol on a checkpoint or an elastic submodel.
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { OutputGuard, UserInputError, checkpointFingerprint } from '../../formats';
import { ENGINE_PRECISION, EngineScorer, openModel, resolveModelSpec } from '../../engine';
import { identitySpec, loadConfig, maxPositionEmbeddings } from '../../gemma3n';
import { ProgressBar } from '../progress';
import { MODEL_OPTIONS, type ModelFlags, intFlag, seedFlag, specFlags } from '../flags';
import {
  EvalJournal,
  type EvalRecord,
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
}

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
function progressBar(total: number, resumed: number): { update: (p: Progress) => void; bar: ProgressBar } {
  let last: Progress | null = null;
  const bar = new ProgressBar(Math.max(1, total - resumed), {
    label: 'eval',
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
      .options(MODEL_OPTIONS)
      .example('$0 eval ./gemma-3n-E4B --mmlu ./mmlu --limit-per-subject 10 --out e4b.json', '')
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
      reserved: [{ flag: 'journal', path: journalFile }],
      force: argv.force,
      onNotice: notice,
    });
    try {
      await run(argv, source, spec, batchSize, guard, journalFile);
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
): Promise<void> {
  // Data, tokenizer, submodel and prompt lengths first: a bad flag or file fails before minutes of loading.
  const dataset = await loadMmlu(source);
  const subset = selectSubset(dataset, spec);
  if (subset.items.length === 0) throw new UserInputError('the subset flags select no questions');
  const tokenizer = await loadTokenizer(argv.dir);
  const config = loadConfig(argv.dir);
  checkPromptLengths(tokenizer, dataset, subset, argv.shots, maxPositionEmbeddings(config));
  const mnm = resolveModelSpec(argv.dir, specFlags(argv), warn);
  const journal = EvalJournal.open(
    journalFile,
    {
      checkpoint: checkpointFingerprint(argv.dir),
      spec: mnm ?? identitySpec(config.text.intermediate_size),
      subset: subsetId(subset, argv.shots),
      shots: argv.shots,
      protocol: PROMPT_PROTOCOL,
      precision: ENGINE_PRECISION,
    },
    {
      resume: argv.resume,
      force: argv.force,
      questions: new Set(subset.items.map((it) => `${it.subject}#${it.index}`)),
      onNotice: notice,
    },
  );
  const { engine, model, loadSeconds } = await openModel(
    argv.dir,
    { submodel: specFlags(argv), backend: argv.backend },
    { onWarning: warn, spec: mnm },
  );
  try {
    process.stderr.write(
      `loaded ${argv.dir} on ${engine.backend.name} in ${loadSeconds.toFixed(1)} s; ${subset.items.length} questions, ${argv.shots}-shot\n`,
    );
    const progress = progressBar(subset.items.length, journal.done.length);
    const { results, predictions } = await evaluate({
      scorer: new EngineScorer(model, { groupSize: batchSize }),
      tokenizer,
      dataset,
      subset,
      shots: argv.shots,
      batchSize,
      model: path.resolve(argv.dir),
      spec: mnm,
      onProgress: progress.update,
      onPredictions: (batch) => journal.append(batch),
      done: journal.done,
    });
    progress.bar.finish();
    const record: EvalRecord = {
      ...results,
      backend: engine.backend.name,
      predictions_file: argv.predictions ?? null,
    };
    if (argv.predictions) {
      await guard.writeFile('--predictions', (tmp) => writePredictionsJsonl(tmp, predictions));
    }
    await guard.writeFile('--out', (tmp) => writeResults(tmp, record));
    journal.remove();
    const o = results.overall;
    process.stdout.write(
      `accuracy ${(o.acc * 100).toFixed(2)}% (${o.correct}/${o.n}, 95% CI ${(o.ci[0] * 100).toFixed(1)}-${(o.ci[1] * 100).toFixed(1)}%); ` +
        `${results.timing.questions_per_s.toFixed(2)} q/s; tokens ${results.timing.tokens_processed} (naive ${results.timing.tokens_naive}); ` +
        `subset ${results.subset.id}; wrote ${argv.out}\n`,
    );
  } finally {
    engine.dispose();
  }
}

const warn = (w: string) => process.stderr.write(`warning: ${w}\n`);
