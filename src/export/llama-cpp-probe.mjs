// Runs a GGUF in llama.cpp (through node-llama-cpp, which is ESM-only) in its own process, so a loader
// abort cannot take the caller down. Reads {gguf, prompts, greedy} as JSON on stdin; writes, per prompt,
// the token ids (BOS first), the top-1 token after every position, log p of every token after the last
// position, and a greedy continuation, as JSON on stdout. Input may also give `threads`.
import * as os from 'node:os';
import process from 'node:process';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const input = JSON.parse(
  await new Promise((resolve) => {
    let s = '';
    process.stdin.on('data', (d) => (s += d));
    process.stdin.on('end', () => resolve(s));
  }),
);
// Threads as asked: on a busy machine, fewer threads are much faster (llama.cpp's threads spin-wait).
const threads = Math.max(1, Number(input.threads) || os.availableParallelism());
const llama = await getLlama({
  gpu: false,
  build: 'never',
  logLevel: LlamaLogLevel.error,
  maxThreads: threads,
});
const model = await llama.loadModel({ modelPath: input.gguf });
const runs = [];
const withProbs = (t) => [t, { generateNext: { probabilities: true } }];
const top = (o) => Number(o?.next?.probabilities?.keys().next().value ?? -1);
for (const text of input.prompts) {
  const bos = model.tokens.bos;
  const ids = [...(bos === null ? [] : [bos]), ...model.tokenize(text)].map(Number);
  // F32 KV cache: the default F16 cache would add its own rounding to the comparison.
  const ctx = await model.createContext({
    contextSize: Math.max(64, ids.length + input.greedy + 8),
    batchSize: Math.max(64, ids.length),
    threads,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  const seq = ctx.getSequence();
  const out = await seq.controlledEvaluate(ids.map(withProbs));
  const last = out[out.length - 1].next.probabilities;
  const lastLogProbs = new Array(last.size).fill(null);
  for (const [tok, p] of last) lastLogProbs[Number(tok)] = p > 0 ? Math.log(p) : null;
  const top1 = out.map(top);
  const greedy = [];
  let next = top1[top1.length - 1];
  for (let k = 0; k < input.greedy; k++) {
    greedy.push(next);
    if (k === input.greedy - 1) break;
    next = top((await seq.controlledEvaluate([withProbs(next)]))[0]);
  }
  runs.push({ ids, top1, lastLogProbs, greedy });
  await ctx.dispose();
}
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify({ runs }));
