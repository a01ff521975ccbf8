// One self-contained HTML page from a sweep's results: plotly inlined, the data as escaped JSON, the table
// rendered here (every string escaped), a few lines of script for plots, sorting and filtering.
import { UserInputError } from '../formats';
import type { PublishedConfig } from '../gemma3n';
import { wilsonInterval } from '../eval';
import { sliceCommandLine } from '../slicing';
import {
  type Figure,
  candidateName,
  fileSafeName,
  categoriesFigure,
  escapeHtml,
  formatParams,
  funnelFigure,
  layersFigure,
  paretoFigure,
  pct,
  sensitivityFigure,
  specSummary,
} from './figures';
import type { SweepCandidate, SweepResults, SweepRun } from './types';

/** Four choices: chance-level accuracy on MMLU. */
export const CHANCE_ACCURACY = 0.25;

export interface ReportOptions {
  /** The run to show (default: the last one). */
  readonly runId?: string | number;
  /** Google's published configs (configs/gemma3n-e4b-published.csv). */
  readonly published: readonly PublishedConfig[];
  /** The minified plotly.js bundle, inlined as is. */
  readonly plotlyJs: string;
  /** Shown in the footer; a parameter so the same input gives the same page. */
  readonly generatedAt?: string;
}

/** JSON safe inside a <script> element: no `<`, `>`, `&` or line separators survive literally. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function selectRun(results: SweepResults, runId?: string | number): SweepRun {
  if (runId === undefined) {
    const run = results.runs.find((r) => String(r.id) === String(results.run)) ?? results.runs.at(-1);
    if (!run) throw new UserInputError('the sweep results hold no run');
    return run;
  }
  const run = results.runs.find((r) => String(r.id) === String(runId));
  if (!run)
    throw new UserInputError(
      `--run: no run ${JSON.stringify(String(runId))} (runs: ${results.runs.map((r) => r.id).join(', ')})`,
    );
  return run;
}

/**
 * Why accuracy here means nothing, or null: the run says the weights are random, or even the best
 * candidate's accuracy is consistent with guessing (chance inside its 95% interval).
 */
export function chanceWarning(run: SweepRun, scored: readonly SweepCandidate[]): string | null {
  if (run.random_weights)
    return 'This checkpoint holds random weights: accuracy is chance level (25% on four choices). The report shows the pipeline, not a result.';
  const best = [...scored].sort((a, b) => b.result!.acc - a.result!.acc)[0];
  if (!best || best.result!.n === 0) return null;
  const { acc, n } = best.result!;
  const [lo, hi] = wilsonInterval(Math.round(acc * n), n);
  if (lo > CHANCE_ACCURACY || hi < CHANCE_ACCURACY) return null;
  return (
    `Accuracy is at chance level: even the best candidate's ${pct(acc)} (95% CI ${pct(lo)}-${pct(hi)}, n=${n}) ` +
    'contains 25%, the accuracy of guessing among four choices. Random or untrained weights give exactly this; ' +
    (run.metric === 'agreement'
      ? 'agreement with the parent is still meaningful.'
      : 'compare submodels by agreement with the parent instead.')
  );
}

/**
 * The run whose sensitivity scan applies to `run`: its own, else the latest scan of the same checkpoint
 * (fingerprint), subset, shots and metric in the same results (a scan is usually a run of its own).
 */
export function sensitivityRun(results: SweepResults, run: SweepRun): SweepRun | null {
  const has = (r: SweepRun) => (r.sensitivity ?? []).length > 0;
  if (has(run)) return run;
  if (run.model_fingerprint === null) return null;
  const same = results.runs.filter(
    (r) =>
      has(r) &&
      r.model_fingerprint === run.model_fingerprint &&
      r.subset_id === run.subset_id &&
      r.shots === run.shots &&
      r.metric === run.metric,
  );
  return same[same.length - 1] ?? null;
}

function strategyText(s: unknown): string {
  return typeof s === 'string' ? s : JSON.stringify(s);
}

