/**
 * The ledger on PostgreSQL: the source of truth that any number of processes share. Every write
 * is one transaction carrying its audit record and, when it changes entries or API keys, its
 * change record; the database, not a process, keeps writers apart:
 *
 * - opt-out wins through `INSERT ... ON CONFLICT DO NOTHING`: of two writers of one key, the
 *   unique index picks the first, and the other holds the key;
 * - an import chunk commits once: the job row is locked and its checkpoint compared first, so
 *   a replay (a lost acknowledgement, a resumed import) writes nothing;
 * - the change feed is numbered under a transaction-level advisory lock taken as the last step
 *   before the commit, so feed order is commit order (see {@link appendChange}).
 *
 * It has no check view (`supports.syncLookups` false): API replicas keep their own, fed by
 * `changesSince`.
 */
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { OptoutError } from '../../errors.js';
import { auditId, type AuditRecord } from '../audit.js';
import { JOB_STATES, UNENDED, canMove, moveJob } from '../job-states.js';
import { addRecordOf, jobMetaOf, type AnyJob, type JobMeta, type JobRecord, type JobState, type SuppressionReason } from '../jobs.js';
import {
  ACCOUNT_WIDE, shiftAdded, type AddOutcome, type AuditFields, type AuditScan, type Change, type ChunkKeyCodec, type ChunkResult,
  type ChunkWriter, type DeliveredEvent, type EventOutcome, type AddGroup, type AddGroupAudit, addEventsWith, addOneWith, type FeedSnapshotPart, type HashedKey, type Ledger, type RecordKind, assertRecordRef, type NewSuppression, type RemovedEntry, type RollbackCounts, type ScopedEntry,
  type StoredApiKey, type StoredEntry, type SyncRecord,
} from '../store.js';
import { createPool, redact, storeError, type PgPoolOptions } from './connect.js';
import { CHANGES_CHANNEL, ChangeListener } from './listen.js';
import { checkSchema } from './migrate.js';
import { CHUNK_LOCK_CLASS, FEED_LOCK, IMPORT_LOCK, LOCK_CLASS } from './schema.js';
import { InFlight, TurnQueue } from '../turns.js';
import { settleChunk, StagedChunk, STAGED_ARRAYS } from './stage.js';
import { entryHash, entryHashOfHex } from './entry-hash.js';

/** Scopes and keys cannot contain it (see the address policy), and PostgreSQL text cannot either. */
const SEP = '\u0000';
const PAGE = 1000;
/** Keys per lookup query: one array parameter, one index scan. */
const LOOKUP_PAGE = 10_000;
/**
 * Entries `e` of the keys given as two arrays, `$1` their `entryHash`es and `$2` the keys. With
 * EXPLAIN ANALYZE on 2M entries and a page of 10,000 keys: a nested loop of index-only probes
 * of the primary key (hash and key, then every scope of the key in that range), ~50 ms.
 * `key = ANY($2)` alone, as before the hash led the key, cannot use the index: a parallel
 * sequential scan of the table, ~300 ms. A key given with another key's hash finds nothing, as
 * in a folder store, whose entry keys hold the hash too: callers pass the hashes of the keys.
 */
const BY_HASHED_KEY = 'unnest($1::int[], $2::text[]) AS k(hash, key) JOIN entries e ON e.hash = k.hash AND e.key = k.key';
/** How often a process waiting for the import lease asks again. */
const LEASE_POLL_MS = 200;
/** Entries per part of a feed snapshot: a new replica reads them all, in as few round trips as memory allows. */
const SNAPSHOT_PAGE = 10_000;
/** How long a snapshot may wait for its reader between two reads. */
const SNAPSHOT_IDLE_LIMIT = '5min';

type Db = pg.Pool | pg.PoolClient;

/** The change's content. */
type ChangeBody = Omit<Change, 'seq'>;

/** The entries an import chunk stored, in its change record: the rows of its staging table, all of one scope and job. */
interface StagedPut {
  scope: string;
  job: string;
}

/** A change's body as the feed stores it; a chunk's `put` is in the row's arrays (see {@link appendChange}). */
type StoredChangeBody = ChangeBody & { chunk?: StagedPut };

/** An entry's columns as read. */
interface EntryRow {
  job: string;
  address: string | null;
  reason: string | null;
}

function entryOfRow(r: EntryRow): StoredEntry {
  const entry: StoredEntry = { jobId: r.job, address: r.address ?? undefined };
  if (r.reason !== null) entry.reason = r.reason as SuppressionReason;
  return entry;
}

/**
 * Appends a change to the feed: the last statements of a writing transaction, right before its
 * COMMIT. The advisory lock is held until that commit, so no other transaction can number a
 * change in between: a transaction that numbered N has committed (or rolled back, freeing N)
 * before the next one reads the highest number, and a reader that has seen N has every change
 * below it. A plain sequence would not do: a transaction that took 5 may commit after one that
 * took 6, and a reader at 6 would never look back for 5.
 */
export async function appendChange(client: pg.ClientBase, body: Partial<ChangeBody>, chunk?: StagedPut): Promise<number> {
  const full: StoredChangeBody = { put: [], del: [], jobs: [], apiKeys: [], ...body, ...(chunk === undefined ? {} : { chunk }) };
  await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, FEED_LOCK]);
  const next = '(SELECT coalesce(max(seq), 0) + 1 FROM changes)';
  const insert = chunk === undefined
    ? `INSERT INTO changes (seq, body) SELECT ${next}, $1 RETURNING seq`
    : `INSERT INTO changes (seq, body, keys, addresses, reasons) SELECT ${next}, $1, s.keys, s.addresses, s.reasons FROM (${STAGED_ARRAYS}) s RETURNING seq`;
  // The notification goes out at COMMIT (none for a rolled-back transaction).
  const { rows } = await client.query<{ seq: string }>(
    `WITH appended AS (${insert}) SELECT seq, pg_notify('${CHANGES_CHANNEL}', seq::text) FROM appended`, [JSON.stringify(full)]);
  return Number((rows[0] as { seq: string }).seq);
}

