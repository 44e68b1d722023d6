/**
 * Syncs: opt-out lists an external system publishes at a URL, fetched again and again and
 * imported each time they change. Kept in the store:
 *
 * ```
 * s<id, 12 digits>   sync record (JSON)
 * ```
 *
 * A sync is additive: each run imports what the file holds now, and an address that has left the
 * file stays suppressed (only `remove` ends a suppression). It needs no confirmation: the source
 * was approved when the sync was added. The URL is checked when the sync is added, and again at
 * every fetch and connection (a name can change what it points to).
 */
import { OptoutError, describeValue } from '../errors.js';
import type { ImportJobs, ImportJobView } from '../manage/import-jobs.js';
import { normalizeImportOptions } from '../options.js';
import { ACCOUNT_WIDE, metaKey } from '../store/keys.js';
import type { LevelStore } from '../store/level-store.js';
import { fetchSource, type FetchSourceOptions } from './fetch-source.js';
import { redactUrl, validateSyncUrl } from './sync-url.js';

export interface SyncRecord {
  id: string;
  /** The URL as given; it may hold a token, so lists and logs show `label`. */
  url: string;
  label: string;
  column: string | null;
  unit: string | null;
  reason: string;
  /** Milliseconds between runs; null for runs on demand only. */
  everyMs: number | null;
  allowPrivate: boolean;
  createdAt: string;
  createdBy: string;
  /** Validators of the last file imported completely, for conditional requests. */
  etag: string | null;
  lastModified: string | null;
  lastRunAt: string | null;
  lastStatus: 'fetched' | 'not-modified' | 'failed' | null;
  lastJobId: string | null;
  lastError: { code: string; message: string } | null;
  nextRunAt: string | null;
}

export interface AddSyncOptions {
  url: string;
  column?: string | undefined;
  unit?: string | undefined;
  reason?: string | undefined;
  /** `30s`, `15m`, `1h`, `1d`. @default on demand only */
  every?: string | undefined;
  /** Allows loopback and private addresses (a list served inside a trusted network). @default false */
  allowPrivate?: boolean | undefined;
  actor?: string | undefined;
}

export interface SyncRunResult {
  sync: string;
  status: 'fetched' | 'not-modified' | 'failed';
  job: ImportJobView | null;
  error: { code: string; message: string } | null;
}

const SYNC_RANGE = { gt: 's', lt: 't' } as const;
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function syncKey(id: string): string {
  return 's' + id.padStart(12, '0');
}

/** `90s`, `15m`, `1h`, `1d` in milliseconds; at least one second. */
export function parseEvery(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/.exec(value);
  const ms = m === null ? NaN : Number(m[1]) * (UNITS[m[2] as string] as number);
  if (!Number.isFinite(ms) || ms < 1000) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`every\` to be a duration such as 30s, 15m, 1h or 1d, of at least 1s, got ${describeValue(value)}`);
  }
  return Math.round(ms);
}

export async function listSyncs(store: LevelStore): Promise<SyncRecord[]> {
  const out: SyncRecord[] = [];
  for await (const v of store.db.values(SYNC_RANGE)) out.push(JSON.parse(v) as SyncRecord);
  return out;
}

export async function getSync(store: LevelStore, id: string): Promise<SyncRecord> {
  const raw = /^\d{1,12}$/.test(id) ? await store.db.get(syncKey(id)) : undefined;
  if (raw === undefined) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `No sync has the id ${describeValue(id)}`);
  return JSON.parse(raw) as SyncRecord;
}

/** What a listing shows: the record without the URL, which may hold a token. */
export function publicSync(s: SyncRecord): Omit<SyncRecord, 'url'> {
  const { url: _url, ...rest } = s;
  return rest;
}