function metadataRows(
  run: SweepRun,
  scored: number,
  total: number,
  generatedAt?: string,
): [string, string][] {
  const rows: [string, string][] = [
    ['run', String(run.id)],
    ['model', run.model ?? '—'],
    ['model fingerprint', run.model_fingerprint ?? '—'],
    ['sweep file', run.sweep_file ?? '—'],
    [
      'metric',
      run.metric === 'agreement' ? 'agreement (top-1 agreement with the parent)' : 'accuracy (MMLU labels)',
    ],
    ['strategy', strategyText(run.strategy)],
    ['subset', run.subset_id ?? '—'],
    ['shots', String(run.shots)],
    ['backend', run.backend],
    ['candidates', `${scored} scored of ${total}`],
  ];
  const timings = Object.entries(run.timings);
  if (timings.length > 0)
    rows.push(['timings', timings.map(([k, s]) => `${k} ${s.toFixed(1)} s`).join(', ')]);
  if (run.work && run.work.layer_tokens_needed > 0) {
    const { layer_tokens_done: done, layer_tokens_needed: needed } = run.work;
    rows.push([
      'work saved by sharing',
      `${done.toLocaleString('en-US')} layer-token evaluations of ${needed.toLocaleString('en-US')} without sharing ` +
        `(${(needed / Math.max(1, done)).toFixed(2)}× less, ${pct(1 - done / needed)} saved)`,
    ]);
  }
  rows.push(['tool version', run.tool_version]);
  if (generatedAt) rows.push(['generated', generatedAt]);
  return rows;
}

interface Column {
  readonly title: string;
  readonly numeric: boolean;
  /** Sort key and cell HTML (already escaped). */
  readonly cell: (c: SweepCandidate) => { key: string | number; html: string };
}

function columns(run: SweepRun, candidates: readonly SweepCandidate[]): Column[] {
  const text = (s: string) => ({ key: s, html: escapeHtml(s) });
  const model = run.model ?? '<model>';
  const metricTitle = run.metric === 'agreement' ? 'agreement' : 'accuracy';
  const cols: Column[] = [
    {
      title: 'candidate',
      numeric: false,
      cell: (c) => ({
        key: candidateName(c),
        html:
          escapeHtml(candidateName(c)) +
          (c.label && c.label !== String(c.id) ? ` <span class="ci">${escapeHtml(String(c.id))}</span>` : ''),
      }),
    },
    {
      title: 'frontier',
      numeric: true,
      cell: (c) => ({ key: c.pareto ? 1 : 0, html: c.pareto ? '<span class="front">●</span>' : '' }),
    },
    { title: 'preset', numeric: false, cell: (c) => text(c.preset ?? '') },
    {
      title: 'effective params',
      numeric: true,
      cell: (c) => ({ key: c.params.effective, html: escapeHtml(formatParams(c.params.effective)) }),
    },
    {
      title: metricTitle,
      numeric: true,
      cell: (c) =>
        c.result
          ? {
              key: c.result.metric,
              html: `${pct(c.result.metric)} <span class="ci">${pct(c.result.ci[0])}-${pct(c.result.ci[1])}</span>`,
            }
          : { key: -1, html: '<span class="ci">not scored</span>' },
    },
  ];
  if (run.metric === 'agreement')
    cols.push({
      title: 'accuracy',
      numeric: true,
      cell: (c) => (c.result ? { key: c.result.acc, html: pct(c.result.acc) } : { key: -1, html: '' }),
    });
  if (candidates.some((c) => c.mcnemar_p !== undefined && c.mcnemar_p !== null))
    cols.push({
      title: 'McNemar p vs parent',
      numeric: true,
      cell: (c) =>
        c.mcnemar_p === undefined || c.mcnemar_p === null
          ? { key: 2, html: '' }
          : { key: c.mcnemar_p, html: c.mcnemar_p.toPrecision(2) },
    });
  if (candidates.some((c) => c.published_mmlu !== undefined && c.published_mmlu !== null))
    cols.push({
      title: 'published MMLU',
      numeric: true,
      cell: (c) =>
        c.published_mmlu === undefined || c.published_mmlu === null
          ? { key: -1, html: '' }
          : { key: c.published_mmlu, html: pct(c.published_mmlu) },
    });
  cols.push(
    { title: 'n', numeric: true, cell: (c) => ({ key: c.result?.n ?? 0, html: String(c.result?.n ?? '') }) },
    {
      title: 'layers',
      numeric: true,
      cell: (c) => ({ key: c.spec.ffn.length, html: String(c.spec.ffn.length) }),
    },
    { title: 'spec', numeric: false, cell: (c) => text(specSummary(c.spec)) },
    {
      title: 'slice command',
      numeric: false,
      cell: (c) => {
        const cmd = sliceCommandLine(model, `./slice-${fileSafeName(String(c.id))}`, c.spec);
        return { key: cmd, html: `<code>${escapeHtml(cmd)}</code>` };
      },
    },
  );
  return cols;
}

