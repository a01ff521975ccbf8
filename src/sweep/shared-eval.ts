// Shared evaluation: candidates run as a trie over their layer plans. Candidates whose first k layers are the
// same (same parent layer, width, KV role) run those layers once, for the few-shot prefix and for the question
// batches, and branch where they part; the branch point's states (AltUp streams, per-layer inputs, the K/V
// published so far) stay alive until every branch below it has run. Above a memory cap the question batches
// are split into passes (the prefix is recomputed per pass), down to one candidate at a time.
import type { LayerPlan, PausedForward, TextModel } from '../engine';

export interface ShareCandidate {
  /** Spec hash: the key of its scores. */
  readonly key: string;
  readonly model: TextModel;
}

export interface SharedEvalOptions {
  /** Suffixes per batch (as `eval --batch-size`). */
  readonly groupSize: number;
  /** Bytes of activations the branch points may hold before the batches are split into passes. */
  readonly memoryCap: number;
  /** false: every candidate alone (the baseline sharing is measured against). */
  readonly share: boolean;
}

export interface SharedScores {
  /** Per candidate: one row of log-probabilities (over the full vocabulary, at `choiceIds`) per suffix. */
  readonly scores: Map<string, number[][]>;
  /** Layer-token evaluations run, and what evaluating each candidate alone (prefix once) would run. */
  readonly layerTokensDone: number;
  readonly layerTokensUnshared: number;
}

interface TrieNode {
  /** Layers [from, to) of every candidate below, run by `model` (any of them: their plans are the same). */
  readonly from: number;
  readonly to: number;
  readonly model: TextModel;
  /** Candidates whose last layer is `to - 1`. */
  readonly ends: readonly ShareCandidate[];
  readonly children: readonly TrieNode[];
}

const planKey = (p: LayerPlan) =>
  `${p.parentIndex}/${p.ffn}/${p.kvRole}/${p.kvSource}/${p.kind}/${p.ropeTheta}/${p.sparsity}`;

/** The trie of candidates' layer plans from layer `depth` on, paths compressed. */
export function buildTrie(cands: readonly ShareCandidate[], depth = 0): TrieNode[] {
  const groups = new Map<string, ShareCandidate[]>();
  for (const c of cands) {
    const plan = c.model.cfg.layers[depth];
    if (!plan) continue;
    const k = planKey(plan);
    const g = groups.get(k) ?? [];
    groups.set(k, g);
    g.push(c);
  }
  return [...groups.values()].map((members) => {
    const first = members[0]!.model.cfg.layers;
    const shortest = Math.min(...members.map((m) => m.model.cfg.layers.length));
    let to = depth + 1;
    while (to < shortest && members.every((m) => planKey(m.model.cfg.layers[to]!) === planKey(first[to]!)))
      to++;
    return {
      from: depth,
      to,
      model: members[0]!.model,
      ends: members.filter((m) => m.model.cfg.layers.length === to),
      children: buildTrie(
        members.filter((m) => m.model.cfg.layers.length > to),
        to,
      ),
    };
  });
}

/** Layer evaluations of a trie (each node's layers once) against its candidates alone. */
export function trieLayers(nodes: readonly TrieNode[]): number {
  return nodes.reduce((n, t) => n + (t.to - t.from) + trieLayers(t.children), 0);
}

/**
 * Scores `suffixes` after `prefix` for every candidate, sharing common layers. `parent` begins every forward
 * (its per-layer inputs cover every layer a candidate keeps). Results equal each candidate's own evaluation.
 */
