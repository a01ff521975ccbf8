// `matformer-lab compare`: paired exact McNemar test between two evaluations of the same questions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { jsonText } from '../render/json';
import { UserInputError, fileProblem } from '../../formats';
import { type QuestionPrediction, mcnemarExact, readPredictionsJsonl } from '../../eval';

interface CompareArgs {
  a: string;
  b: string;
  alpha: number;
  json: boolean;
}

interface Side {
  file: string;
  subsetId: string | null;
  /** The results JSON's precision (exact, int8); null for a predictions JSONL or an older results file. */
  precision: string | null;
  predictions: QuestionPrediction[];
}

/** A results JSON (which names its predictions file) or a predictions JSONL. */
async function readSide(file: string): Promise<Side> {
  const problem = fileProblem(file);
  if (problem) throw new UserInputError(`${file}: ${problem}`);
  if (file.endsWith('.jsonl'))
    return { file, subsetId: null, precision: null, predictions: await readPredictionsJsonl(file) };
  let json: { predictions_file?: unknown; subset?: { id?: unknown }; precision?: unknown };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof json;
  } catch {
    throw new UserInputError(`${file}: expected a results JSON written by eval, or a predictions .jsonl`);
  }
  if (typeof json.predictions_file !== 'string') {
    throw new UserInputError(
      `${file}: has no predictions_file (run eval with --predictions, or pass the .jsonl)`,
    );
  }
  const preds = path.resolve(path.dirname(file), json.predictions_file);
  const alt = path.resolve(json.predictions_file);
  const target = fs.existsSync(preds) ? preds : alt;
  return {
    file,
    subsetId: typeof json.subset?.id === 'string' ? json.subset.id : null,
    precision: typeof json.precision === 'string' ? json.precision : null,
    predictions: await readPredictionsJsonl(target),
  };
}

export const compareCommand: CommandModule<object, CompareArgs> = {
  command: 'compare <a> <b>',
  describe: 'Paired exact McNemar test: does B (e.g. a submodel) score differently from A (e.g. its parent)?',
  builder: (y: Argv<object>) =>
    y
      .positional('a', { type: 'string', demandOption: true, describe: 'results JSON or predictions JSONL' })
      .positional('b', { type: 'string', demandOption: true, describe: 'results JSON or predictions JSONL' })
      .option('alpha', { type: 'number', default: 0.05, describe: 'significance level' })
      .option('json', { type: 'boolean', default: false })
      .example('$0 compare e4b.json e298.json', '') as unknown as Argv<CompareArgs>,
  handler: async (argv) => {
    if (!(argv.alpha > 0 && argv.alpha < 1)) throw new UserInputError(`--alpha: expected a number in (0, 1)`);
    const a = await readSide(argv.a);
    const b = await readSide(argv.b);
    if (a.subsetId && b.subsetId && a.subsetId !== b.subsetId) {
      process.stderr.write(
        `warning: subset ids differ (${a.subsetId} vs ${b.subsetId}); only shared questions are paired\n`,
      );
    }
    // Comparing fast mode with exact mode is a fair question, but it must say that it is one.
    if (a.precision && b.precision && a.precision !== b.precision) {
      process.stderr.write(
        `warning: precisions differ (A ${a.precision}, B ${b.precision}); the difference includes the fast mode's numerics\n`,
      );
    }
    const r = mcnemarExact(a.predictions, b.predictions, argv.alpha);
    if (r.paired === 0) throw new UserInputError(`${argv.a} and ${argv.b} share no questions`);
    if (argv.json) {
      process.stdout.write(jsonText({ ...r, precision: { a: a.precision, b: b.precision } }, 2) + '\n');
      return;
    }
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    process.stdout.write(
      [
        `paired questions: ${r.paired}` +
          (a.precision || b.precision
            ? ` (precision A ${a.precision ?? 'unknown'}, B ${b.precision ?? 'unknown'})`
            : ''),
        `accuracy A ${pct(r.accA)}  B ${pct(r.accB)}  (B - A = ${((r.accB - r.accA) * 100).toFixed(2)} points)`,
        `both right ${r.bothCorrect}, only A right ${r.onlyA}, only B right ${r.onlyB}, both wrong ${r.bothWrong}`,
        `exact McNemar p = ${r.pValue.toPrecision(3)}: ${
          r.significant
            ? `B differs significantly from A at alpha ${r.alpha}`
            : `no significant difference at alpha ${r.alpha}`
        }`,
      ].join('\n') + '\n',
    );
  },
};
