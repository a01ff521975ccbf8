// A real HTTP server on 127.0.0.1 that answers like the Hugging Face Hub for a few repositories: the API
// routes @huggingface/hub calls (repository info at a revision, the recursive tree listing with Link
// pagination), resolve URLs (git files served directly, LFS files redirected to a CDN route), ETag,
// X-Linked-Etag / X-Linked-Size / X-Repo-Commit headers, Range requests, 401/403 for gated repositories,
// and injected faults: a connection dropped part-way, corrupted bytes.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface FakeRepo {
  readonly type: 'model' | 'dataset';
  readonly name: string;
  readonly files: ReadonlyMap<string, Buffer>;
  /** Gated: files need a token, and only tokens in `accepted` may read them. */
  readonly gated?: boolean;
  readonly accepted?: readonly string[];
}

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | null;
  status: number;
  /** Body bytes sent. */
  bytes: number;
}

/** Stored with LFS (as .gitattributes does on the Hub): weights and data; the rest lives in git. */
const isLfs = (file: string) => /\.(safetensors|parquet)$/.test(file) || file.endsWith('tokenizer.json');

const gitOid = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Reads a folder into a file map (paths with `/`). */
export function filesOf(dir: string, prefix = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) for (const [k, v] of filesOf(p, `${prefix}${e.name}/`)) out.set(k, v);
    else out.set(`${prefix}${e.name}`, fs.readFileSync(p));
  }
  return out;
}

export class FakeHub {
  readonly requests: LoggedRequest[] = [];
  /** Next request for a file: send this many bytes, then drop the connection (once per entry). */
  readonly dropAfter = new Map<string, number>();
  /** Requests for a file: send this many bytes, then stall (never finish) until the server closes. */
  readonly stallAfter = new Map<string, number>();
  /** Files served with one byte changed (the listing keeps the true checksum). */
  readonly corrupt = new Set<string>();
  /** Tree listing page size (the real Hub pages at 1000; small here to exercise Link pagination). */
  pageSize = 3;
  private readonly repos = new Map<string, FakeRepo & { commit: string }>();
  private readonly byHash = new Map<string, { repo: string; file: string }>();

