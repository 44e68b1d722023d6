/**
 * Writes to a ledger through the store contract, the way the engine makes them (an import's
 * chunk, a single add or removal), for the contract suite and the tests of what follows a ledger.
 */
import { expect } from 'vitest';
import { hashHex, hashKeyTuple } from '../../src/filter/hash.js';
import { emptyCounts } from '../../src/store/counts.js';
import type { AuditAction } from '../../src/store/audit.js';
import type { JobRecord, SuppressionReason } from '../../src/store/jobs.js';
import { ACCOUNT_WIDE, type CheckView, type ChunkKeyCodec, type HashedKey, type Ledger, type ScopedEntry } from '../../src/store/store.js';

/**
 * A ledger as the callers take it, with the write lock single changes and rollbacks queue on;
 * the check view's half is there exactly when `supports.syncLookups` says so.
 */
export type ContractStore = Ledger & Partial<CheckView> & { withWriteLock<T>(fn: () => Promise<T>): Promise<T> };

/** The check view of a store that has one (`supports.syncLookups`). */
export function viewOf(store: ContractStore): CheckView | undefined {
  return store.supports.syncLookups ? (store as ContractStore & CheckView) : undefined;
}

export function hashed(key: string): HashedKey {
  const [h1, h2] = hashKeyTuple(key);
  return { key, h1, h2 };
}

/** A chunk key as an import worker builds it (see `dedupBucket` in src/workers/import-worker.ts). */
export function chunkKey(codec: ChunkKeyCodec, key: string): string {
  return codec.prefix + (codec.withHash ? hashHex(hashKeyTuple(key)[0]) : '') + key;
}

export function unitOf(scope: string): string | null {
  return scope === ACCOUNT_WIDE ? null : scope;
}

export function auditOf(store: Ledger, action: AuditAction, key: string | null, job: string | null, scope: string | null = null) {
  return store.audit({ actor: 'contract', action, key, job, unit: scope === null ? null : unitOf(scope), details: {} });
}

export function importFields(scope: string): Omit<JobRecord, 'id'> {
  const now = new Date().toISOString();
  return {
    kind: 'import', state: 'importing', scope, reason: 'unsubscribed', source: 'contract', confirmed: 'yes', confirmedCount: null,
    fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
    createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
    checkpoint: {
      phase: 'spool', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0,
      spool: { dir: '', bits: 0, lengths: [] }, bucket: 0,
    },
    error: null,
  };
}

/**
 * Writes `keys` (distinct) as bucket `bucket` of `job`, as the import's merge pass does: under
 * the write lock, present keys held, new keys added to the filter first, then one commit.
 */
export async function writeChunk(store: ContractStore, job: JobRecord, bucket: number, keys: readonly string[],
  addresses: ReadonlyMap<string, string> = new Map(), reasons: ReadonlyMap<string, SuppressionReason> = new Map(),
): Promise<{ applied: boolean; added: number; job: JobRecord }> {
  return store.withWriteLock(async () => {
    const codec = store.chunkKeyCodec(job.scope);
    const chunkKeys = keys.map((k) => chunkKey(codec, k));
    const present = await store.presentKeys(chunkKeys);
    const filter = await viewOf(store)?.filter();
    const writer = store.beginChunk(job.scope, job.id);
    // The merge pass hands keys over as the workers' bytes where the writer takes them.
    const bytes = writer.putEntryBytes?.bind(writer);
    let added = 0;
    chunkKeys.forEach((ck, i) => {
      const key = keys[i] as string;
      if (present[i]) {
        writer.putHold(ck, addresses.get(key), reasons.get(key));
      } else {
        const { h1, h2 } = hashed(key);
        filter?.add(h1, h2);
        if (bytes) bytes(Buffer.from(ck), h1, h2, addresses.get(key), reasons.get(key));
        else writer.putEntry(ck, addresses.get(key), reasons.get(key), h1, h2);
        added++;
      }
    });
    const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: bucket + 1 } };
    const result = await writer.commit(next, added);
    expect(result.added, 'one writer: the commit stores what was classified').toBe(result.applied ? added : 0);
    return { applied: result.applied, added: result.added, job: next };
  });
}

/** A whole import of one chunk, ended `completed` (so that it may be rolled back). */
export async function importKeys(store: ContractStore, scope: string, keys: readonly string[],
  reasons: ReadonlyMap<string, SuppressionReason> = new Map()): Promise<string> {
  const job = await store.createJob(importFields(scope));
  const written = await writeChunk(store, job, 0, keys, new Map(), reasons);
  await store.putJob({ ...written.job, state: 'completed', finishedAt: new Date().toISOString() });
  return job.id;
}

export async function addKey(store: ContractStore, scope: string, key: string, address = key) {
  return store.addSuppression({ ...hashed(key), scope, address, reason: 'manual', source: 'contract', actor: 'contract' },
    (outcome) => auditOf(store, 'add', key, outcome.job, scope));
}

export async function removeKey(store: ContractStore, scope: string, key: string) {
  return store.removeSuppression(scope, hashed(key), (removed) => auditOf(store, 'remove', key, removed.entry.jobId, scope));
}

export async function entries(store: Ledger, scope?: string): Promise<ScopedEntry[]> {
  const out: ScopedEntry[] = [];
  for await (const batch of store.scanEntries(scope)) out.push(...batch);
  return out;
}
