import { LETTERS, type MmluDataset, type MmluQuestion, questionsOf } from './dataset';
import { EvalInputError } from './errors';
import type { TextTokenizer } from './tokenizer';

export const MAX_SHOTS = 5;

/** Version of the prompts below: recorded in eval journals, so answers from other prompts are never mixed. */
export const PROMPT_PROTOCOL = 'harness-mmlu-1';

/** The harness's per-subject description line, ending in the blank line (`\n\n`, harness ≥ PR #2116). */
export function description(subject: string): string {
  return `The following are multiple choice questions (with answers) about ${subject.replace(/_/g, ' ')}.\n\n`;
}

/** One question as the harness renders it: only the question is stripped; no newline after `Answer:`. */
export function formatQuestion(q: MmluQuestion, withAnswer: boolean): string {
  const lines = [q.question.trim(), ...q.choices.map((c, i) => `${LETTERS[i]}. ${c}`), 'Answer:'];
  return lines.join('\n') + (withAnswer ? ` ${LETTERS[q.answer]}` : '');
}

export function checkShots(shots: number, name = 'shots'): void {
  if (!Number.isInteger(shots) || shots < 0 || shots > MAX_SHOTS) {
    throw new EvalInputError(`${name}: expected an integer from 0 to ${MAX_SHOTS}, got ${shots}`);
  }
}

/** Description + the first `shots` dev rows in file order, each followed by `\n\n`: shared by a whole subject. */
export function fewShotPrefix(ds: MmluDataset, subject: string, shots: number): string {
  checkShots(shots);
  const dev = questionsOf(ds, 'dev', subject);
  if (dev.length < shots) {
    throw new EvalInputError(
      `${ds.source}: ${subject} has ${dev.length} dev rows, ${shots}-shot needs ${shots}`,
    );
  }
  return (
    description(subject) +
    dev
      .slice(0, shots)
      .map((d) => formatQuestion(d, true) + '\n\n')
      .join('')
  );
}

/** The whole prompt text (prefix + question); the model scores `" A"`..`" D"` after it. */
export function promptText(ds: MmluDataset, q: MmluQuestion, shots: number): string {
  return fewShotPrefix(ds, q.subject, shots) + formatQuestion(q, false);
}

/**
 * A question's tokens as `prefix ++ suffix`. `prefix` is the subject's shared few-shot prefix (same array for
 * every question of the subject, so its KV cache can be reused) when tokenising the parts separately gives
 * exactly the whole prompt's ids; otherwise (`reuse` false) prefix is just `<bos>` and suffix the rest.
 */
export interface TokenizedPrompt {
  question: MmluQuestion;
  prefix: readonly number[];
  suffix: readonly number[];
  reuse: boolean;
}

/** Tokenises one subject's questions, checking the prefix/suffix split per question. */
export function tokenizeSubject(
  tok: TextTokenizer,
  ds: MmluDataset,
  questions: readonly MmluQuestion[],
  shots: number,
): TokenizedPrompt[] {
  const first = questions[0];
  if (first === undefined) return [];
  const prefixText = fewShotPrefix(ds, first.subject, shots);
  const prefix = tok.encode(prefixText, true);
  const bos = [tok.bosId];
  return questions.map((q) => {
    const suffixText = formatQuestion(q, false);
    const whole = tok.encode(prefixText + suffixText, true);
    const suffix = tok.encode(suffixText, false);
    const reuse =
      whole.length === prefix.length + suffix.length &&
      startsWith(whole, prefix, 0) &&
      startsWith(whole, suffix, prefix.length);
    return reuse
      ? { question: q, prefix, suffix, reuse }
      : { question: q, prefix: bos, suffix: whole.slice(1), reuse };
  });
}

function startsWith(a: readonly number[], b: readonly number[], at: number): boolean {
  for (let i = 0; i < b.length; i++) if (a[at + i] !== b[i]) return false;
  return true;
}