  private constructor(private readonly server: http.Server) {}

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  static async start(repos: readonly FakeRepo[]): Promise<FakeHub> {
    const server = http.createServer();
    const hub = new FakeHub(server);
    for (const r of repos) hub.add(r);
    server.on('request', (req, res) => hub.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return hub;
  }

  add(repo: FakeRepo): void {
    const commit = createHash('sha1').update(repo.name).update(String(repo.files.size)).digest('hex');
    const key = `${repo.type}:${repo.name}`;
    this.repos.set(key, { ...repo, commit });
    for (const [file, b] of repo.files) if (isLfs(file)) this.byHash.set(sha256(b), { repo: key, file });
  }

  commitOf(type: 'model' | 'dataset', name: string): string {
    return this.repos.get(`${type}:${name}`)!.commit;
  }

  /** The file a CDN path serves. */
  fileOfCdn(cdnPath: string): string | undefined {
    return this.byHash.get(cdnPath.split('/')[2] ?? '')?.file;
  }

  /** Requests for one file (resolve and CDN routes). */
  fileRequests(file: string): LoggedRequest[] {
    return this.requests.filter((r) => r.path.endsWith(`/${file}`) || r.path === `/cdn/${file}`);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const entry: LoggedRequest = {
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      range: req.headers.range ?? null,
      status: 0,
      bytes: 0,
    };
    this.requests.push(entry);
    const send = (status: number, body: string | Buffer, headers: Record<string, string> = {}) => {
      entry.status = status;
      entry.bytes = Buffer.byteLength(body);
      res.writeHead(status, headers).end(body);
    };
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      send(status, JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
    const refuse = (status: number, code: string, message: string) =>
      json(status, { error: message }, { 'X-Error-Code': code, 'X-Error-Message': message });

    const parts = entry.path.split('/').filter(Boolean);
    // CDN: /cdn/<sha256>
    if (parts[0] === 'cdn' && parts.length === 2) {
      const hit = this.byHash.get(parts[1]!);
      if (!hit) return send(404, 'no such object');
      const repo = this.repos.get(hit.repo)!;
      return this.serveBytes(req, res, entry, hit.file, repo.files.get(hit.file)!, { ETag: `"${parts[1]}"` });
    }
    const api = parts[0] === 'api';
    const rest = api ? parts.slice(1) : parts;
    let type: 'model' | 'dataset' = 'model';
    let i = 0;
    if (api) {
      if (rest[0] !== 'models' && rest[0] !== 'datasets') return send(404, 'not found');
      type = rest[0] === 'models' ? 'model' : 'dataset';
      i = 1;
    } else if (rest[0] === 'datasets') {
      type = 'dataset';
      i = 1;
    }
    const name = `${rest[i]}/${rest[i + 1]}`;
    const repo = this.repos.get(`${type}:${name}`);
    if (!repo) return refuse(401, 'RepoNotFound', 'Repository not found');
    const action = rest[i + 2];
    const rev = rest[i + 3];
    if (rev !== undefined && rev !== 'main' && rev !== repo.commit) {
      return refuse(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    }
    const auth = req.headers.authorization?.replace(/^Bearer /, '');
    if (api && action === 'revision') {
      return json(200, {
        _id: `id-${repo.name}`,
        id: repo.name,
        sha: repo.commit,
        private: false,
        gated: repo.gated ? 'manual' : false,
        downloads: 0,
        likes: 0,
        lastModified: '2025-06-26T00:00:00.000Z',
      });
    }
    if (api && action === 'tree') {
      const dirs = new Set<string>();
      for (const f of repo.files.keys()) {
        const segs = f.split('/');
        for (let k = 1; k < segs.length; k++) dirs.add(segs.slice(0, k).join('/'));
      }
      const items: unknown[] = [...dirs].map((d) => ({
        type: 'directory',
        oid: gitOid(Buffer.from(d)),
        size: 0,
        path: d,
      }));
      for (const [f, b] of [...repo.files].sort()) {
        const lfs = isLfs(f);
        items.push({
          type: 'file',
          oid: lfs
            ? gitOid(
                Buffer.from(
                  `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(b)}\nsize ${b.length}\n`,
                ),
              )
            : gitOid(b),
          size: b.length,
          path: f,
          ...(lfs ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
        });
      }
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const page = items.slice(cursor, cursor + this.pageSize);
      const next = cursor + this.pageSize < items.length ? new URL(url.href) : null;
      next?.searchParams.set('cursor', String(cursor + this.pageSize));
      return json(200, page, next ? { Link: `<${next.href}>; rel="next"` } : {});
    }
    if (!api && action === 'resolve') {
      const file = rest.slice(i + 4).join('/');
      const b = repo.files.get(file);
      if (!b) return refuse(404, 'EntryNotFound', `${file} does not exist`);
      if (repo.gated) {
        if (!auth)
          return refuse(
            401,
            'GatedRepo',
            `Access to model ${repo.name} is restricted. You must be authenticated to access it.`,
          );
        if (!repo.accepted?.includes(auth)) {
          return refuse(
            403,
            'GatedRepo',
            `Access to model ${repo.name} is restricted and you are not in the authorized list.`,
          );
        }
      }
      const common = { 'X-Repo-Commit': repo.commit };
      if (isLfs(file)) {
        entry.status = 302;
        res
          .writeHead(302, {
            ...common,
            Location: `/cdn/${sha256(b)}?file=${encodeURIComponent(file)}`,
            ETag: `"${gitOid(b)}"`,
            'X-Linked-Etag': `"${sha256(b)}"`,
            'X-Linked-Size': String(b.length),
          })
          .end();
        return;
      }
      return this.serveBytes(req, res, entry, file, b, { ...common, ETag: `"${gitOid(b)}"` });
    }
    send(404, 'not found');
  }

  private serveBytes(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: LoggedRequest,
    file: string,
    content: Buffer,
    headers: Record<string, string>,
  ): void {
    let body = content;
    if (this.corrupt.has(file)) {
      body = Buffer.from(content);
      body[body.length >> 1] ^= 0xff;
    }
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= body.length) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), body.length - 1) : body.length - 1;
      status = 206;
    }
    const slice = body.subarray(start, end + 1);
    entry.status = status;
    res.writeHead(status, {
      ...headers,
      'Accept-Ranges': 'bytes',
      'Content-Length': String(slice.length),
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${body.length}` } : {}),
    });
    const stall = this.stallAfter.get(file);
    if (stall !== undefined && stall < slice.length) {
      entry.bytes = stall;
      res.write(slice.subarray(0, stall));
      return;
    }
    const drop = this.dropAfter.get(file);
    if (drop !== undefined && drop < slice.length) {
      this.dropAfter.delete(file);
      entry.bytes = drop;
      res.write(slice.subarray(0, drop), () => res.socket?.destroy());
      return;
    }
    entry.bytes = slice.length;
    res.end(slice);
  }
}
