// Read-throughput benchmark of the project's own streaming reader (src/formats): reads every tensor of a
// checkpoint in file order with positional reads into one reused buffer, and reports bytes/s and peak RSS.
// Built to dist/bench-read.js by `npm run build`. Compare with `cat <shards> > /dev/null`; drop the page
// cache between runs (`sync; echo 3 > /proc/sys/vm/drop_caches`) to measure the disk.
//
//   node dist/bench-read.js <checkpoint-dir> [--chunk-mb 4] [--json]
import * as path from 'node:path';
import { Checkpoint, UserInputError } from '../src/formats';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`error: ${msg}\n`);
  process.stderr.write('usage: node dist/bench-read.js <checkpoint-dir> [--chunk-mb 4] [--json]\n');
  process.exit(2);
}

function parseArgs(argv: string[]): { dir: string; chunkMb: number; json: boolean } {
  let dir: string | null = null;
  let chunkMb = 4;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--chunk-mb') {
      chunkMb = Number(argv[++i]);
      if (!Number.isInteger(chunkMb) || chunkMb <= 0) usage('--chunk-mb needs a positive integer');
    } else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (dir === null) dir = a;
    else usage(`unexpected argument ${a}`);
  }
  if (dir === null) usage('give a checkpoint folder');
  return { dir, chunkMb, json };
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const chunk = opts.chunkMb * 1024 * 1024;
  const buf = new Uint8Array(chunk);
  let ckpt: Checkpoint;
  try {
    ckpt = Checkpoint.open(opts.dir);
  } catch (e) {
    if (e instanceof UserInputError) usage(e.message);
    throw e;
  }
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  let tensors = 0;
  try {
    for (const shard of ckpt.shards) {
      for (const t of shard.list()) {
        tensors++;
        const size = t.end - t.begin;
        for (let done = 0; done < size; done += chunk) {
          bytes += shard.readRange(t, done, Math.min(chunk, size - done), buf).byteLength;
        }
      }
    }
  } finally {
    ckpt.close();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const result = {
    dir: path.resolve(opts.dir),
    files: ckpt.shards.length,
    tensors,
    bytes,
    seconds,
    bytes_per_second: bytes / seconds,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    chunk_bytes: chunk,
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const mb = (n: number) => (n / 1e6).toFixed(1);
  process.stdout.write(
    `${result.dir}: read ${tensors} tensors, ${mb(bytes)} MB from ${result.files} file(s) in ${seconds.toFixed(3)} s = ` +
      `${mb(result.bytes_per_second)} MB/s; peak RSS ${mb(result.peak_rss_bytes)} MB (chunk ${opts.chunkMb} MiB)\n`,
  );
}

main();