/** Adds a sync after checking its URL and options; audited. */
export async function addSync(store: LevelStore, o: AddSyncOptions): Promise<SyncRecord> {
  const allowPrivate = o.allowPrivate === true;
  const url = validateSyncUrl(o.url, { allowPrivate });
  const checked = normalizeImportOptions({ source: { kind: 'file', path: store.dir }, column: o.column, unit: o.unit, reason: o.reason, confirm: { mode: 'yes' } });
  const everyMs = o.every === undefined ? null : parseEvery(o.every);
  const now = new Date();
  return store.withWriteLock(async () => {
    const id = String(Number((await store.db.get(metaKey('syncseq'))) ?? 0) + 1);
    const rec: SyncRecord = {
      id, url: url.href, label: redactUrl(url), column: checked.column ?? null,
      unit: checked.scope === ACCOUNT_WIDE ? null : checked.scope, reason: checked.reason, everyMs, allowPrivate,
      createdAt: now.toISOString(), createdBy: o.actor ?? 'library',
      etag: null, lastModified: null, lastRunAt: null, lastStatus: null, lastJobId: null, lastError: null,
      nextRunAt: everyMs === null ? null : now.toISOString(),
    };
    await store.commitChange([
      { type: 'put', key: metaKey('syncseq'), value: id },
      { type: 'put', key: syncKey(id), value: JSON.stringify(rec) },
    ], new Map(), store.audit({ actor: rec.createdBy, action: 'sync.add', key: null, job: null, unit: rec.unit, details: publicSync(rec) }));
    return rec;
  });
}

/** Removes a sync (the entries it imported stay); audited. */
export async function removeSync(store: LevelStore, id: string, actor = 'library'): Promise<void> {
  const rec = await getSync(store, id);
  await store.commitChange([{ type: 'del', key: syncKey(id) }], new Map(),
    store.audit({ actor, action: 'sync.remove', key: null, job: null, unit: rec.unit, details: { id, label: rec.label } }));
}

async function update(store: LevelStore, id: string, patch: Partial<SyncRecord>): Promise<SyncRecord> {
  const rec = { ...(await getSync(store, id)), ...patch };
  await store.db.put(syncKey(id), JSON.stringify(rec));
  return rec;
}

/**
 * One run: a conditional fetch, then (when the file changed) an import of it as a job without
 * confirmation, waited for. The validators are kept only once the import has completed, so a
 * failed run is retried in full next time rather than answered 304.
 */
export async function runSync(store: LevelStore, jobs: ImportJobs, id: string,
  fetchOptions: Pick<FetchSourceOptions, 'signal' | 'timeouts' | 'maxBytes'> = {}): Promise<SyncRunResult> {
  const rec = await getSync(store, id);
  const startedAt = new Date();
  const next = rec.everyMs === null ? null : new Date(startedAt.getTime() + rec.everyMs).toISOString();
  const failed = async (err: unknown): Promise<SyncRunResult> => {
    const e = err as OptoutError;
    const error = { code: e.code ?? 'OPTOUT_ERR_INTERNAL', message: e.message };
    await update(store, id, { lastRunAt: startedAt.toISOString(), lastStatus: 'failed', lastError: error, nextRunAt: next });
    return { sync: id, status: 'failed', job: null, error };
  };
  let fetched;
  try {
    fetched = await fetchSource(rec.url, {
      ...fetchOptions, allowPrivate: rec.allowPrivate, etag: rec.etag, lastModified: rec.lastModified, dir: jobs.uploadDir,
    });
  } catch (err) {
    return failed(err);
  }
  if (fetched.status === 'not-modified') {
    await update(store, id, { lastRunAt: startedAt.toISOString(), lastStatus: 'not-modified', lastError: null, nextRunAt: next });
    return { sync: id, status: 'not-modified', job: null, error: null };
  }
  let job: ImportJobView | undefined;
  try {
    const started = await jobs.createFromFile(fetched.path, {
      column: rec.column ?? undefined, unit: rec.unit ?? undefined, reason: rec.reason, source: rec.label, yes: true,
    }, { via: 'sync', actor: `sync:${id}`, url: rec.label, syncId: id });
    await update(store, id, { lastJobId: started.id });
    job = await jobs.wait(started.id);
  } catch (err) {
    return failed(err);
  }
  if (job?.state !== 'completed') {
    const result = await failed(job?.error ?? new OptoutError('OPTOUT_ERR_INTERNAL', 'The import did not complete'));
    return { ...result, job: job ?? null };
  }
  await update(store, id, {
    etag: fetched.etag, lastModified: fetched.lastModified, lastRunAt: startedAt.toISOString(), lastStatus: 'fetched', lastError: null, nextRunAt: next,
  });
  return { sync: id, status: 'fetched', job, error: null };
}