/** A change row as read: an import chunk's stored rows come as arrays beside its body. */
interface ChangeRow {
  seq: string;
  body: StoredChangeBody;
  keys: string[] | null;
  addresses: Array<string | null> | null;
  reasons: Array<string | null> | null;
}

function changeOfRow(r: ChangeRow): Change {
  const { chunk, ...body } = r.body;
  const change: Change = { seq: Number(r.seq), ...body };
  if (chunk !== undefined && r.keys !== null) {
    const { addresses, reasons } = r;
    change.put = r.keys.map((key, i) => ({
      scope: chunk.scope, key, ...entryOfRow({ job: chunk.job, address: addresses?.[i] ?? null, reason: reasons?.[i] ?? null }),
    }));
  }
  return change;
}

/** A chunk submitted for commit, as the next chunk of its job waits for it. */
interface ChunkLink {
  job: JobRecord;
  /** Entries as classified. */
  added: number;
  /** Resolves once its transaction holds its chunk lock (or has failed before). */
  locked: Promise<void>;
  write: Promise<ChunkResult>;
}

/**
 * The lock of job $2's chunk of bucket $3, under {@link CHUNK_LOCK_CLASS}: one per chunk, never
 * reused by a later chunk of the job (which would wait for a lock its predecessor's successor holds).
 */
const CHUNK_LOCK_KEY = '(($2::bigint * 65536 + $3::bigint) % 2147483648)::int';

/** Options of {@link PgLedger.open}. */
export interface PgLedgerOptions extends PgPoolOptions {
  /**
   * The local folder where imports keep their spools and uploads.
   * @default a folder per database under the OS temporary folder
   */
  workDir?: string;
}

/** A folder per database (not per process), so that a resumed import finds its spool. */
export function defaultWorkDir(url: string): string {
  const u = new URL(url);
  const id = createHash('sha256').update(`${u.username}@${u.hostname}:${u.port}${u.pathname}`).digest('hex').slice(0, 16);
  return join(tmpdir(), `optout-pg-${id}`);
}

/** The {@link Ledger} on a PostgreSQL database migrated by `migrate`. */
export class PgLedger implements Ledger {
  readonly supports = { syncLookups: false, feed: true, exclusive: false, settlesChunks: true, chunksInFlight: 2 } as const;
  readonly workDir: string;
  readonly #pool: pg.Pool;
  readonly #url: string;
  /** The server process of the session that holds the import lock while this process runs an import job. */
  #leasePid: number | undefined;
  #open = true;
  /** Audit ids are made here; a random start keeps two processes' ids apart in the same millisecond. */
  #auditSeq = Math.floor(Math.random() * 1e6);
  readonly #writers = new TurnQueue();
  readonly #importers = new TurnQueue();
  readonly #inFlight = new InFlight();
  /** Per import job, the last chunk submitted here, until it is written (a failed one stays). */
  readonly #chunks = new Map<string, ChunkLink>();
  /** Import jobs whose last chunk committed here found keys the scope held. */
  readonly #overlapping = new Set<string>();
  /** The fencing epoch at which this process took each job it runs (`takeJob`): its writes of the job require it still. */
  readonly #epochs = new Map<string, number>();
  readonly #listener: ChangeListener;

  private constructor(pool: pg.Pool, url: string, workDir: string) {
    this.#pool = pool;
    this.#url = url;
    this.workDir = workDir;
    this.#listener = new ChangeListener(url);
  }

  /**
   * Opens the ledger at `url`.
   * @throws OptoutError OPTOUT_ERR_SCHEMA when the database lacks the current schema (run `optout migrate`).
   */
  static async open(url: string, options: PgLedgerOptions = {}): Promise<PgLedger> {
    const pool = createPool(url, options);
    try {
      await checkSchema(pool, url);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PgLedger(pool, url, options.workDir ?? defaultWorkDir(url));
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Where it is, without the password. */
  get url(): string {
    return redact(this.#url);
  }

  withWriteLock<T>(fn: () => Promise<T>, options: { drain: boolean } = { drain: true }): Promise<T> {
    this.#assertOpen();
    return this.#writers.run(async () => {
      if (options.drain) await this.#inFlight.drain();
      return fn();
    });
  }

  /**
   * One import job at a time in the database, whichever process runs it: the lease is a session
   * advisory lock, held on a connection of its own for the whole job. A job found `importing`
   * under the lease was therefore cut off (its process ended, and its session's lock with it),
   * and may be resumed. Chunk commits check, in their transaction, that the lock is still held
   * (see {@link #commitChunk}): a process whose session was lost writes no more chunks.
   */
  withImportLease<T>(fn: () => Promise<T>, options: { onWait?: () => void } = {}): Promise<T> {
    this.#assertOpen();
    return this.#importers.run(async () => {
      const c = await this.#connect();
      let broken = false;
      // A checked-out connection that breaks emits here; unheard, it would end the process.
      const onError = (): void => {
        broken = true;
      };
      c.on('error', onError);
      try {
        // The server must notice a lease holder that vanished (a machine that died): without
        // probes of its own it would keep the lock, and every other import would wait, for hours.
        await c.query('SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3')
          .catch((cause: unknown) => { throw this.#error(cause, 'set up the import lease'); });
        for (let waited = false; ; waited = true) {
          const { rows: [got] } = await c.query<{ ok: boolean; pid: number }>(
            'SELECT pg_try_advisory_lock($1, $2) AS ok, pg_backend_pid() AS pid', [LOCK_CLASS, IMPORT_LOCK])
            .catch((cause: unknown) => { throw this.#error(cause, 'take the import lease'); });
          if (got?.ok === true) {
            this.#leasePid = got.pid;
            break;
          }
          // Another process imports into this database: wait for its job to end.
          if (!waited) options.onWait?.();
          await sleep(LEASE_POLL_MS);
          this.#assertOpen();
        }
        try {
          return await fn();
        } finally {
          this.#leasePid = undefined;
          await c.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, IMPORT_LOCK]).catch(() => {
            broken = true;
          });
        }
      } finally {
        c.off('error', onError);
        // Dropping a broken session also drops any lock it still held.
        c.release(broken);
      }
    });
  }

  async scopeCounts(): Promise<ReadonlyMap<string, number>> {
    const { rows } = await this.#query<{ scope: string; n: string }>('read the counts',
      'SELECT scope, sum(delta) AS n FROM count_deltas GROUP BY scope ORDER BY scope');
    return new Map(rows.map((r) => [r.scope, Number(r.n)]));
  }