export async function scoreShared(
  parent: TextModel,
  cands: readonly ShareCandidate[],
  prefix: readonly number[],
  suffixes: readonly (readonly number[])[],
  choiceIds: readonly number[],
  opts: SharedEvalOptions,
): Promise<SharedScores> {
  const groups: (readonly number[])[][] = [];
  for (let i = 0; i < suffixes.length; i += opts.groupSize)
    groups.push(suffixes.slice(i, i + opts.groupSize));
  const tokens = prefix.length + suffixes.reduce((n, s) => n + s.length, 0);
  const unshared = cands.reduce((n, c) => n + c.model.cfg.layers.length * tokens, 0);
  const rows = new Map<string, number[][]>(cands.map((c) => [c.key, []]));
  const counter = { done: 0 };

  const passes = opts.share
    ? plan(parent, cands, prefix, groups, opts.memoryCap)
    : cands.map((c) => ({ cands: [c], groups }));
  for (const pass of passes) {
    const trie = buildTrie(pass.cands);
    const p0 = parent.beginPaused([prefix]);
    const g0: PausedForward[] = [];
    try {
      for (const g of pass.groups) g0.push(parent.beginPaused(g, p0));
      const out = new Map<string, number[][][]>();
      for (const node of trie) await walk(node, p0, g0, choiceIds, out, counter);
      for (const [k, perGroup] of out) rows.get(k)!.push(...perGroup.flat());
    } finally {
      g0.forEach((g) => g.dispose());
      p0.dispose();
    }
  }
  // Passes split batches in order, so each candidate's rows are in suffix order.
  return { scores: rows, layerTokensDone: counter.done, layerTokensUnshared: unshared };
}

async function walk(
  node: TrieNode,
  prefix: PausedForward,
  groups: readonly PausedForward[],
  choiceIds: readonly number[],
  out: Map<string, number[][][]>,
  counter: { done: number },
): Promise<void> {
  const p = node.model.advancePaused(prefix, node.to);
  const gs: PausedForward[] = [];
  try {
    for (const g of groups) gs.push(node.model.advancePaused(g, node.to, p));
    counter.done += (node.to - node.from) * (p.tokens + gs.reduce((n, g) => n + g.tokens, 0));
    for (const c of node.ends) {
      const perGroup: number[][][] = [];
      for (const g of gs) {
        const restricted = await c.model.restrictedLast(g, choiceIds);
        perGroup.push(restricted.map((r) => Array.from(r.logits, (z) => z - r.logsumexp)));
      }
      out.set(c.key, [...(out.get(c.key) ?? []), ...perGroup]);
    }
    for (const child of node.children) await walk(child, p, gs, choiceIds, out, counter);
  } finally {
    gs.forEach((g) => g.dispose());
    p.dispose();
  }
}

interface Pass {
  readonly cands: readonly ShareCandidate[];
  readonly groups: readonly (readonly number[])[][];
}

/**
 * Splits the work into passes whose branch points fit `cap`: all candidates on as many batches as fit (the
 * prefix recomputed per pass); when not even one batch fits, one candidate at a time.
 */
function plan(
  parent: TextModel,
  cands: readonly ShareCandidate[],
  prefix: readonly number[],
  groups: readonly (readonly number[])[][],
  cap: number,
): Pass[] {
  const trie = buildTrie(cands);
  const cfg = parent.cfg;
  const perToken = (cfg.altup_num_inputs + 1) * cfg.hidden_size * 4;
  const kvPerToken = 2 * cfg.num_key_value_heads * cfg.head_dim * 4;
  const bytes = (gs: readonly (readonly number[])[][]) => {
    const padded = gs.reduce((n, g) => n + g.length * Math.max(...g.map((s) => s.length)), 0);
    const attended = gs.reduce(
      (n, g) => n + g.length * (prefix.length + Math.max(...g.map((s) => s.length))),
      0,
    );
    const layer = (prefix.length + attended) * kvPerToken;
    const deepest = (nodes: readonly TrieNode[]): number =>
      Math.max(
        0,
        ...nodes.map(
          (t) => (prefix.length + padded) * perToken + (t.to - t.from) * layer + deepest(t.children),
        ),
      );
    return deepest(trie);
  };
  let per = groups.length;
  while (per > 1 && bytes(groups.slice(0, per)) > cap) per = Math.ceil(per / 2);
  if (bytes(groups.slice(0, per)) > cap) return cands.map((c) => ({ cands: [c], groups }));
  const passes: Pass[] = [];
  for (let i = 0; i < groups.length; i += per) passes.push({ cands, groups: groups.slice(i, i + per) });
  return passes;
}