function tableHtml(run: SweepRun, candidates: readonly SweepCandidate[]): string {
  const cols = columns(run, candidates);
  const head = cols
    .map(
      (c, i) =>
        `<th data-col="${i}" data-type="${c.numeric ? 'num' : 'text'}" aria-sort="none" tabindex="0">${escapeHtml(c.title)}</th>`,
    )
    .join('');
  const body = [...candidates]
    .sort((a, b) => a.params.effective - b.params.effective)
    .map((cand) => {
      const cells = cols
        .map((col) => {
          const { key, html } = col.cell(cand);
          return `<td data-key="${escapeHtml(String(key))}">${html}</td>`;
        })
        .join('');
      return `<tr${cand.pareto ? ' class="pareto"' : ''}>${cells}</tr>`;
    })
    .join('\n');
  return `<table id="candidates"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 4px}
p.caption{color:#57606a;margin:0 0 8px}
.warning{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 14px;margin:12px 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.meta dt{color:#57606a}dl.meta dd{margin:0;word-break:break-all}
.plot{width:100%}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{cursor:pointer;user-select:none;background:#f6f8fa;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tr.pareto td{background:#fff5f5}.front{color:#d62728}.ci{color:#57606a;font-size:12px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;white-space:nowrap}
.scroll{overflow-x:auto}
input#filter{width:320px;padding:4px 8px;margin:4px 0 8px;font:inherit}
footer{color:#57606a;font-size:12px;margin-top:32px}
`;

// The page's own script: plain ES2017, no template literals, so it sits in this file as a string.
const CLIENT = `
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var config = { displaylogo: false, responsive: true, typesetMath: false };
  data.figures.forEach(function (f) { Plotly.newPlot(f.id, f.data, f.layout, config); });
  var table = document.getElementById('candidates');
  var body = table.tBodies[0];
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    function sort() {
      var col = Number(th.getAttribute('data-col'));
      var numeric = th.getAttribute('data-type') === 'num';
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-key'), y = b.cells[col].getAttribute('data-key');
        var d = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') sort(); });
  });
  var filter = document.getElementById('filter');
  filter.addEventListener('input', function () {
    var q = filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (r) {
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
})();
`;

/** The whole report page. Pure: the same results and options give the same bytes. */
export function renderReport(results: SweepResults, opts: ReportOptions): string {
  if (/<\/script/i.test(opts.plotlyJs))
    throw new Error('the plotly bundle contains "</script" and cannot be inlined');
  const run = selectRun(results, opts.runId);
  if (results.run !== undefined && String(results.run) !== String(run.id))
    throw new UserInputError(
      `--run: the input holds the candidates of run ${String(results.run)} only (write it with \`results --run ${String(run.id)} --json\`)`,
    );
  const candidates = results.candidates.filter(
    (c) => c.run_id === undefined || String(c.run_id) === String(run.id),
  );
  const scored = candidates.filter((c) => c.result !== null);
  const depth = candidates[0] ? candidates[0].spec.skip.length + candidates[0].spec.ffn.length : 0;
  const frontier = scored.filter((c) => c.pareto).sort((a, b) => a.params.effective - b.params.effective);
  const figures: Figure[] = [];
  if (scored.length > 0) figures.push(paretoFigure(run, scored, opts.published));
  if (frontier.length > 0) figures.push(layersFigure(frontier, depth));
  const scan = sensitivityRun(results, run);
  if (scan) figures.push(sensitivityFigure(scan, scan === run ? undefined : scan.id));
  if (frontier.some((c) => Object.keys(c.result?.categories ?? {}).length > 0))
    figures.push(categoriesFigure(frontier));
  if ((run.rungs ?? []).length > 0) figures.push(funnelFigure(run));
  const warning = chanceWarning(run, scored);
  const meta = metadataRows(run, scored.length, candidates.length, opts.generatedAt)
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join('');
  const sections = figures
    .map(
      (f) =>
        `<section><h2>${escapeHtml(f.title)}</h2><p class="caption">${escapeHtml(f.caption)}</p>` +
        `<div class="plot" id="${f.id}"></div></section>`,
    )
    .join('\n');
  const title = `matformer-lab report: run ${String(run.id)}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head><body><main>
<h1>${escapeHtml(title)}</h1>
${warning ? `<div class="warning" id="chance-warning">${escapeHtml(warning)}</div>` : ''}
<dl class="meta">${meta}</dl>
${sections}
<section><h2>All candidates</h2>
<p class="caption">Click a header to sort; type to filter. Each row's command cuts that submodel as a checkpoint.</p>
<input id="filter" type="search" placeholder="filter rows (id, preset, spec, ...)" aria-label="filter rows">
<div class="scroll">${tableHtml(run, candidates)}</div>
</section>
<footer>Made by matformer-lab ${escapeHtml(run.tool_version)}. Self-contained: plotly.js is inlined, nothing is fetched.</footer>
</main>
<script>${opts.plotlyJs}</script>
<script type="application/json" id="report-data">${scriptJson({ figures })}</script>
<script>${CLIENT}</script>
</body></html>
`;
}