  audit(fields: AuditFields): AuditRecord {
    this.#assertOpen();
    const now = Date.now();
    return { id: auditId(now, this.#auditSeq++), time: new Date(now).toISOString(), ...fields };
  }

  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    await this.#tx('append audit records', (c) => insertAudit(c, records));
  }

  async *auditRecords(scan: AuditScan): AsyncGenerator<AuditRecord> {
    this.#assertOpen();
    let after = { id: '', n: '-1' };
    for (;;) {
      const params: unknown[] = [scan.fromId, after.id, after.n, PAGE];
      const byKey = scan.key === undefined ? '' : 'AND key = $5';
      if (scan.key !== undefined) params.push(scan.key);
      const { rows } = await this.#query<{ id: string; n: string; record: AuditRecord }>('read the audit trail',
        `SELECT id, n, record FROM audit WHERE id >= $1 AND (id, n) > ($2, $3::bigint) ${byKey} ORDER BY id, n LIMIT $4`, params);
      for (const r of rows) yield r.record;
      const last = rows.at(-1);
      if (last === undefined || rows.length < PAGE) return;
      after = { id: last.id, n: last.n };
    }
  }

  async createJob(fields: Omit<JobRecord, 'id'>, complete: (job: JobRecord) => JobRecord = (j) => j, id?: string): Promise<JobRecord> {
    return this.#tx('create a job', async (c) => {
      const jobId = id ?? (await nextId(c, 'job_ids'));
      const job = complete({ id: jobId, ...fields });
      await putJobRow(c, job);
      // A reserved id above the sequence: later ids must not collide with it.
      if (id !== undefined) await c.query(`SELECT setval('job_ids', $1::bigint) WHERE $1::bigint > (SELECT last_value FROM job_ids)`, [id]);
      return job;
    });
  }

  async putJob(job: AnyJob, audit?: AuditRecord): Promise<void> {
    await this.#tx('write a job', async (c) => {
      await putJobRow(c, job, this.#epochs.get(job.id));
      if (audit) await insertAudit(c, [audit]);
    });
    // Ended: no one's to run, and the epoch its taker kept is of no more use.
    if (!UNENDED.has(job.state as JobState)) this.#epochs.delete(job.id);
  }

  /**
   * The import lease is a session lock, and a session can be lost (a network cut, a server that
   * ended it) while its process goes on: another process may then take the lease and the job.
   * Each taking moves the job's epoch on; the taker's writes of the job match it, an earlier
   * holder's no longer do.
   */
  async takeJob(id: string): Promise<void> {
    const { rows: [row] } = await this.#query<{ epoch: string }>('take a job', 'UPDATE jobs SET epoch = epoch + 1 WHERE id = $1 RETURNING epoch', [id]);
    if (row === undefined) throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No job has the id ${id}`);
    this.#epochs.set(id, Number(row.epoch));
  }

  async getJob(id: string): Promise<AnyJob | undefined> {
    return this.#byNumericId<AnyJob>('jobs', id);
  }

  async listJobs(): Promise<AnyJob[]> {
    const { rows } = await this.#query<{ record: AnyJob }>('list jobs', 'SELECT record FROM jobs ORDER BY id');
    return rows.map((r) => r.record);
  }

  async listImports(): Promise<JobRecord[]> {
    const { rows } = await this.#query<{ record: JobRecord }>('list imports', `SELECT record FROM jobs WHERE kind = 'import' ORDER BY id`);
    return rows.map((r) => r.record);
  }

  /** Chunk keys are `<scope>\0<h1 as 8 hex digits><key>`: the entries' key starts with the hash (entry-hash.ts). */
  chunkKeyCodec(scope: string): ChunkKeyCodec {
    this.#assertOpen();
    return { prefix: scope + SEP, withHash: true };
  }

  async presentKeys(chunkKeys: readonly string[]): Promise<boolean[]> {
    this.#assertOpen();
    const parsed = chunkKeys.map(parseChunkKey);
    const byScope = new Map<string, { hashes: number[]; keys: string[] }>();
    for (const { scope, hash, key } of parsed) {
      const list = byScope.get(scope) ?? { hashes: [], keys: [] };
      list.hashes.push(hash);
      list.keys.push(key);
      byScope.set(scope, list);
    }
    const present = new Set<string>();
    for (const [scope, { hashes, keys }] of byScope) {
      const { rows } = await this.#query<{ key: string }>('look up keys', `SELECT k.key FROM ${BY_HASHED_KEY} WHERE e.scope = $3`, [hashes, keys, scope]);
      for (const r of rows) present.add(scope + SEP + r.key);
    }
    return parsed.map(({ scope, key }) => present.has(scope + SEP + key));
  }

  beginChunk(scope: string, jobId: string): ChunkWriter {
    this.#assertOpen();
    let rows = new StagedChunk();
    let held = 0;
    const put = (chunkKey: string, address: string | undefined, reason?: SuppressionReason): void => {
      const { hash, key } = parseChunkKey(chunkKey);
      rows.add({ hash, key, address: address ?? null, reason: reason ?? null });
    };
    // A chunk key's bytes: the scope, the separator, the hash as 8 hex digits, the key.
    const keyAt = Buffer.byteLength(scope) + 1 + 8;
    return {
      putEntry: put,
      putEntryBytes: (chunkKey, h1, _h2, address, reason) => {
        rows.addBytes(entryHash(h1), chunkKey, keyAt, address ?? null, reason ?? null);
      },
      putHold: (chunkKey, address, reason) => {
        held++;
        put(chunkKey, address, reason);
      },
      commit: (job, added) => {
        const before = this.#chunks.get(jobId);
        let onLocked!: () => void;
        const locked = new Promise<void>((resolve) => {
          onLocked = resolve;
        });
        const expectNew = held === 0 && !this.#overlapping.has(jobId);
        // A chunk at or below the last one submitted redoes it (a resumed job): no predecessor.
        const after = before !== undefined && before.job.checkpoint.bucket < job.checkpoint.bucket ? before : undefined;
        const link: ChunkLink = { job, added, locked, write: undefined as unknown as Promise<ChunkResult> };
        link.write = this.#inFlight.track(this.#commitChunk(scope, jobId, rows, link, onLocked, after, expectNew));
        this.#chunks.set(jobId, link);
        // A failed chunk stays the job's last: a chunk submitted after it must fail too.
        link.write.then(() => {
          if (this.#chunks.get(jobId) === link) this.#chunks.delete(jobId);
        }, () => undefined).finally(onLocked);
        return link.write;
      },
      discard: async () => {
        rows = new StagedChunk();
      },
    };
  }

  /**
   * Every key of the chunk is settled here, whatever the caller classified (`supports.settlesChunks`):
   * stored when the scope lacks it, held otherwise. Another process may have stored or removed a
   * key since, and an importer may not have looked its keys up at all.
   *
   * Two chunks of a job may be in flight (`supports.chunksInFlight`), each on a connection of its
   * own: the second stores its keys (buckets hold disjoint keys) while the first commits, then
   * waits in the server for the first's transaction to end (an advisory lock the first holds,
   * so the server sees the wait and breaks any deadlock it closes), and commits only after it:
   * its checkpoint must never pass over a chunk that was not written, so it fails when the first
   * did. The checkpoint, read under the job's row lock, still decides: a replay writes nothing.
   */
  async #commitChunk(scope: string, jobId: string, rows: StagedChunk, link: ChunkLink, onLocked: () => void, before: ChunkLink | undefined,
    expectNew: boolean): Promise<ChunkResult> {
    const { job, added } = link;
    const replayed = (prior: AnyJob | undefined): boolean =>
      prior?.kind === 'import' && prior.checkpoint.phase === 'merge' && prior.checkpoint.bucket >= job.checkpoint.bucket;
    return this.#tx('commit an import chunk', async (c) => {
      try {
        await c.query(`SELECT pg_advisory_xact_lock($1, ${CHUNK_LOCK_KEY})`, [CHUNK_LOCK_CLASS, jobId, job.checkpoint.bucket]);
      } finally {
        onLocked();
      }
      // Settled already (an acknowledgement lost, a resumed job): nothing to store.
      if (replayed(await jobRecord(c, jobId))) return { applied: false, added: 0 };
      await c.query('SAVEPOINT optout_chunk');
      const { stored: real, allNew } = await settleChunk(c, scope, jobId, rows, expectNew);
      let carried = 0;
      if (before !== undefined) {
        await before.locked;
        await c.query(`SELECT pg_advisory_xact_lock_shared($1, ${CHUNK_LOCK_KEY})`, [CHUNK_LOCK_CLASS, jobId, before.job.checkpoint.bucket]);
        // Its transaction has ended; its counts moved by what it really stored, and so do these.
        const result = await before.write.catch(() => undefined);
        carried = result?.applied === true ? result.added - before.added : 0;
      }
      // The row lock makes chunk commits of one job take turns; the checkpoint decides.
      const prior = await jobRecord(c, jobId, 'FOR UPDATE');
      if (this.#leasePid !== undefined) await assertLease(c, this.#leasePid);
      if (replayed(prior)) {
        await c.query('ROLLBACK TO SAVEPOINT optout_chunk');
        return { applied: false, added: 0 };
      }
      if (before !== undefined && !(prior?.kind === 'import' && prior.checkpoint.phase === 'merge' && prior.checkpoint.bucket >= before.job.checkpoint.bucket)) {
        throw new OptoutError('OPTOUT_ERR_STORE', 'The import chunk before this one was not written, so this one was not either. ' +
          'Run the same import again to resume it.');
      }
      // The job's next chunks go straight to settling key by key once one found keys present
      // (a list imported again, or one that overlaps the scope): trying them as all new would fail.
      if (allNew) this.#overlapping.delete(jobId);
      else this.#overlapping.add(jobId);
      const shift = real - added + carried;
      const written: JobRecord = shift === 0 ? job : { ...job, checkpoint: { ...job.checkpoint, counts: shiftAdded(job.checkpoint.counts, shift) } };
      await putJobRow(c, written, this.#epochs.get(jobId));
      await addCount(c, scope, real);
      if (real > 0) {
        await appendChange(c, { jobs: [{ id: jobId, meta: jobMetaOf(written) }] }, { scope, job: jobId });
      }
      return { applied: true, added: real };
    });
  }

  async addSuppression(s: NewSuppression, audit: (outcome: AddOutcome) => AuditRecord): Promise<AddOutcome> {
    return addOneWith((g, a) => this.#tx('add suppressions', (c) => writeAdds(c, g, a)), s, audit);
  }

  async addEvents(events: readonly DeliveredEvent[], audit: (add: NewSuppression, outcome: AddOutcome, eventId: string) => AuditRecord): Promise<EventOutcome[]> {
    return addEventsWith((g, a) => this.#tx('add suppressions', (c) => writeAdds(c, g, a)), events, audit);
  }

  async removeSuppression(scope: string, key: HashedKey, audit: (removed: RemovedEntry) => AuditRecord): Promise<RemovedEntry> {
    return this.#tx('remove a suppression', async (c) => {
      const { rows: [row] } = await c.query<EntryRow>(
        'SELECT job, address, reason FROM entries WHERE hash = $3 AND key = $2 AND scope = $1 FOR UPDATE', [scope, key.key, entryHash(key.h1)]);
      if (row === undefined) {
        throw new OptoutError('OPTOUT_ERR_NOT_SUPPRESSED', `${key.key} is not suppressed ${scope === ACCOUNT_WIDE ? 'account-wide' : `in unit ${scope}`}`);
      }
      const { rows: holders } = await c.query<{ job: string }>('SELECT job FROM holds WHERE scope = $1 AND key = $2', [scope, key.key]);
      const removed: RemovedEntry = {
        entry: entryOfRow(row),
        meta: await jobMeta(c, row.job),
        heldBy: holders.map((h) => h.job).sort(byString),
      };
      const record = audit(removed);
      await c.query('DELETE FROM entries WHERE hash = $3 AND key = $2 AND scope = $1', [scope, key.key, entryHash(key.h1)]);
      await c.query('DELETE FROM holds WHERE scope = $1 AND key = $2', [scope, key.key]);
      await addCount(c, scope, -1);
      await insertAudit(c, [record]);
      await appendChange(c, { del: [{ scope, key: key.key }] });
      return removed;
    });
  }

  /** One transaction: a crash leaves the job as it was, and running the rollback again does it all. */
  async rollbackJob(job: AnyJob, audit: (counts: RollbackCounts) => AuditRecord): Promise<RollbackCounts> {
    return this.#tx('roll back a job', async (c) => {
      const scope = job.scope;
      const released = await c.query('DELETE FROM holds WHERE scope = $1 AND job = $2', [scope, job.id]);
      // The earliest other holder inherits an entry, as if it had been the first to store it.
      // An entry passed to an heir keeps the reason its row gave. The heir's entry is found by
      // its hash too, read from the owned row: EXPLAIN shows a probe of the primary key per held
      // key for a small job, and hash joins over one scan of the table for a job that owns most
      // of it (100,000 held of 2M owned), never a scan per key.
      const { rows: kept } = await c.query<EntryRow & { key: string }>(
        `UPDATE entries e SET job = h.heir
         FROM (SELECT owned.hash, hd.key, min(hd.job) AS heir FROM holds hd
               JOIN entries owned ON owned.scope = hd.scope AND owned.key = hd.key
               WHERE hd.scope = $1 AND owned.job = $2 GROUP BY owned.hash, hd.key) AS h
         WHERE e.hash = h.hash AND e.key = h.key AND e.scope = $1 AND e.job = $2
         RETURNING e.key, e.job, e.address, e.reason`, [scope, job.id]);
      if (kept.length > 0) {
        await c.query(`DELETE FROM holds h USING unnest($2::text[], $3::bigint[]) AS k(key, heir)
          WHERE h.scope = $1 AND h.key = k.key AND h.job = k.heir`, [scope, kept.map((k) => k.key), kept.map((k) => k.job)]);
      }
      const { rows: gone } = await c.query<{ key: string }>('DELETE FROM entries WHERE scope = $1 AND job = $2 RETURNING key', [scope, job.id]);
      const counts: RollbackCounts = { removed: gone.length, kept: kept.length, holdsReleased: released.rowCount ?? 0 };
      await addCount(c, scope, -counts.removed);
      await putJobRow(c, moveJob<AnyJob>(job, 'rolled_back'));
      await insertAudit(c, [audit(counts)]);
      if (kept.length > 0 || gone.length > 0) {
        const heirs = [...new Set(kept.map((k) => k.job))];
        const jobs = await Promise.all(heirs.map(async (id) => ({ id, meta: await jobMeta(c, id) })));
        await appendChange(c, {
          put: kept.map((k) => ({ scope, key: k.key, ...entryOfRow(k) })),
          del: gone.map((g) => ({ scope, key: g.key })),
          jobs,
        });
      }
      return counts;
    });
  }

  async entriesOf(key: HashedKey): Promise<Array<{ scope: string; entry: StoredEntry }>> {
    return (await this.entriesOfMany([key]))[0] ?? [];
  }

  async entriesOfMany(keys: readonly HashedKey[]): Promise<Array<Array<{ scope: string; entry: StoredEntry }>>> {
    this.#assertOpen();
    const found = new Map<string, Array<{ scope: string; entry: StoredEntry }>>();
    for (let i = 0; i < keys.length; i += LOOKUP_PAGE) {
      const page = [...new Map(keys.slice(i, i + LOOKUP_PAGE).map((k) => [k.key, k])).values()];
      const { rows } = await this.#query<EntryRow & { key: string; scope: string }>('look up keys',
        `SELECT k.key, e.scope, e.job, e.address, e.reason FROM ${BY_HASHED_KEY} ORDER BY k.key, e.scope <> '*', e.scope`,
        [page.map((k) => entryHash(k.h1)), page.map((k) => k.key)]);
      for (const r of rows) {
        const list = found.get(r.key) ?? [];
        list.push({ scope: r.scope, entry: entryOfRow(r) });
        found.set(r.key, list);
      }
    }
    return keys.map((k) => (found.get(k.key) ?? []).map((e) => ({ scope: e.scope, entry: { ...e.entry } })));
  }

  /** One snapshot for the whole walk (REPEATABLE READ): writes made meanwhile are not seen. */
  async *scanEntries(scope?: string): AsyncGenerator<ScopedEntry[]> {
    const c = await this.#snapshot();
    try {
      yield* this.#entryPages(c, PAGE, scope);
    } finally {
      await this.#endSnapshot(c);
    }
  }

  async *feedSnapshot(): AsyncGenerator<FeedSnapshotPart> {
    const c = await this.#snapshot();
    try {
      // Read in the snapshot: the feed position and the tables agree (appendChange takes the
      // feed lock as a transaction's last step, so no change below `seq` commits later).
      const { rows: [head] } = await c.query<{ seq: string }>('SELECT coalesce(max(seq), 0) AS seq FROM changes')
        .catch((cause: unknown) => { throw this.#error(cause, 'read the feed head'); });
      const seq = Number((head as { seq: string }).seq);
      const { rows: keys } = await c.query<{ record: StoredApiKey }>('SELECT record FROM api_keys ORDER BY id')
        .catch((cause: unknown) => { throw this.#error(cause, 'list API keys'); });
      yield { seq, put: [], jobs: [], apiKeys: keys.map((r) => r.record) };
      const seen = new Set<string>();
      for await (const put of this.#entryPages(c, SNAPSHOT_PAGE)) {
        const fresh = [...new Set(put.map((e) => e.jobId))].filter((id) => !seen.has(id));
        for (const id of fresh) seen.add(id);
        const { rows } = await c.query<{ id: string; record: AnyJob }>('SELECT id::text AS id, record FROM jobs WHERE id = ANY($1::bigint[])', [fresh])
          .catch((cause: unknown) => { throw this.#error(cause, 'read job records'); });
        const records = new Map(rows.map((r) => [r.id, r.record]));
        yield { seq, put, jobs: fresh.map((id) => ({ id, meta: jobMetaOf(records.get(id)) })), apiKeys: [] };
      }
    } finally {
      await this.#endSnapshot(c);
    }
  }

  onChange(wake: () => void): () => void {
    this.#assertOpen();
    return this.#listener.subscribe(wake);
  }

  async feedId(): Promise<string> {
    const { rows } = await this.#query<{ value: string }>('read the ledger id', `SELECT value FROM optout_meta WHERE name = 'ledger_id'`);
    const id = rows[0]?.value;
    if (id === undefined) throw new OptoutError('OPTOUT_ERR_SCHEMA', `The database ${this.url} has no ledger id: run \`optout migrate --db <url>\``);
    return id;
  }

  /** A connection in a read-only REPEATABLE READ transaction: one snapshot for every read on it. */
  async #snapshot(): Promise<pg.PoolClient> {
    const c = await this.#connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // Its reader sets the pace between pages (a replica applying each page to LevelDB, an
      // export's client): a pause of a few seconds there must not end the snapshot, a dead
      // reader still must (an open snapshot holds back vacuum).
      await c.query(`SET LOCAL idle_in_transaction_session_timeout = '${SNAPSHOT_IDLE_LIMIT}'`);
    } catch (cause) {
      c.release(true);
      throw this.#error(cause, 'begin a snapshot');
    }
    return c;
  }

  async #endSnapshot(c: pg.PoolClient): Promise<void> {
    let broken = false;
    await c.query('ROLLBACK').catch(() => {
      broken = true;
    });
    c.release(broken);
  }

  /**
   * Every entry (of one scope, or all), in the primary key's order (key hash, key, scope: within
   * one scope, the order of a folder store's entries), in pages of `size`, read on `c`. Each page
   * is one index scan that starts where the last ended (a row comparison on the primary key's
   * columns is an index condition); one scope's pages walk the same index and skip the other
   * scopes' keys.
   */
  async *#entryPages(c: pg.PoolClient, size: number, scope?: string): AsyncGenerator<ScopedEntry[]> {
    let after: [number, string, string] = [-0x8000_0000, '', ''];
    for (;;) {
      const params: unknown[] = [...after, size];
      if (scope !== undefined) params.push(scope);
      const { rows } = await c.query<EntryRow & { hash: number; scope: string; key: string }>(
        `SELECT hash, scope, key, job, address, reason FROM entries WHERE (hash, key, scope) > ($1, $2, $3) ${scope === undefined ? '' : 'AND scope = $5'}
         ORDER BY hash, key, scope LIMIT $4`, params).catch((cause: unknown) => { throw this.#error(cause, 'scan entries'); });
      if (rows.length > 0) yield rows.map((r) => ({ scope: r.scope, key: r.key, ...entryOfRow(r) }));
      const last = rows.at(-1);
      if (last === undefined || rows.length < size) break;
      after = [last.hash, last.key, last.scope];
    }
  }

  async putApiKey(key: StoredApiKey, audit: AuditRecord): Promise<void> {
    await this.#tx('write an API key', async (c) => {
      await c.query('INSERT INTO api_keys (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record', [key.id, JSON.stringify(key)]);
      await insertAudit(c, [audit]);
      await appendChange(c, { apiKeys: [key] });
    });
  }

  async getApiKey(id: string): Promise<StoredApiKey | undefined> {
    const { rows } = await this.#query<{ record: StoredApiKey }>('read an API key', 'SELECT record FROM api_keys WHERE id = $1', [id]);
    return rows[0]?.record;
  }

  async listApiKeys(): Promise<StoredApiKey[]> {
    const { rows } = await this.#query<{ record: StoredApiKey }>('list API keys', 'SELECT record FROM api_keys ORDER BY id');
    return rows.map((r) => r.record);
  }

  async createSync(build: (id: string) => SyncRecord, audit: (sync: SyncRecord) => AuditRecord): Promise<SyncRecord> {
    return this.#tx('create a sync', async (c) => {
      const sync = build(await nextId(c, 'sync_ids'));
      const record = audit(sync);
      await c.query('INSERT INTO syncs (id, record) VALUES ($1, $2)', [sync.id, JSON.stringify(sync)]);
      await insertAudit(c, [record]);
      return sync;
    });
  }

  async putRecord(kind: RecordKind, id: string, value: unknown, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    await this.#tx('write a record', async (c) => {
      await c.query('INSERT INTO records (kind, id, value) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE SET value = EXCLUDED.value',
        [kind, id, JSON.stringify(value)]);
      if (audit !== undefined) await insertAudit(c, [audit]);
    });
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | undefined> {
    assertRecordRef(kind, id);
    const { rows } = await this.#query<{ value: T }>('read a record', 'SELECT value FROM records WHERE kind = $1 AND id = $2', [kind, id]);
    return rows[0]?.value;
  }

  async listRecords<T>(kind: RecordKind): Promise<Array<{ id: string; value: T }>> {
    assertRecordRef(kind, 'x');
    const { rows } = await this.#query<{ id: string; value: T }>('list records', 'SELECT id, value FROM records WHERE kind = $1 ORDER BY id', [kind]);
    return rows;
  }

  async deleteRecord(kind: RecordKind, id: string, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    await this.#tx('delete a record', async (c) => {
      await c.query('DELETE FROM records WHERE kind = $1 AND id = $2', [kind, id]);
      if (audit !== undefined) await insertAudit(c, [audit]);
    });
  }

  async putSync(sync: SyncRecord): Promise<void> {
    await this.#query('write a sync', 'INSERT INTO syncs (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record',
      [sync.id, JSON.stringify(sync)]);
  }

  async claimSync(id: string, due: string, until: string): Promise<boolean> {
    if (!/^\d{1,18}$/.test(id)) return false;
    // Read and rewritten whole under a row lock rather than edited in SQL: records are json, kept
    // byte for byte as written, and a jsonb round trip would reorder their keys.
    return this.#tx('claim a sync', async (c) => {
      const { rows } = await c.query<{ record: SyncRecord }>('SELECT record FROM syncs WHERE id = $1 FOR UPDATE', [id]);
      const sync = rows[0]?.record;
      if (sync?.nextRunAt !== due) return false;
      await c.query('UPDATE syncs SET record = $2 WHERE id = $1', [id, JSON.stringify({ ...sync, nextRunAt: until })]);
      return true;
    });
  }

  async getSync(id: string): Promise<SyncRecord | undefined> {
    return this.#byNumericId<SyncRecord>('syncs', id);
  }

  /** The record of `table` with id `id`; none for an id that is no bigint (the column would refuse it). */
  async #byNumericId<T>(table: 'jobs' | 'syncs', id: string): Promise<T | undefined> {
    if (!/^\d{1,18}$/.test(id)) {
      this.#assertOpen();
      return undefined;
    }
    const { rows } = await this.#query<{ record: T }>(`read from ${table}`, `SELECT record FROM ${table} WHERE id = $1`, [id]);
    return rows[0]?.record;
  }

  async listSyncs(): Promise<SyncRecord[]> {
    const { rows } = await this.#query<{ record: SyncRecord }>('list syncs', 'SELECT record FROM syncs ORDER BY id');
    return rows.map((r) => r.record);
  }

  async deleteSync(id: string, audit: AuditRecord): Promise<void> {
    await this.#tx('delete a sync', async (c) => {
      await c.query('DELETE FROM syncs WHERE id = $1', [id]);
      await insertAudit(c, [audit]);
    });
  }

  /** The tables of the ledger's schema, with their indexes. */
  async storageBytes(): Promise<number> {
    const { rows } = await this.#query<{ bytes: string }>('measure the tables',
      `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS bytes FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'`);
    return Number((rows[0] as { bytes: string }).bytes);
  }

  async head(): Promise<number> {
    const { rows } = await this.#query<{ seq: string }>('read the feed head', 'SELECT coalesce(max(seq), 0) AS seq FROM changes');
    return Number((rows[0] as { seq: string }).seq);
  }

  async changesSince(after: number, limit: number): Promise<Change[]> {
    const { rows } = await this.#query<ChangeRow>('read the feed',
      'SELECT seq, body, keys, addresses, reasons FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2', [Math.max(0, after), Math.max(0, limit)]);
    return rows.map(changeOfRow);
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.#listener.close();
    await this.#inFlight.drain();
    await this.#pool.end();
  }


  async #connect(): Promise<pg.PoolClient> {
    this.#assertOpen();
    return this.#pool.connect().catch((cause: unknown) => { throw this.#error(cause, `connect to ${this.url}`); });
  }

  async #query<R extends pg.QueryResultRow>(doing: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    this.#assertOpen();
    try {
      return await this.#pool.query<R>(sql, params);
    } catch (cause) {
      throw this.#error(cause, doing);
    }
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  async #tx<T>(doing: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (cause) {
      await c.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw this.#error(cause, doing);
    } finally {
      // A connection whose rollback failed is in an unknown state: drop it rather than reuse it.
      c.release(broken);
    }
  }

  #error(cause: unknown, doing: string): OptoutError {
    if (cause instanceof OptoutError) return cause;
    if (!this.#open) return new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', 'The PostgreSQL ledger is closed', { cause });
    return storeError(cause, doing);
  }

  #assertOpen(): void {
    if (!this.#open) throw new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', 'The PostgreSQL ledger is closed');
  }
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function parseChunkKey(chunkKey: string): { scope: string; hash: number; key: string } {
  const sep = chunkKey.indexOf(SEP);
  return { scope: chunkKey.slice(0, sep), hash: entryHashOfHex(chunkKey.slice(sep + 1, sep + 9)), key: chunkKey.slice(sep + 9) };
}

