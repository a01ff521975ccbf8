// HTTP to the Hub: retries with backoff for transient failures (connection errors, dropped bodies,
// 408/429/5xx), one-line errors for the rest (gated, not found, bad token), and positional reads of a
// file through Range requests (`HttpByteSource`), resuming a dropped transfer where it stopped.
import type { ByteSource } from '../formats';
import { HubAccessError, HubTransferError } from './errors';
import { HubOptions, RepoRef, hubUrlOf, repoPage } from './repo';

const DEFAULT_ATTEMPTS = 6;
const DEFAULT_RETRY_BASE_MS = 500;
/** A connection that sends nothing for this long is treated as dropped. */
const IDLE_TIMEOUT_MS = 60_000;
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);

/** A failure worth retrying; becomes a HubTransferError when the attempts run out. */
class TransientFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message ?? 'network error'} (${cause})` : (e.message ?? String(err));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` until it succeeds, retrying transient failures with exponential backoff. */
export async function withRetries<T>(what: string, opts: HubOptions, fn: () => Promise<T>): Promise<T> {
  const attempts = Math.max(1, opts.attempts ?? DEFAULT_ATTEMPTS);
  const base = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof TransientFailure)) throw err;
      if (attempt >= attempts) {
        throw new HubTransferError(
          `${what}: ${err.message} (gave up after ${attempts} attempts; run the command again to resume)`,
        );
      }
      const delay = err.retryAfterMs ?? base * 2 ** (attempt - 1);
      opts.onRetry?.(
        `${what}: ${err.message}; retry ${attempt} of ${attempts - 1} in ${(delay / 1000).toFixed(1)} s`,
      );
      await sleep(delay);
    }
  }
}

/** What a refused request means for this repository and file, as one line. */
export function accessError(res: Response, ref: RepoRef, file: string | null, opts: HubOptions): Error {
  const code = res.headers.get('x-error-code');
  const page = repoPage(ref, opts);
  const kind = ref.type === 'dataset' ? 'dataset' : 'model';
  if (code === 'GatedRepo') {
    return new HubAccessError(
      opts.token
        ? `${ref.name}: gated ${kind}, and the account of this token has not accepted its license: accept it at ${page}`
        : `${ref.name}: gated ${kind}, and no token was given: accept its license at ${page}, then pass --token or set HF_TOKEN`,
    );
  }
  if (code === 'RepoNotFound' || (res.status === 401 && !opts.token)) {
    return new HubAccessError(
      `${ref.name}: no such ${kind} on ${hubUrlOf(opts)}${opts.token ? '' : ' (if it is private, pass --token or set HF_TOKEN)'}`,
    );
  }
  if (res.status === 401)
    return new HubAccessError(`--token: the Hub rejected this token (invalid or expired)`);
  if (code === 'RevisionNotFound')
    return new HubAccessError(`--revision: ${ref.revision} not found in ${ref.name}`);
  if (res.status === 404) {
    return new HubAccessError(
      file
        ? `${ref.name}: no file ${file} at revision ${ref.revision}`
        : `${ref.name}: not found (${res.url})`,
    );
  }
  if (res.status === 403)
    return new HubAccessError(`${ref.name}: access denied (HTTP 403 for ${file ?? res.url})`);
  return new HubTransferError(`${res.url}: HTTP ${res.status} ${res.statusText}`.trim());
}

export interface RequestContext {
  readonly ref: RepoRef;
  readonly file: string | null;
  readonly opts: HubOptions;
}

/**
 * One request, with the token and redirects followed; transient failures throw TransientFailure
 * (call inside withRetries), refusals throw their one-line error. Returns the response and an abort
 * function that also arms an idle timeout while its body is read.
 */
