// `matformer-lab download`: a checkpoint's files from the Hugging Face Hub, resumable and checksummed.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { OutputGuard, formatBytes } from '../../formats';
import {
  CHECKPOINT_FILES,
  DownloadResult,
  HubOptions,
  RepoRef,
  downloadFiles,
  parseRepoName,
  selectFiles,
  snapshotRepo,
} from '../../hub';
import { TransferProgress } from '../transfer-progress';

/** Hub address and credentials: `--token` or `HF_TOKEN`; `HF_ENDPOINT` points at another Hub. */
export function hubOptions(token: string | undefined): HubOptions {
  const retries = process.env.MATFORMER_HUB_RETRIES;
  return {
    hubUrl: process.env.HF_ENDPOINT || undefined,
    attempts: retries !== undefined && /^\d+$/.test(retries) ? Number(retries) + 1 : undefined,
    token: token ?? (process.env.HF_TOKEN || undefined),
    onRetry: (m) => process.stderr.write(`\nwarning: ${m}\n`),
  };
}

export const hubFlags = {
  revision: { type: 'string', default: 'main', describe: 'branch, tag or commit' },
  token: {
    type: 'string',
    describe: 'Hugging Face access token, for gated or private repositories (default: $HF_TOKEN)',
  },
  force: { type: 'boolean', describe: 'replace existing files that differ from the Hub' },
} as const;

const sizeOr0 = (p: string) => fs.statSync(p, { throwIfNoEntry: false })?.size ?? 0;

/** Downloads the selected files with a progress bar and returns what happened. */
export async function downloadWithProgress(
  ref: RepoRef,
  globs: readonly string[],
  outDir: string,
  opts: HubOptions & { force?: boolean },
): Promise<DownloadResult & { seconds: number }> {
  const started = Date.now();
  const snapshot = await snapshotRepo(ref, opts);
  const files = selectFiles(snapshot, globs);
  // Locked while it fills: a second download into the same folder refuses instead of sharing its partials.
  await fsp.mkdir(path.dirname(path.resolve(outDir)), { recursive: true });
  const guard = OutputGuard.acquire({
    outputs: [
      {
        flag: '--out',
        path: outDir,
        kind: 'folder',
        inPlace: true,
        bytes: files.reduce(
          (n, f) => n + f.size - (sizeOr0(path.join(outDir, f.path)) === f.size ? f.size : 0),
          0,
        ),
      },
    ],
    inputs: [],
  });
  const bar = new TransferProgress(`${ref.name}@${snapshot.commit.slice(0, 12)}`);
  try {
    const result = await downloadFiles(snapshot, files, {
      ...opts,
      outDir,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.stop();
    return { ...result, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    bar.stop();
    throw err;
  } finally {
    guard.release();
  }
}

export function summary(ref: RepoRef, r: DownloadResult & { seconds: number }): string {
  const count = (o: string) => r.files.filter((f) => f.outcome === o).length;
  const bytes = r.files.reduce((n, f) => n + f.bytes, 0);
  return (
    `${ref.name}@${r.commit.slice(0, 12)} in ${r.outDir}: ${r.files.length} files, ${formatBytes(bytes)} ` +
    `(${count('downloaded')} downloaded, ${count('resumed')} resumed, ${count('present')} already complete); ` +
    `received ${formatBytes(r.receivedBytes)} in ${r.seconds.toFixed(1)} s`
  );
}

interface DownloadArgs {
  repo: string;
  revision: string;
  token?: string;
  out?: string;
  include?: string[];
  force?: boolean;
}

export const downloadCommand: CommandModule<object, DownloadArgs> = {
  command: 'download <repo>',
  describe:
    'Download a checkpoint (shards, index, config, tokenizer, generation files) from the Hugging Face Hub',
  builder: (y: Argv<object>) =>
    y
      .positional('repo', {
        type: 'string',
        demandOption: true,
        describe: 'repository, e.g. google/gemma-3n-E4B',
      })
      .options(hubFlags)
      .option('out', { alias: 'o', type: 'string', describe: 'output folder (default: the repository name)' })
      .option('include', {
        type: 'string',
        array: true,
        describe: `only files matching these globs (default: ${CHECKPOINT_FILES.join(' ')})`,
      })
      .example(
        '$0 download google/gemma-3n-E4B --out ./gemma-3n-E4B',
        'HF_TOKEN of an account that accepted the license',
      )
      .example('$0 download google/gemma-3n-E4B --include config.json "tokenizer*"', 'only some files')
      .example(
        'HF_ENDPOINT=https://hub.example.org $0 download org/model',
        'another Hub',
      ) as unknown as Argv<DownloadArgs>,
  handler: async (argv) => {
    const ref: RepoRef = { type: 'model', name: parseRepoName(argv.repo, 'repo'), revision: argv.revision };
    const outDir = argv.out ?? path.basename(ref.name);
    const globs = argv.include && argv.include.length > 0 ? argv.include : CHECKPOINT_FILES;
    const result = await downloadWithProgress(ref, globs, outDir, {
      ...hubOptions(argv.token),
      force: argv.force,
    });
    process.stdout.write(`downloaded ${summary(ref, result)}\n`);
  },
};