/** Fails the transaction unless the session `pid` still holds the import lock. */
async function assertLease(c: Db, pid: number): Promise<void> {
  const { rowCount } = await c.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
    AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2 AND pid = $3`, [LOCK_CLASS, IMPORT_LOCK, pid]);
  if (rowCount === 0) {
    throw new OptoutError('OPTOUT_ERR_STORE', 'The import lost its lease on the database (its session ended); the chunk was not ' +
      'written. Run the same import again to resume it.');
  }
}

/**
 * Single adds, grouped by the event that brought them (none for a plain add), in the caller's
 * transaction. The events' ids go in first: of two processes given the same delivery, the
 * unique index lets one write it, and the other (which waits for that commit) finds it seen.
 * Opt-out wins as in an import: `ON CONFLICT DO NOTHING` keeps a present entry its owner's,
 * and the add holds it.
 */
async function writeAdds(c: pg.PoolClient, events: readonly AddGroup[], audit: AddGroupAudit): Promise<EventOutcome[]> {
  const ids = [...new Set(events.flatMap((e) => (e.id === undefined ? [] : [e.id])))];
  const fresh = new Set<string>();
  if (ids.length > 0) {
    const { rows } = await c.query<{ id: string }>('INSERT INTO seen_events (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING RETURNING id', [ids]);
    for (const r of rows) fresh.add(r.id);
  }
  const written = new Set(events.filter((e) => e.id === undefined || fresh.delete(e.id)));
  const jobIds = await nextIds(c, [...written].reduce((n, e) => n + e.adds.length, 0));
  const change: Pick<ChangeBody, 'put' | 'jobs'> = { put: [], jobs: [] };
  const audits: AuditRecord[] = [];
  const delta = new Map<string, number>();
  const out: EventOutcome[] = [];
  for (const event of events) {
    if (!written.has(event)) {
      out.push({ id: event.id ?? '', duplicate: true, adds: [] });
      continue;
    }
    const outcomes: AddOutcome[] = [];
    for (const s of event.adds) {
      const record = addRecordOf(jobIds.shift() as string, s);
      const address = s.address === s.key ? undefined : s.address;
      const { rowCount } = await c.query('INSERT INTO entries (hash, scope, key, job, address) VALUES ($5, $1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [s.scope, s.key, record.id, address ?? null, entryHash(s.h1)]);
      const outcome: AddOutcome = { added: rowCount === 1, job: record.id };
      if (outcome.added) {
        delta.set(s.scope, (delta.get(s.scope) ?? 0) + 1);
        change.put.push({ scope: s.scope, key: s.key, jobId: record.id, address });
        change.jobs.push({ id: record.id, meta: jobMetaOf(record) });
      } else {
        await c.query('INSERT INTO holds (scope, key, job) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [s.scope, s.key, record.id]);
      }
      await putJobRow(c, record);
      outcomes.push(outcome);
      audits.push(audit(s, outcome, event.id));
    }
    out.push({ id: event.id ?? '', duplicate: false, adds: outcomes });
  }
  await insertAudit(c, audits);
  for (const [scope, n] of delta) await addCount(c, scope, n);
  if (change.put.length > 0) await appendChange(c, change);
  return out;
}

/** `n` new job ids, in one round trip. */
async function nextIds(c: Db, n: number): Promise<string[]> {
  if (n === 0) return [];
  const { rows } = await c.query<{ id: string }>(`SELECT nextval('job_ids')::text AS id FROM generate_series(1, $1)`, [n]);
  return rows.map((r) => r.id);
}

async function nextId(c: Db, sequence: 'job_ids' | 'sync_ids'): Promise<string> {
  const { rows } = await c.query<{ id: string }>(`SELECT nextval('${sequence}') AS id`);
  return (rows[0] as { id: string }).id;
}

/**
 * Writes a job's record. An import job moves only as the state table allows from the state
 * stored, not the one its writer last read: several processes write this ledger, and a job that
 * another server ended (its holder lost, or abandoned by an operator) must stay ended whatever
 * its holder writes when it comes back: its checkpoints, its chunks and its end are refused,
 * and the transaction with them. Of two servers ending one job, this lets one do it. With
 * `epoch` (the writer took the job, `takeJob`), also only if no other process has taken it since.
 */
async function putJobRow(c: Db, job: AnyJob, epoch?: number): Promise<void> {
  const from = job.kind === 'import' ? JOB_STATES.filter((s) => canMove(s, job.state)) : JOB_STATES;
  const { rowCount } = await c.query(`INSERT INTO jobs (id, kind, scope, state, record) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, scope = EXCLUDED.scope, state = EXCLUDED.state, record = EXCLUDED.record
    WHERE (jobs.kind <> 'import' OR jobs.state = ANY($6::text[])) AND ($7::bigint IS NULL OR jobs.epoch = $7::bigint)`,
  [job.id, job.kind, job.scope, job.state, JSON.stringify(job), from, epoch ?? null]);
  if (rowCount === 0) {
    const { rows: [stored] } = await c.query<{ record: AnyJob; epoch: string }>('SELECT record, epoch FROM jobs WHERE id = $1', [job.id]);
    if (stored !== undefined && epoch !== undefined && Number(stored.epoch) !== epoch) {
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${job.id} was taken over by another process (fencing epoch ${stored.epoch}; this ` +
        `process took it at ${epoch}), after this one lost its import lease: it writes nothing more to the job. Nothing of this write was stored.`);
    }
    const record = stored?.record;
    const why = record?.kind === 'import' && record.error !== null ? ` (${record.error.message})` : '';
    throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${job.id} is ${record?.state ?? 'gone'} in the database and cannot become ${job.state}: ` +
      `another process changed it${why}. Nothing of this write was stored.`);
  }
}

async function jobRecord(c: Db, id: string, lock: '' | 'FOR UPDATE' = ''): Promise<AnyJob | undefined> {
  const { rows } = await c.query<{ record: AnyJob }>(`SELECT record FROM jobs WHERE id = $1 ${lock}`, [id]);
  return rows[0]?.record;
}

async function jobMeta(c: Db, id: string): Promise<JobMeta> {
  return jobMetaOf(await jobRecord(c, id));
}

async function addCount(c: Db, scope: string, delta: number): Promise<void> {
  if (delta !== 0) await c.query('INSERT INTO count_deltas (scope, delta) VALUES ($1, $2)', [scope, delta]);
}

async function insertAudit(c: Db, records: readonly AuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  await c.query('INSERT INTO audit (id, key, record) SELECT * FROM unnest($1::text[], $2::text[], $3::json[])',
    [records.map((r) => r.id), records.map((r) => r.key), records.map((r) => JSON.stringify(r))]);
}
