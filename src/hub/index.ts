// Public API of the Hub layer: downloads, `hf://` addresses, checkpoints read in place by range requests.
export { HubAccessError, HubTransferError } from './errors';
export {
  DEFAULT_HUB_URL,
  HF_SCHEME,
  isHfUri,
  parseHfUri,
  parseRepoName,
  formatHfUri,
  repoPage,
  resolveUrl,
} from './repo';
export type { HubOptions, RepoRef, RepoType } from './repo';
export { HttpByteSource, withRetries } from './http';
export { CHECKPOINT_FILES, snapshotRepo, selectFiles, matchFiles, downloadFiles } from './download';
export type { RepoFile, RepoSnapshot, DownloadOptions, DownloadResult, FileOutcome } from './download';
export { openHubCheckpoint } from './remote';
export type { HubCheckpoint, OpenHubOptions } from './remote';
