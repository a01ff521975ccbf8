// Where a database is named (`sweep --db`, `results <db>`, `report <db>`, `export-best <db>`): a
// `postgres://` URL opens the PostgreSQL store, anything else is an SQLite file (the default).
import * as path from 'node:path';
import { PostgresSweepStore, isPostgresUrl, redactUrl } from './pg-store';
import { SqliteSweepStore, type SweepStore } from './store';

export interface OpenStoreOptions {
  /** Never creates or changes anything (results, report, export-best). */
  readonly readonly?: boolean;
  /** The flag that named the database, for messages (`--db`). */
  readonly flag?: string;
}

export async function openSweepStore(db: string, opts: OpenStoreOptions = {}): Promise<SweepStore> {
  if (isPostgresUrl(db)) return PostgresSweepStore.open(db, opts);
  return SqliteSweepStore.open(db, opts);
}

/** Closes a store and, for PostgreSQL, waits until its connections are gone. */
export async function closeSweepStore(store: SweepStore): Promise<void> {
  if (store instanceof PostgresSweepStore) await store.end();
  else store.close();
}

/** How a database is named in provenance (model cards): a URL without its password, a file by absolute path. */
export function databaseName(db: string): string {
  return isPostgresUrl(db) ? redactUrl(db) : path.resolve(db);
}
