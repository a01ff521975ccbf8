// .ci/backports-source derives the backports entry from the machine's own apt sources, in both formats.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers/tmp';

const script = path.resolve(__dirname, '../../.ci/backports-source');

function derive(files: Record<string, string>, codename = 'bookworm'): string {
  const dir = tmpDir('backports-');
  const paths = Object.entries(files).map(([name, text]) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  });
  const r = spawnSync('bash', [script, ...paths], {
    env: { ...process.env, CODENAME: codename },
    encoding: 'utf8',
  });
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('.ci/backports-source', () => {
  const deb822 = [
    'Types: deb',
    '# a comment',
    'URIs: http://mirror.invalid/debian',
    'Suites: bookworm bookworm-updates',
    'Components: main contrib',
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
    '',
    'Types: deb',
    'URIs: http://mirror.invalid/debian-security',
    'Suites: bookworm-security',
    'Components: main',
    '',
  ].join('\n');

  test('deb822 .sources: same URIs and keyring, suite <codename>-backports', () => {
    expect(derive({ 'debian.sources': deb822 })).toBe(
      [
        'Types: deb',
        'URIs: http://mirror.invalid/debian',
        'Suites: bookworm-backports',
        'Components: main contrib',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        '',
      ].join('\n'),
    );
  });

  test('one-line .list with options', () => {
    const list =
      'deb http://mirror.invalid/debian-security bookworm-security main\n' +
      'deb [arch=amd64 signed-by=/etc/apt/keyrings/k.gpg] http://mirror.invalid/debian bookworm main\n';
    expect(derive({ 'sources.list': list })).toBe(
      'Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /etc/apt/keyrings/k.gpg\n',
    );
  });

  test('nothing serves the codename: no entry', () => {
    expect(derive({ 'debian.sources': deb822 }, 'trixie')).toBe('');
  });
});
