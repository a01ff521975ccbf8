// One-process measurement run for the GPU machine (loads the full-size model once):
//   node dist/h200-run.js <checkpoint> <mmlu-dir> <out-dir> <ids64> <eval-budget-seconds>
// 1. bench: prefill of 8 x 512 tokens and decode steps;  2. logits of one 64-token sequence (saved for a
// side-by-side check against transformers);  3. MMLU 5-shot, 10 questions per subject, subject by subject
// until the time budget is spent (questions/s and tokens processed against the naive count).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineScorer, runBench, openModel } from '../../src/engine';
import { evaluate, loadMmlu, loadTokenizer, selectSubset, SUBJECTS } from '../../src/eval';
import { writeSafetensors } from '../../src/formats';

async function main(): Promise<void> {
  const [dir, mmlu, out, ids64, budget] = process.argv.slice(2);
  if (!dir || !mmlu || !out || !ids64 || !budget) {
    throw new Error('usage: h200-run <checkpoint> <mmlu-dir> <out-dir> <ids64> <eval-budget-seconds>');
  }
  const log = (k: string, v: unknown) => {
    const line = JSON.stringify({ [k]: v });
    process.stdout.write(line + '\n');
    fs.appendFileSync(path.join(out, 'ours.jsonl'), line + '\n');
  };
  const opened = await openModel(dir, { backend: 'webgpu' });
  log('load', { seconds: opened.loadSeconds, backend: opened.engine.backend });
  // MMLU_ONLY=1 skips the bench and the 64-token logits (a second run that only measures evaluation).
  if (process.env.MMLU_ONLY !== '1') {
    const bench = await runBench(opened, { batch: 8, tokens: 512, decodeSteps: 4, seed: 1 });
    log('bench', bench);
    const ids = ids64.split(',').map(Number);
    const t0 = performance.now();
    const [logits] = await opened.model.logits([ids]);
    if (!logits) throw new Error('the model returned no logits');
    log('logits64', { seconds: (performance.now() - t0) / 1000 });
    await writeSafetensors(path.join(out, 'ours64.safetensors'), [
      {
        name: 'logits.0',
        dtype: 'F32',
        shape: [ids.length, logits.length / ids.length],
        data: new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength),
      },
    ]);
  }
  const dataset = await loadMmlu(mmlu);
  const tokenizer = await loadTokenizer(dir);
  const scorer = new EngineScorer(opened.model, { groupSize: 10 });
  const start = performance.now();
  let questions = 0;
  let tokens = 0;
  let naive = 0;
  let correct = 0;
  for (const subject of SUBJECTS) {
    if ((performance.now() - start) / 1000 > Number(budget)) break;
    const subset = selectSubset(dataset, { subjects: [subject], limitPerSubject: 10 });
    const { results } = await evaluate({ scorer, tokenizer, dataset, subset, shots: 5, batchSize: 10 });
    questions += results.overall.n;
    correct += results.overall.correct;
    tokens += results.timing.tokens_processed;
    naive += results.timing.tokens_naive;
    const seconds = (performance.now() - start) / 1000;
    log('mmlu', {
      subject,
      questions,
      seconds,
      questions_per_s: questions / seconds,
      tokens_processed: tokens,
      tokens_naive: naive,
      acc: correct / questions,
    });
  }
  opened.engine.dispose();
}

main().catch((e: unknown) => {
  process.stderr.write(`h200-run failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
