// The report's plots as plotly figure objects (data + layout), computed here so the page only hands them to
// Plotly.newPlot. Every string that reaches a hover label is HTML-escaped: plotly renders a subset of HTML in
// labels, so user-controlled names must not carry markup.
import { type PublishedConfig, rangeList, runLength } from '../gemma3n';
import type { SweepCandidate, SweepRun } from './types';

export interface Figure {
  /** Element id of the plot's container. */
  readonly id: string;
  readonly title: string;
  /** One sentence under the title saying how to read the plot. */
  readonly caption: string;
  readonly data: readonly object[];
  readonly layout: object;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** 4,214,256 → "4.21 M"; 3.98e9 → "3.980 B". */
export function formatParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(3)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

export const pct = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)}%`;

/** `skip 20-24 · ffn 8192x20,16384x10` (the spec in the flags' own notation). */
export function specSummary(spec: SweepCandidate['spec']): string {
  return `${spec.skip.length > 0 ? `skip ${rangeList(spec.skip)} · ` : ''}ffn ${runLength(spec.ffn)}`;
}

/** FFN width per parent layer, null where the layer is skipped. */
export function widthsByLayer(spec: SweepCandidate['spec'], depth: number): (number | null)[] {
  const skip = new Set(spec.skip);
  const out: (number | null)[] = [];
  let k = 0;
  for (let l = 0; l < depth; l++) out.push(skip.has(l) ? null : (spec.ffn[k++] ?? null));
  return out;
}

const metricName = (run: SweepRun) =>
  run.metric === 'agreement' ? 'top-1 agreement with the parent' : 'MMLU accuracy';

/** `name` with everything but letters, digits, `_`, `.` and `-` replaced, for file and folder names. */
export const fileSafeName = (name: string): string => name.replace(/[^A-Za-z0-9_.-]/g, '_');

/** The label where the input has one (ids may be spec hashes), else the id. */
export const candidateName = (c: SweepCandidate): string => c.label ?? String(c.id);

const candidateLabel = (c: SweepCandidate) => `${candidateName(c)} (${formatParams(c.params.effective)})`;

function hoverOf(c: SweepCandidate, run: SweepRun): string {
  const r = c.result!;
  const lines = [
    `<b>${escapeHtml(candidateName(c))}</b>${c.preset ? ` · ${escapeHtml(c.preset)}` : ''}${c.pareto ? ' · frontier' : ''}`,
    `${formatParams(c.params.effective)} effective parameters`,
    `${escapeHtml(metricName(run))}: ${pct(r.metric)} (95% CI ${pct(r.ci[0])}-${pct(r.ci[1])}), n=${r.n}`,
    ...(run.metric === 'agreement' ? [`accuracy: ${pct(r.acc)}`] : []),
    escapeHtml(specSummary(c.spec)),
  ];
  return lines.join('<br>');
}

/**
 * Pareto scatter: every scored candidate with its interval, the frontier, and Google's published configs.
 * The published points share the axes only when they measure the same thing at the same scale (MMLU
 * accuracy of a model of billions of parameters); otherwise they get their own top/right axes.
 */
export function paretoFigure(
  run: SweepRun,
  scored: readonly SweepCandidate[],
  published: readonly PublishedConfig[],
): Figure {
  const y = (c: SweepCandidate) => c.result!.metric * 100;
  const maxParams = Math.max(...scored.map((c) => c.params.effective));
  const sameAxes = run.metric === 'accuracy' && maxParams >= 5e8;
  const frontier = scored.filter((c) => c.pareto).sort((a, b) => a.params.effective - b.params.effective);
  const data: object[] = [
    {
      name: 'candidates',
      type: 'scatter',
      mode: 'markers',
      x: scored.map((c) => c.params.effective),
      y: scored.map(y),
      error_y: {
        type: 'data',
        symmetric: false,
        array: scored.map((c) => (c.result!.ci[1] - c.result!.metric) * 100),
        arrayminus: scored.map((c) => (c.result!.metric - c.result!.ci[0]) * 100),
        thickness: 1,
        width: 3,
        color: '#9aa5b1',
      },
      marker: {
        size: scored.map((c) => (c.pareto ? 10 : 7)),
        color: scored.map((c) => (c.pareto ? '#d62728' : '#4c78a8')),
        line: { width: 1, color: '#ffffff' },
      },
      hovertext: scored.map((c) => hoverOf(c, run)),
      hoverinfo: 'text',
    },
    {
      name: 'frontier',
      type: 'scatter',
      mode: 'lines',
      line: { shape: 'hv', color: '#d62728', width: 2 },
      x: frontier.map((c) => c.params.effective),
      y: frontier.map(y),
      hoverinfo: 'skip',
    },
  ];
  if (published.length > 0) {
    data.push({
      name: 'published (Google, E4B)',
      type: 'scatter',
      mode: 'markers',
      marker: { symbol: 'diamond', size: 8, color: '#2ca02c' },
      x: published.map((p) => p.effectiveParamsB * 1e9),
      y: published.map((p) => p.mmluPct),
      hovertext: published.map((p) =>
        [
          `<b>${escapeHtml(p.name)}</b> (published)`,
          `${p.effectiveParamsB} B effective parameters, MMLU ${p.mmluPct}%`,
          escapeHtml(specSummary(p)),
        ].join('<br>'),
      ),
      hoverinfo: 'text',
      ...(sameAxes ? {} : { xaxis: 'x2', yaxis: 'y2' }),
    });
  }
  const layout: Record<string, unknown> = {
    height: 480,
    margin: { l: 70, r: sameAxes ? 30 : 70, t: sameAxes ? 30 : 70, b: 60 },
    hovermode: 'closest',
    legend: { orientation: 'h', y: -0.18 },
    xaxis: { title: { text: 'effective parameters' }, zeroline: false },
    yaxis: { title: { text: `${metricName(run)} (%)` }, zeroline: false },
  };
  if (!sameAxes && published.length > 0) {
    layout.xaxis2 = {
      title: { text: 'published configs: effective parameters' },
      overlaying: 'x',
      side: 'top',
      showgrid: false,
      color: '#2ca02c',
    };
    layout.yaxis2 = {
      title: { text: 'published MMLU (%)' },
      overlaying: 'y',
      side: 'right',
      showgrid: false,
      color: '#2ca02c',
    };
  }
  return {
    id: 'plot-pareto',
    title: 'Accuracy / size frontier',
    caption:
      `Each point is a candidate (red: on the Pareto frontier) with its 95% interval; hover for its spec. ` +
      (sameAxes
        ? "Green diamonds are Google's published configs (their MMLU)."
        : "Green diamonds are Google's published E4B configs on their own top and right axes (their MMLU; " +
          'a different model or metric, so not on the same scale).'),
    data,
    layout,
  };
}

/** FFN width per layer of each frontier candidate, skipped layers crossed out. */
export function layersFigure(rows: readonly SweepCandidate[], depth: number): Figure {
  const labels = rows.map((c) => escapeHtml(candidateLabel(c)));
  const z = rows.map((c) => widthsByLayer(c.spec, depth));
  const layers = Array.from({ length: depth }, (_, l) => l);
  const skipX: number[] = [];
  const skipY: string[] = [];
  rows.forEach((c, r) =>
    c.spec.skip.forEach((l) => {
      skipX.push(l);
      skipY.push(labels[r]!); // one label per row
    }),
  );
  return {
    id: 'plot-layers',
    title: 'Per-layer FFN width of the frontier',
    caption: 'One row per frontier candidate, one column per parent layer; a cross marks a skipped layer.',
    data: [
      {
        type: 'heatmap',
        name: 'FFN width',
        x: layers,
        y: labels,
        z,
        colorscale: 'Viridis',
        hoverongaps: false,
        colorbar: { title: { text: 'FFN width' } },
        hovertext: z.map((row, r) =>
          row.map((w, l) => `${labels[r]}<br>layer ${l}: ${w === null ? 'skipped' : `FFN ${w}`}`),
        ),
        hoverinfo: 'text',
      },
      {
        type: 'scatter',
        mode: 'markers',
        name: 'skipped',
        x: skipX,
        y: skipY,
        marker: { symbol: 'x', size: 9, color: '#333333' },
        hovertext: skipX.map((l, i) => `${skipY[i]}<br>layer ${l}: skipped`),
        hoverinfo: 'text',
      },
    ],
    layout: {
      height: 140 + 26 * rows.length,
      margin: { l: 200, r: 30, t: 20, b: 50 },
      xaxis: { title: { text: 'parent layer' }, dtick: depth > 20 ? 5 : 1, range: [-0.5, depth - 0.5] },
      yaxis: { automargin: true, type: 'category' },
      showlegend: false,
    },
  };
}

/** The sensitivity scan: how much the metric drops when one layer alone is narrowed or skipped. */
export function sensitivityFigure(run: SweepRun, fromRun?: string | number): Figure {
  const entries = run.sensitivity ?? [];
  const trace = (kind: 'narrow' | 'skip', color: string) => {
    const e = entries.filter((s) => s.kind === kind).sort((a, b) => a.layer - b.layer);
    return {
      type: 'bar',
      name: kind === 'narrow' ? 'narrowed to the smallest width' : 'skipped',
      x: e.map((s) => s.layer),
      y: e.map((s) => s.drop * 100),
      marker: { color },
      hovertext: e.map(
        (s) => `layer ${s.layer} ${kind === 'narrow' ? 'narrowed' : 'skipped'}: drop ${pct(s.drop, 2)}`,
      ),
      hoverinfo: 'text',
    };
  };
  return {
    id: 'plot-sensitivity',
    title: 'Sensitivity per layer',
    caption:
      'Drop of the metric (percentage points) when one layer alone is changed; taller bars matter more.' +
      (fromRun === undefined
        ? ''
        : ` From the sensitivity scan of run ${String(fromRun)} (same checkpoint and subset).`),
    data: [trace('narrow', '#4c78a8'), trace('skip', '#f58518')],
    layout: {
      height: 360,
      barmode: 'group',
      margin: { l: 70, r: 30, t: 20, b: 60 },
      xaxis: { title: { text: 'parent layer' }, dtick: 1 },
      yaxis: { title: { text: 'drop (points)' } },
      legend: { orientation: 'h', y: -0.2 },
    },
  };
}

/** Accuracy per MMLU category for the frontier candidates that have categories. */
export function categoriesFigure(rows: readonly SweepCandidate[]): Figure {
  const names = [...new Set(rows.flatMap((c) => Object.keys(c.result?.categories ?? {})))].sort();
  return {
    id: 'plot-categories',
    title: 'Accuracy per category (frontier)',
    caption:
      'MMLU accuracy against the labels per category, with 95% intervals, for each frontier candidate.',
    data: rows.map((c) => {
      const cats = c.result?.categories ?? {};
      const acc = names.map((n) => {
        const cat = cats[n];
        return cat ? cat.acc * 100 : null;
      });
      return {
        type: 'bar',
        name: escapeHtml(candidateLabel(c)),
        x: names.map(escapeHtml),
        y: acc,
        error_y: {
          type: 'data',
          symmetric: false,
          array: names.map((n) => {
            const cat = cats[n];
            return cat?.ci ? (cat.ci[1] - cat.acc) * 100 : 0;
          }),
          arrayminus: names.map((n) => {
            const cat = cats[n];
            return cat?.ci ? (cat.acc - cat.ci[0]) * 100 : 0;
          }),
          thickness: 1,
        },
        hovertext: names.map((n) => {
          const cat = cats[n];
          return cat
            ? `${escapeHtml(candidateLabel(c))}<br>${escapeHtml(n)}: ${pct(cat.acc)} (n=${cat.n})`
            : '';
        }),
        hoverinfo: 'text',
      };
    }),
    layout: {
      height: 380,
      barmode: 'group',
      margin: { l: 70, r: 30, t: 20, b: 60 },
      yaxis: { title: { text: 'accuracy (%)' }, range: [0, 100] },
      legend: { orientation: 'h', y: -0.2 },
    },
  };
}

/** Successive halving: candidates and questions per rung. */
export function funnelFigure(run: SweepRun): Figure {
  const rungs = run.rungs ?? [];
  return {
    id: 'plot-funnel',
    title: 'Successive halving',
    caption: 'Candidates kept at each rung and the questions each was scored on.',
    data: [
      {
        type: 'funnel',
        name: 'rungs',
        y: rungs.map((_, i) => `rung ${i + 1}`),
        x: rungs.map((r) => r.candidates),
        text: rungs.map((r) => `${r.candidates} candidates × ${r.questions} questions`),
        textinfo: 'text',
        hoverinfo: 'text',
        hovertext: rungs.map(
          (r, i) => `rung ${i + 1}: ${r.candidates} candidates, ${r.questions} questions each`,
        ),
        marker: { color: '#4c78a8' },
      },
    ],
    layout: { height: 120 + 50 * rungs.length, margin: { l: 80, r: 30, t: 20, b: 30 } },
  };
}
