// Naming things on the Hub: repositories, revisions, `hf://` addresses and the URLs of their files.
import { HubAccessError } from './errors';

export const DEFAULT_HUB_URL = 'https://huggingface.co';
export const HF_SCHEME = 'hf://';

export type RepoType = 'model' | 'dataset';

export interface RepoRef {
  readonly type: RepoType;
  /** `owner/name`. */
  readonly name: string;
  /** Branch, tag or commit as given (default `main`). */
  readonly revision: string;
}

/** Where to talk to and as whom: the CLI fills these from flags, `HF_ENDPOINT` and `HF_TOKEN`. */
export interface HubOptions {
  readonly hubUrl?: string;
  readonly token?: string;
  /** Attempts per request for transient failures (default 6). */
  readonly attempts?: number;
  /** First backoff delay in ms, doubled on each retry (default 500). */
  readonly retryBaseMs?: number;
  /** Told about each retry (a line for the user). */
  readonly onRetry?: (message: string) => void;
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function parseRepoName(text: string, flag: string): string {
  if (!REPO_RE.test(text) || text.includes('..')) {
    throw new HubAccessError(`${flag}: "${text}" is not a Hub repository name like google/gemma-3n-E4B`);
  }
  return text;
}

export function isHfUri(text: string): boolean {
  return text.startsWith(HF_SCHEME);
}

/** `hf://owner/repo[@revision]` (models; `hf://datasets/owner/repo` for datasets). */
export function parseHfUri(text: string): RepoRef {
  let rest = text.slice(HF_SCHEME.length);
  let type: RepoType = 'model';
  if (rest.startsWith('datasets/')) {
    type = 'dataset';
    rest = rest.slice('datasets/'.length);
  }
  const at = rest.indexOf('@');
  const name = at >= 0 ? rest.slice(0, at) : rest;
  const revision = at >= 0 ? rest.slice(at + 1) : 'main';
  if (!REPO_RE.test(name) || revision === '') {
    throw new HubAccessError(`${text}: expected hf://owner/repo or hf://owner/repo@revision`);
  }
  return { type, name, revision };
}

export function formatHfUri(ref: RepoRef): string {
  return `${HF_SCHEME}${ref.type === 'dataset' ? 'datasets/' : ''}${ref.name}@${ref.revision}`;
}

export function hubUrlOf(opts: HubOptions): string {
  return (opts.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
}

/** The repository's page, where a gated model's license is accepted. */
export function repoPage(ref: RepoRef, opts: HubOptions): string {
  return `${hubUrlOf(opts)}/${ref.type === 'dataset' ? 'datasets/' : ''}${ref.name}`;
}

/** A file's download URL at `revision` (a commit, once resolved, so every file comes from one commit). */
export function resolveUrl(ref: RepoRef, file: string, opts: HubOptions, revision = ref.revision): string {
  const encoded = file.split('/').map(encodeURIComponent).join('/');
  return `${repoPage(ref, opts)}/resolve/${encodeURIComponent(revision)}/${encoded}`;
}

/** Repository file paths come from the Hub: keep them relative and inside the output folder. */
export function safeRepoPath(file: string): string {
  const parts = file.split('/');
  if (
    file.startsWith('/') ||
    file.includes('\\') ||
    file.includes('\0') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new HubAccessError(`${file}: the Hub listed a file path that is not a plain relative path`);
  }
  return file;
}
