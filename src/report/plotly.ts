// The minified plotly.js bundle that every report inlines. scripts/build.mjs minifies plotly.js-dist once into
// dist/plotly.min.js; the bundled CLI finds it beside itself, the sources one folder up.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserInputError } from '../formats';

export const PLOTLY_BUNDLE = 'plotly.min.js';

export function plotlyBundlePath(): string {
  const candidates = [
    path.resolve(__dirname, PLOTLY_BUNDLE),
    path.resolve(__dirname, '../../dist', PLOTLY_BUNDLE),
  ];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found)
    throw new UserInputError(
      `${PLOTLY_BUNDLE}: not found in ${candidates.join(' or ')} (run \`npm run build\`, which makes it)`,
    );
  return found;
}

export function loadPlotlyBundle(): string {
  return fs.readFileSync(plotlyBundlePath(), 'utf8');
}
