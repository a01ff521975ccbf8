// A generated report opened in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
// it renders every plot with the inlined plotly, fetches nothing, runs no injected markup, and its table sorts
// and filters. Skipped, with the reason printed, where no Chromium is installed.
import * as fs from 'fs';
import * as path from 'path';
import { type Browser, chromium } from 'playwright-core';
import { loadPublishedConfigs } from '../../src/gemma3n';
import { loadPlotlyBundle, renderReport } from '../../src/report';
import { tmpDir } from '../helpers/tmp';
import { sweepFixture } from './fixture';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const present = fs.existsSync(CHROMIUM);
if (!present)
  console.warn(
    `skipping the browser test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
const maybe = present ? describe : describe.skip;

maybe('report in headless Chromium', () => {
  const results = sweepFixture();
  let browser: Browser;
  let file: string;
  let shot: string;

  beforeAll(async () => {
    const dir = tmpDir('matformer-report-');
    file = path.join(dir, 'report.html');
    shot = path.join(dir, 'report.png');
    fs.writeFileSync(
      file,
      renderReport(results, { published: loadPublishedConfigs(), plotlyJs: loadPlotlyBundle() }),
    );
    // Chromium's sandbox refuses to run as root (CI containers); elsewhere keep it.
    const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
    browser = await chromium.launch({ executablePath: CHROMIUM, args });
  });

  afterAll(async () => {
    await browser?.close();
  });

  test('renders every plot offline, sorts and filters, and writes a screenshot', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => {
      errors.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${file}`, { waitUntil: 'load' });

    const plots = ['plot-pareto', 'plot-layers', 'plot-sensitivity', 'plot-categories', 'plot-funnel'];
    for (const id of plots) await page.waitForSelector(`#${id} svg.main-svg`, { timeout: 30_000 });
    // One marker per scored candidate in the scatter's first trace.
    const scored = results.candidates.filter((c) => c.result !== null).length;
    expect(
      await page.locator('#plot-pareto .scatterlayer .trace').first().locator('path.point').count(),
    ).toBe(scored);
    expect(await page.locator('#plot-layers .heatmaplayer image').count()).toBe(1);
    expect(await page.locator('#plot-sensitivity .barlayer .trace').count()).toBe(2);
    expect(await page.locator('#plot-funnel .funnellayer .point').count()).toBe(
      results.runs[0]!.rungs!.length,
    );

    // Nothing but the page itself was loaded, and the markup in a candidate's id stayed text.
    expect(requests).toEqual([`file://${file}`]);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    expect(await page.locator('#candidates tbody').textContent()).toContain('<img src=x');

    // Sorting: a click on the metric's header orders the rows by it, a second click reverses them.
    const keys = (col: number) =>
      page.$$eval(`#candidates tbody tr td:nth-child(${col + 1})`, (tds) =>
        tds.map((td) => Number(td.getAttribute('data-key'))),
      );
    const header = page.locator('#candidates thead th', { hasText: 'agreement' });
    const col = Number(await header.getAttribute('data-col'));
    const before = await keys(col);
    await header.click();
    const asc = await keys(col);
    expect(asc).toEqual([...before].sort((a, b) => a - b));
    expect(asc).not.toEqual(before);
    expect(await header.getAttribute('aria-sort')).toBe('ascending');
    await header.click();
    expect(await keys(col)).toEqual([...before].sort((a, b) => b - a));

    // Filtering keeps the rows whose text matches.
    await page.fill('#filter', 'skip 2');
    const visible = await page.$$eval(
      '#candidates tbody tr',
      (trs) => trs.filter((tr) => (tr as HTMLElement).style.display !== 'none').length,
    );
    expect(visible).toBe(results.candidates.filter((c) => c.spec.skip.some((l) => l >= 20 && l < 30)).length);
    await page.fill('#filter', '');

    await page.screenshot({ path: shot, fullPage: true });
    expect(fs.readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    expect(errors).toEqual([]);
    await page.close();
  });
});
