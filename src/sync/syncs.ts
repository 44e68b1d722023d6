/**
 * Syncs: opt-out lists an external system publishes at a URL, fetched again and again and
 * imported each time they change. Kept in the ledger, with an audit record when added or removed.
 *
 * A sync is additive: each run imports what the file holds now, and an address that has left the
 * file stays suppressed (only `remove` ends a suppression). It needs no confirmation: the source
 * was approved when the sync was added. The URL is checked when the sync is added, and again at
 * every fetch and connection (a name can change what it points to).
 */
import { OptoutError, describeValue } from '../errors.js';
import type { ImportJobs, ImportJobView } from '../manage/import-jobs.js';
import { normalizeImportOptions } from '../options.js';
import { ACCOUNT_WIDE, type Ledger, type SyncRecord } from '../store/store.js';
import { fetchSource, type FetchSourceOptions } from '../fetch/fetch-source.js';
import { redactUrl, validateSyncUrl } from '../fetch/url-policy.js';
import { parseDuration } from '../units.js';

export type { SyncRecord };

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

/** `90s`, `15m`, `1h`, `1d` in milliseconds; at least one second. */
export function parseEvery(value: string): number {
  return parseDuration('every', value);
}

export async function listSyncs(store: Pick<Ledger, 'listSyncs'>): Promise<SyncRecord[]> {
  return store.listSyncs();
}

export async function getSync(store: Pick<Ledger, 'getSync'>, id: string): Promise<SyncRecord> {
  const rec = /^\d{1,12}$/.test(id) ? await store.getSync(id) : undefined;
  if (rec === undefined) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `No sync has the id ${describeValue(id)}`);
  return rec;
}

/** What a listing shows: the record without the URL, which may hold a token. */
export function publicSync(s: SyncRecord): Omit<SyncRecord, 'url'> {
  const { url: _url, ...rest } = s;
  return rest;
}

/** Adds a sync after checking its URL and options; audited. */
export async function addSync(store: Ledger, o: AddSyncOptions): Promise<SyncRecord> {
  const allowPrivate = o.allowPrivate === true;
  const url = validateSyncUrl(o.url, { allowPrivate });
  // The source is a placeholder: only the options that a sync keeps are checked here.
  const checked = normalizeImportOptions({ source: { kind: 'file', path: '.' }, column: o.column, unit: o.unit, reason: o.reason, confirm: { mode: 'yes' } });
  const everyMs = o.every === undefined ? null : parseEvery(o.every);
  const now = new Date();
  return store.createSync((id) => ({
      id, url: url.href, label: redactUrl(url), column: checked.column ?? null,
      unit: checked.scope === ACCOUNT_WIDE ? null : checked.scope, reason: checked.reason, everyMs, allowPrivate,
      createdAt: now.toISOString(), createdBy: o.actor ?? 'library',
      etag: null, lastModified: null, lastRunAt: null, lastStatus: null, lastJobId: null, lastError: null,
      nextRunAt: everyMs === null ? null : now.toISOString(),
  }), (rec) => store.audit({ actor: rec.createdBy, action: 'sync.add', key: null, job: null, unit: rec.unit, details: publicSync(rec) }));
}

/** Removes a sync (the entries it imported stay); audited. */
export async function removeSync(store: Ledger, id: string, actor = 'library'): Promise<void> {
  const rec = await getSync(store, id);
  await store.deleteSync(id, store.audit({ actor, action: 'sync.remove', key: null, job: null, unit: rec.unit, details: { id, label: rec.label } }));
}

async function update(store: Ledger, id: string, patch: Partial<SyncRecord>): Promise<SyncRecord> {
  const rec = { ...(await getSync(store, id)), ...patch };
  await store.putSync(rec);
  return rec;
}

/**
 * One run: a conditional fetch, then (when the file changed) an import of it as a job without
 * confirmation, waited for. The validators are kept only once the import has completed, so a
 * failed run is retried in full next time rather than answered 304.
 */
export async function runSync(store: Ledger, jobs: ImportJobs, id: string,
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
