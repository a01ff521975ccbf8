// `matformer-lab download-data mmlu`: the cais/mmlu parquet files, checked against the row counts the
// evaluator expects, ready for `eval --mmlu <dir>`.
import type { Argv, CommandModule } from 'yargs';
import { RepoRef } from '../../hub';
import { checkMmluRowCounts, loadMmlu } from '../../eval';
import { downloadWithProgress, hubFlags, hubOptions, summary } from './download';

/** The data sets this command knows: where they live and which files make them. */
const DATASETS = {
  mmlu: {
    repo: 'cais/mmlu',
    // all/ holds the 57 subjects in one file per split (the per-subject folders repeat the same rows).
    include: ['all/dev-*.parquet', 'all/validation-*.parquet', 'all/test-*.parquet'],
  },
} as const;

interface DownloadDataArgs {
  dataset: keyof typeof DATASETS;
  revision: string;
  token?: string;
  out?: string;
  force?: boolean;
}

export const downloadDataCommand: CommandModule<object, DownloadDataArgs> = {
  command: 'download-data <dataset>',
  describe: 'Download evaluation data from the Hugging Face Hub (mmlu: cais/mmlu, checked row by row count)',
  builder: (y: Argv<object>) =>
    y
      .positional('dataset', { choices: Object.keys(DATASETS), demandOption: true, describe: 'data set' })
      .options(hubFlags)
      .option('out', { alias: 'o', type: 'string', describe: 'output folder (default: ./<dataset>)' })
      .example(
        '$0 download-data mmlu --out ./mmlu',
        'then: $0 eval <model> --mmlu ./mmlu',
      ) as unknown as Argv<DownloadDataArgs>,
  handler: async (argv) => {
    const data = DATASETS[argv.dataset];
    const ref: RepoRef = { type: 'dataset', name: data.repo, revision: argv.revision };
    const outDir = argv.out ?? argv.dataset;
    const result = await downloadWithProgress(ref, data.include, outDir, {
      ...hubOptions(argv.token),
      force: argv.force,
    });
    const totals = checkMmluRowCounts(await loadMmlu(result.outDir));
    process.stdout.write(
      `downloaded ${summary(ref, result)}\n` +
        `mmlu: 57 subjects, ${totals.dev} dev, ${totals.val} val, ${totals.test} test rows, as the evaluator expects; ` +
        `use it with: matformer-lab eval <model> --mmlu ${outDir}\n`,
    );
  },
};
