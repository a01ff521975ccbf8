// A throwaway PostgreSQL server for tests: initdb into a temporary folder, started with pg_ctl on a free
// loopback port (as the `postgres` user when the tests run as root: the server refuses root), stopped and
// removed by `stop()`. Needs Debian's `postgresql` package (`.ci/run` installs it).
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';

export interface PgServer {
  readonly port: number;
  /** The URL of database `db` on this server. */
  url(db: string): string;
  createDatabase(db: string): Promise<string>;
  /** Stops the server (fast shutdown: connections are cut), waits `downMs`, starts it again. */
  restart(downMs?: number): void;
  stop(): void;
}

/** The folder of initdb/pg_ctl: $PG_BIN, else the newest /usr/lib/postgresql/<v>/bin, else PATH. */
function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest !== undefined) return path.join(root, newest, 'bin');
  const which = spawnSync('sh', ['-c', 'command -v pg_ctl'], { encoding: 'utf8' });
  if (which.status === 0) return path.dirname(which.stdout.trim());
  throw new Error(
    "PostgreSQL's server programs not found: install Debian's `postgresql` package (or set PG_BIN)",
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** uid/gid of the `postgres` user when we are root (the server will not run as root), else none. */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) =>
    Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || uid <= 0)
    throw new Error('running as root and there is no `postgres` user to run the test server as');
  return { uid, gid };
}

export async function startPostgres(): Promise<PgServer> {
  const bin = binDir();
  const user = serverUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'matformer-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const run = (prog: string, args: string[]) => {
    const opts: SpawnSyncOptions = {
      encoding: 'utf8',
      cwd: dir,
      timeout: 60_000,
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    };
    const r = spawnSync(path.join(bin, prog), args, opts);
    if (r.status !== 0)
      throw new Error(
        `${prog} ${args.join(' ')} failed (${r.status ?? r.signal}): ${String(r.stderr)}${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`,
      );
  };
  const port = await freePort();
  run('initdb', ['-D', data, '-U', 'matformer', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N']);
  const start = () =>
    run('pg_ctl', [
      '-D',
      data,
      '-l',
      log,
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`,
      'start',
    ]);
  start();
  const url = (db: string) => `postgres://matformer@127.0.0.1:${port}/${db}`;
  let running = true;
  return {
    port,
    url,
    async createDatabase(db: string) {
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${db}`);
      } finally {
        await c.end();
      }
      return url(db);
    },
    restart(downMs = 1500) {
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      spawnSync('sleep', [String(downMs / 1000)]);
      start();
    },
    stop() {
      if (running) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      running = false;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
