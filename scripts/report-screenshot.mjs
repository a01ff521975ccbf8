#!/usr/bin/env node
// Screenshot of a report page in headless Chromium (the picture in reports/README.md comes from here):
//   node scripts/report-screenshot.mjs out/demo/report.html reports/demo-report.png
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium } from 'playwright-core';

const [html, png] = process.argv.slice(2);
if (!html || !png) {
  process.stderr.write('usage: node scripts/report-screenshot.mjs <report.html> <out.png>\n');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  await page.goto(`file://${path.resolve(html)}`);
  await page.waitForSelector('#plot-pareto svg.main-svg');
  const tmp = `${png}.tmp-${process.pid}.png`;
  await page.screenshot({ path: tmp, fullPage: true });
  fs.renameSync(tmp, png);
  process.stdout.write(`wrote ${png} (${fs.statSync(png).size} bytes)\n`);
} finally {
  await browser.close();
}