export async function request(
  url: string,
  headers: Record<string, string>,
  ctx: RequestContext,
): Promise<{ res: Response; idle: () => void; done: () => void }> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error('no data for 60 s')), IDLE_TIMEOUT_MS);
  };
  const done = () => clearTimeout(timer);
  idle();
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { ...headers, ...(ctx.opts.token ? { Authorization: `Bearer ${ctx.opts.token}` } : {}) },
      signal: controller.signal,
      redirect: 'follow',
    });
  } catch (err) {
    done();
    throw new TransientFailure(describeNetworkError(err));
  }
  if (res.ok) return { res, idle, done };
  done();
  await res.body?.cancel().catch(() => undefined);
  if (TRANSIENT_STATUS.has(res.status)) {
    const after = Number(res.headers.get('retry-after'));
    throw new TransientFailure(
      `HTTP ${res.status}`,
      Number.isFinite(after) && after > 0 ? Math.min(after, 60) * 1000 : undefined,
    );
  }
  throw accessError(res, ctx.ref, ctx.file, ctx.opts);
}

/** A `fetch` for @huggingface/hub's API calls: the same retries and one-line errors as ours. */
export function hubFetch(ctx: RequestContext): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const what = `${ctx.ref.name}: ${init?.method ?? 'GET'} ${new URL(url).pathname}`;
    return withRetries(what, ctx.opts, async () => {
      const { res, done } = await request(url, headers, ctx);
      // The API's answers are small: read them here, where a dropped body can still be retried.
      try {
        const body = await res.arrayBuffer();
        return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
      } catch (err) {
        throw new TransientFailure(describeNetworkError(err));
      } finally {
        done();
      }
    });
  };
}

/**
 * Streams the body of a ranged GET of [from, from + length) into `sink`; a dropped connection is retried
 * from the first byte not yet delivered. `from === 0 && length === size` may be answered with 200.
 */
export async function streamRange(
  url: string,
  from: number,
  length: number,
  size: number,
  ctx: RequestContext,
  sink: (chunk: Uint8Array) => Promise<void> | void,
): Promise<void> {
  let got = 0;
  const what = `${ctx.file ?? url}`;
  await withRetries(what, ctx.opts, async () => {
    while (got < length) {
      const start = from + got;
      const whole = start === 0 && length === size;
      const headers: Record<string, string> = whole ? {} : { Range: `bytes=${start}-${from + length - 1}` };
      const { res, idle, done } = await request(url, headers, ctx);
      try {
        if (!whole) {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
          if (res.status !== 206 || !m || Number(m[1]) !== start) {
            throw new HubTransferError(
              `${what}: the server did not honour the range request (HTTP ${res.status})`,
            );
          }
        }
        if (!res.body) throw new TransientFailure('empty response');
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            idle();
            const n = Math.min(chunk.byteLength, length - got);
            if (n > 0) await sink(chunk.subarray(0, n));
            got += n;
            if (got >= length) break;
          }
        } catch (err) {
          if (err instanceof HubTransferError || err instanceof HubAccessError) throw err;
          throw new TransientFailure(
            `connection dropped after ${got} of ${length} bytes (${describeNetworkError(err)})`,
          );
        }
        if (got < length) throw new TransientFailure(`connection closed after ${got} of ${length} bytes`);
      } finally {
        done();
        await res.body?.cancel().catch(() => undefined);
      }
    }
  });
}

/** A file on the Hub as a ByteSource: each read is one Range request (resumed if dropped). */
export class HttpByteSource implements ByteSource {
  /** Bytes received and requests made, for reports and tests. */
  receivedBytes = 0;
  requests = 0;

  constructor(
    readonly name: string,
    readonly size: number,
    private readonly url: string,
    private readonly ctx: RequestContext,
  ) {}

  async read(position: number, into: Uint8Array): Promise<Uint8Array> {
    if (position < 0 || position + into.byteLength > this.size) {
      throw new HubTransferError(
        `${this.name}: read [${position}, ${position + into.byteLength}) past the end (${this.size} bytes)`,
      );
    }
    if (into.byteLength === 0) return into;
    let at = 0;
    this.requests++;
    await streamRange(this.url, position, into.byteLength, this.size, this.ctx, (chunk) => {
      into.set(chunk, at);
      at += chunk.byteLength;
      this.receivedBytes += chunk.byteLength;
    });
    return into;
  }

  close(): void {}
}
