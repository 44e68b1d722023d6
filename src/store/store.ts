/**
 * The store contract: what the engine needs from a storage backend, in domain terms. Nothing
 * above `src/store/` sees a database handle or a key encoding; a backend keeps its layout to
 * itself (the LevelDB one in `level/`), and one shared suite (`test/store/contract.ts`) says
 * what every backend must do.
 *
 * The contract has two sides, because a shared deployment splits them between two places:
 *
 * - the **ledger**, the source of truth: jobs, import chunks, single changes, rollbacks, the
 *   audit trail, API keys and syncs, and the reads that walk them (export, audit, lookups of
 *   every scope). Its writes are atomic with their audit records.
 * - the **check view**, what an eligibility check reads on its hot path: the key filter and
 *   synchronous lookups of one entry, one job's metadata and one API key. Embedded, the ledger
 *   is its own view; a backend without synchronous reads says so in `supports`.
 *
 * The embedded stores implement both ({@link Store}); the PostgreSQL ledger implements the
 * ledger alone (`supports.syncLookups` false), and each API replica keeps its own view.
 */
import { OptoutError, describeValue } from '../errors.js';
import type { KeyFilter } from '../filter/bloom.js';
import type { AuditRecord } from './audit.js';
import type { AnyJob, JobMeta, JobRecord, SuppressionReason } from './jobs.js';

export type { JobMeta };

/** The scope of account-wide suppressions (every unit). */
export const ACCOUNT_WIDE = '*';
/** Business unit ids. */
export const UNIT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** What a backend can do, as abstract-level's `supports`: callers branch on it, never on the backend's class. */
export interface StoreCapabilities {
  /** `entrySync`, `jobMetaSync` and `apiKeySync` answer without I/O waits (a local view). */
  readonly syncLookups: boolean;
  /**
   * `head` and `changesSince` give an ordered feed of every change, from which a follower (an
   * API replica's local view) can build exactly the ledger's entries. The embedded LevelDB store
   * has no followers and keeps no feed: its filter log carries hashes only, not keys.
   */
  readonly feed: boolean;
  /**
   * One process owns the store at a time (LevelDB's lock): whatever its work folder holds that
   * no live job names is a leftover of a process that ended. A ledger that several processes
   * write at once (PostgreSQL) says false, and nobody clears files another may be using.
   */
  readonly exclusive: boolean;
  /**
   * A chunk's commit settles every key against the ledger itself: an entry when the scope lacks
   * the key, a hold otherwise, whatever `putEntry` or `putHold` said. An import's writing pass
   * then skips looking its keys up first (`presentKeys`, a second read of every key); the
   * counting pass, which writes nothing, still asks. The embedded stores write what they are
   * told (their one writer classifies under the write lock) and say false.
   */
  readonly settlesChunks: boolean;
  /**
   * How many chunk commits an import may have submitted and not yet settled (absent: 1). A store
   * that takes more commits them in the order submitted, and fails a chunk whose predecessor
   * failed (a later checkpoint must never pass over a chunk that was not written).
   */
  readonly chunksInFlight?: number;
}

/**
 * One committed change, as a follower applies it. Changes are numbered in commit order from 1
 * without gaps; applying them in order from 0 gives exactly the ledger's entries, and the
 * metadata of every job and the API keys they need.
 */
export interface Change {
  seq: number;
  /** Entries written: new ones, and ones that passed to another job (a rollback's heirs). */
  put: ScopedEntry[];
  del: Array<{ scope: string; key: string }>;
  /** The metadata of the jobs that `put` entries point to. */
  jobs: Array<{ id: string; meta: JobMeta }>;
  /** API key records written (created or revoked). */
  apiKeys: StoredApiKey[];
}

/** One part of a {@link Ledger.feedSnapshot}: a change with nothing to delete, at the snapshot's position. */
export type FeedSnapshotPart = Omit<Change, 'del'>;

/** A scope's suppression of a key, as stored. */
export interface StoredEntry {
  /** The job (import or single add) that stored it. */
  jobId: string;
  /** The address as first seen, when it differs from the key. */
  address: string | undefined;
  /**
   * The entry's own reason, when its row gave one other than its job's (an import with a reason
   * column); absent, the entry has its job's reason (see `entryMetaOf` in jobs.ts).
   */
  reason?: SuppressionReason | undefined;
}

/** What a decision needs of a stored entry: its job and its own reason. */
export type EntryMatch = Pick<StoredEntry, 'jobId' | 'reason'>;

/** An entry with its place: what export and lookups walk. */
export interface ScopedEntry extends StoredEntry {
  scope: string;
  key: string;
}


/** An API key as stored: its public record and the SHA-256 of the whole key. */
export interface StoredApiKey {
  id: string;
  /** The only unit the key may ask about; null for every unit. */
  unit: string | null;
  scope: 'check' | 'admin';
  /** Requests per second; null for no limit. */
  rateLimit: number | null;
  createdAt: string;
  revokedAt: string | null;
  /** SHA-256 of the whole key, hex. */
  hash: string;
}

/** The kinds of {@link Ledger.putRecord} records. */
export const RECORD_KINDS = ['link-key', 'inbound', 'settings', 'confirmation', 'server'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];
/** Record ids: short, printable, no separator a backend's keys use. */
export const RECORD_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** @throws OptoutError OPTOUT_ERR_INVALID_OPTION for a kind or id a record cannot have. */
export function assertRecordRef(kind: string, id: string): void {
  if (!(RECORD_KINDS as readonly string[]).includes(kind)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected a record kind among ${RECORD_KINDS.join(', ')}, got ${describeValue(kind)}`);
  }
  if (typeof id !== 'string' || !RECORD_ID_PATTERN.test(id)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected a record id matching ${RECORD_ID_PATTERN.source}, got ${describeValue(id)}`);
  }
}

/** A URL sync as stored (see sync/syncs.ts). */
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

/** A key as the address policy made it, with its first two filter hashes (filter/hash.ts). */
export interface HashedKey {
  key: string;
  h1: number;
  h2: number;
}

/**
 * How import workers write a key the way the ledger takes chunk keys back: `prefix`, then (when
 * `withHash`) the key's first hash as 8 hex digits, then the key. Workers build these strings off
 * the main thread, so the ledger reads them without re-encoding (LevelDB: they are its entry keys).
 */
export interface ChunkKeyCodec {
  readonly prefix: string;
  readonly withHash: boolean;
}

/**
 * A watch a ledger puts on a scope that holds no entry (see {@link Ledger.watchEmptyScope}).
 */
export interface EmptyScopeWatch {
  /**
   * True while every entry the scope has got since the watch began came from import chunks
   * ({@link Ledger.beginChunk}): under the import lease, the watching import's own, whose
   * buckets hold disjoint keys. A chunk classified while it is true needs no look-ups: none of
   * its keys can be in the scope. Checked under the write lock, just before a chunk is built.
   */
  untouched(): boolean;
}

/**
 * One import chunk (a spool bucket's distinct keys), built a key at a time so that a large chunk
 * can give the event loop back between keys, then written in one atomic step.
 */
export interface ChunkWriter {
  /**
   * A key the scope did not hold (or, where `supports.settlesChunks`, a key not looked up): a
   * new entry of the job, with its address when it differs from the key, and its own reason when
   * it differs from the job's (the caller leaves it out otherwise: the common case stores none).
   * The writer does not touch the key filter: the caller, which has the key's hashes
   * from the workers, adds the key to it first, so that it covers the entry before `commit`
   * resolves. It passes the key's first two hashes (`h1`, `h2`, filter/hash.ts) too, so that a
   * ledger that logs them (LevelDB's filter log) need not hash the key again; without them the
   * ledger hashes the key itself.
   */
  putEntry(chunkKey: string, address: string | undefined, reason?: SuppressionReason, h1?: number, h2?: number): void;
  /**
   * {@link putEntry} with the chunk key as the workers wrote it, UTF-8 bytes, and its hashes: a
   * ledger that stores bytes (LevelDB) offers it, and the importer then makes no string and
   * encodes nothing per key on its thread.
   */
  putEntryBytes?(chunkKey: Uint8Array, h1: number, h2: number, address: string | undefined, reason?: SuppressionReason): void;
  /**
   * A key the scope already held: the job holds it too (a rollback of its owner keeps it).
   * `address` and `reason` are stored only if the key turns out to be gone by the commit (see `commit`).
   */
  putHold(chunkKey: string, address?: string, reason?: SuppressionReason): void;
  /**
   * Writes the entries, the holds, the scope's counter and `job` (its checkpoint) atomically,
   * and resolves how many entries it really stored. With one writer (the embedded stores, under
   * the write lock) that is `added`, the number of `putEntry` calls. A ledger that several
   * processes write (PostgreSQL) settles each key at commit: an entry another writer stored
   * since the key was classified becomes a hold, and a held key whose entry was removed since
   * is stored as an entry (opt-out wins). The checkpoint's counts it writes are corrected by
   * the same difference ({@link shiftAdded}); the caller corrects its own tally with it.
   * A chunk whose checkpoint the stored job has already passed (a replay after a lost
   * acknowledgement) writes nothing and resolves `{ applied: false, added: 0 }`.
   */
  commit(job: JobRecord, added: number): Promise<ChunkResult>;
  /** Drops a chunk that will not be committed. */
  discard(): Promise<void>;
}

/** What a chunk commit wrote. */
export interface ChunkResult {
  applied: boolean;
  /** Entries stored: `added` as classified, or what a shared ledger found at commit. */
  added: number;
}

/**
 * The counts with `delta` keys moved from `alreadySuppressed` to `added` (a negative `delta`
 * moves them back): how a chunk's counts follow what its commit really stored.
 */
export function shiftAdded<C extends { added: number; alreadySuppressed: number }>(counts: C, delta: number): C {
  return delta === 0 ? counts : { ...counts, added: counts.added + delta, alreadySuppressed: counts.alreadySuppressed - delta };
}

/** A single add: one address into one scope, as a job of its own (kind `add`). */
export interface NewSuppression extends HashedKey {
  scope: string;
  /** The address as given, normalized; kept when it differs from the key. */
  address: string;
  reason: SuppressionReason;
  source: string;
  actor: string;
}

export interface AddOutcome {
  /** False when the scope already held the key: the add's job then holds it. */
  added: boolean;
  job: string;
}

/** Event ids: what a provider names an event by, after the caller's own prefix. */
export const MAX_EVENT_ID = 1024;

/**
 * An event delivered from outside (an ESP's bounce or complaint), remembered by its id so that
 * a retried delivery writes nothing a second time.
 */
export interface DeliveredEvent {
  /** Unique in the ledger: the caller puts its own prefix (an endpoint id) before the provider's id. */
  id: string;
  /** The suppressions it brings, each written as a single add (a job of its own); none is fine. */
  adds: readonly NewSuppression[];
}

/** What {@link Ledger.addEvents} did with one event. */
export interface EventOutcome {
  id: string;
  /** The ledger had seen the id before (or earlier in the same batch): nothing was written for it. */
  duplicate: boolean;
  /** One per add, in order; empty for a duplicate. */
  adds: AddOutcome[];
}

/** @throws OptoutError OPTOUT_ERR_INVALID_OPTION for an event id a ledger cannot keep. */
export function assertEventId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_EVENT_ID || id.includes('\u0000')) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected an event id of 1 to ${MAX_EVENT_ID} characters without NUL, got ${describeValue(id)}`);
  }
}

/** Single adds grouped by the event that brought them; `id` is undefined for a plain add. */
export interface AddGroup {
  id: string | undefined;
  adds: readonly NewSuppression[];
}
export type AddGroupAudit = (add: NewSuppression, outcome: AddOutcome, eventId: string | undefined) => AuditRecord;
/** How a backend writes groups of adds in one atomic write (see {@link Ledger.addEvents}). */
export type AddGroupWriter = (groups: readonly AddGroup[], audit: AddGroupAudit) => Promise<EventOutcome[]>;

/** {@link Ledger.addSuppression} as a group of one, without an event. */
export async function addOneWith(write: AddGroupWriter, s: NewSuppression, audit: (outcome: AddOutcome) => AuditRecord): Promise<AddOutcome> {
  const [written] = await write([{ id: undefined, adds: [s] }], (_add, outcome) => audit(outcome));
  return written?.adds[0] as AddOutcome;
}

/** {@link Ledger.addEvents} through a backend's writer, ids checked first. */
export async function addEventsWith(write: AddGroupWriter, events: readonly DeliveredEvent[],
  audit: (add: NewSuppression, outcome: AddOutcome, eventId: string) => AuditRecord): Promise<EventOutcome[]> {
  for (const e of events) assertEventId(e.id);
  if (events.length === 0) return [];
  return write(events, (add, outcome, id) => audit(add, outcome, id as string));
}

/** What a removal found and removed: the entry, its job's metadata and the jobs that held it too. */
export interface RemovedEntry {
  entry: StoredEntry;
  meta: JobMeta;
  heldBy: string[];
}

export interface RollbackCounts {
  /** Entries deleted: no other job held them. */
  removed: number;
  /** Entries kept because another job also held them; they now belong to the earliest such job. */
  kept: number;
  /** This job's holds on entries of other jobs, released. */
  holdsReleased: number;
}

/** Audit records in id (time) order from `fromId` on, all of them or those about one key. */
export interface AuditScan {
  fromId: string;
  key?: string | undefined;
}

/** A new audit record's fields; the ledger gives it its id and time. */
export type AuditFields = Omit<AuditRecord, 'id' | 'time'>;

/** The read side of an eligibility check. */
export interface CheckView {
  readonly supports: StoreCapabilities;
  /** False once closed (or, for a remote backend, while it cannot answer): checks then fail closed. */
  readonly isOpen: boolean;
  /** Entries per scope (`*` = account-wide), as the view holds them, without I/O. */
  counts(): ReadonlyMap<string, number>;
  totalEntries(): number;
  /** The key filter, covering every stored key whenever a check can see it. */
  filter(): Promise<KeyFilter>;
  /** The entry of `key` in `scope`, or undefined. Throws when the store cannot answer. */
  entrySync(scope: string, key: string, h1: number): StoredEntry | undefined;
  /**
   * What a decision needs of the entry of `key` (hashes h1, h2) in `scope`, or undefined:
   * `entrySync` without the address, which a view may answer from memory. Throws when the
   * store cannot answer.
   */
  matchSync(scope: string, key: string, h1: number, h2: number): EntryMatch | undefined;
  /** A job's reason, source and date (a placeholder for an unknown job). */
  jobMetaSync(jobId: string): JobMeta;
  apiKeySync(id: string): StoredApiKey | undefined;
}

/** The source of truth. Every write is atomic with the audit record that describes it. */
export interface Ledger {
  readonly supports: StoreCapabilities;
  /** False once closed. */
  readonly isOpen: boolean;
  /**
   * A folder on this machine where imports keep their spools and uploads until their job ends:
   * the store folder for LevelDB; for a database, a folder of the machine's temporary space.
   */
  readonly workDir: string;
  /** Bytes the stored data takes (files on disk, or the database's tables and indexes). */
  storageBytes(): Promise<number>;
  /** Entries per scope (`*` = account-wide), read from the ledger; a scope may show 0 once emptied. */
  scopeCounts(): Promise<ReadonlyMap<string, number>>;

  /** A new audit record, not yet written: the caller hands it to the write it describes. */
  audit(fields: AuditFields): AuditRecord;
  /** Appends audit records that describe no store change (legal-basis decisions). */
  appendAudit(records: readonly AuditRecord[]): Promise<void>;
  auditRecords(scan: AuditScan): AsyncIterable<AuditRecord>;

  /** Stores a new job under the next id, or over a reserved id; `complete` fills what depends on the id. */
  createJob(fields: Omit<JobRecord, 'id'>, complete?: (job: JobRecord) => JobRecord, id?: string): Promise<JobRecord>;
  /** Writes a job record, with the audit record of its outcome when there is one. */
  putJob(job: AnyJob, audit?: AuditRecord): Promise<void>;
  getJob(id: string): Promise<AnyJob | undefined>;
  /** Every job and single add, oldest first. */
  listJobs(): Promise<AnyJob[]>;
  listImports(): Promise<JobRecord[]>;

  /** The codec an import into `scope` hands its workers. */
  chunkKeyCodec(scope: string): ChunkKeyCodec;
  /** For each chunk key (of one scope), whether the scope already holds it. */
  presentKeys(chunkKeys: readonly string[]): Promise<boolean[]>;
  /** A new chunk of job `jobId`'s import into `scope`. */
  beginChunk(scope: string, jobId: string): ChunkWriter;
  /**
   * A watch on `scope` when it holds no entry now, else undefined. Call it under the write lock
   * (drained). Only a ledger that one process writes (`supports.exclusive`), whose every other
   * writer takes the write lock, can keep such a watch; a ledger that other processes write
   * does not implement it, and its importers look keys up (or let the commit settle them).
   */
  watchEmptyScope?(scope: string): EmptyScopeWatch | undefined;

  /** Suppresses one key in one scope, with its job record and audit record; holds it when present. */
  addSuppression(s: NewSuppression, audit: (outcome: AddOutcome) => AuditRecord): Promise<AddOutcome>;
  /**
   * Writes a batch of delivered events as ONE atomic write: for every event whose id the ledger
   * has not seen, its suppressions (each as `addSuppression` writes it: a job, an entry or a
   * hold), the audit record of each add and the event's id. An event seen before writes
   * nothing, and a batch of nothing but such events writes nothing at all.
   */
  addEvents(events: readonly DeliveredEvent[], audit: (add: NewSuppression, outcome: AddOutcome, eventId: string) => AuditRecord): Promise<EventOutcome[]>;
  /**
   * Ends a key's suppression in one scope: the entry and every hold on it, with the audit
   * record built from what was removed. OPTOUT_ERR_NOT_SUPPRESSED when there is none.
   */
  removeSuppression(scope: string, key: HashedKey, audit: (removed: RemovedEntry) => AuditRecord): Promise<RemovedEntry>;
  /**
   * Undoes a job that may be rolled back: its entries go unless another job holds them (they
   * pass to the earliest holder), its holds are released, and the job ends `rolled_back`, with
   * the audit record built from the counts. Resumable after a crash.
   */
  rollbackJob(job: AnyJob, audit: (counts: RollbackCounts) => AuditRecord): Promise<RollbackCounts>;

  /** Every scope's entry of a key, account-wide first. */
  entriesOf(key: HashedKey): Promise<Array<{ scope: string; entry: StoredEntry }>>;
  /**
   * {@link entriesOf} for many keys in few round trips, in input order: how checks and scrubs
   * read a ledger without synchronous lookups.
   */
  entriesOfMany(keys: readonly HashedKey[]): Promise<Array<Array<{ scope: string; entry: StoredEntry }>>>;
  /** Entries of one scope, or of every scope, in store order, a batch at a time. */
  scanEntries(scope?: string): AsyncIterable<ScopedEntry[]>;

  putApiKey(key: StoredApiKey, audit: AuditRecord): Promise<void>;
  getApiKey(id: string): Promise<StoredApiKey | undefined>;
  /** In id order. */
  listApiKeys(): Promise<StoredApiKey[]>;

  /**
   * Small records of a kind the engine names (`RECORD_KINDS`): settings and secrets a feature
   * keeps in the store, such as the keys of unsubscribe links or the endpoints of ESP webhooks.
   * A record is JSON; writing one with an audit record is atomic.
   */
  putRecord(kind: RecordKind, id: string, value: unknown, audit: AuditRecord | undefined): Promise<void>;
  getRecord<T>(kind: RecordKind, id: string): Promise<T | undefined>;
  /** Every record of a kind, in id order. */
  listRecords<T>(kind: RecordKind): Promise<Array<{ id: string; value: T }>>;
  /** Removes a record (nothing when absent), with its audit record. */
  deleteRecord(kind: RecordKind, id: string, audit: AuditRecord | undefined): Promise<void>;

  /** Stores a new sync under the next sync id, with its audit record. */
  createSync(build: (id: string) => SyncRecord, audit: (sync: SyncRecord) => AuditRecord): Promise<SyncRecord>;
  /** Rewrites a sync's record (its last run, its validators). */
  putSync(sync: SyncRecord): Promise<void>;
  getSync(id: string): Promise<SyncRecord | undefined>;
  listSyncs(): Promise<SyncRecord[]>;
  deleteSync(id: string, audit: AuditRecord): Promise<void>;
  /**
   * Takes a due run of a sync for the caller: moves its `nextRunAt` from `due` to `until` only if
   * it is still `due`, and says whether this call moved it. Several servers on one ledger thus run
   * each due sync once; a claimer that dies leaves the run to whoever claims it after `until`.
   */
  claimSync(id: string, due: string, until: string): Promise<boolean>;

  /**
   * Runs `fn` as the only writer that reads before it writes (a single change, a rollback, one
   * import chunk being classified and submitted). `drain` also waits for the chunk writes already
   * submitted, so that `fn` reads what they wrote. @default drain true
   */
  withWriteLock<T>(fn: () => Promise<T>, options?: { drain: boolean }): Promise<T>;
  /**
   * Runs an import's job (adopting or creating it, reading, writing, finishing) as the only import
   * job of this store: two imports never classify the same keys at once, so neither counts a key
   * the other wrote, and every key is owned or held by exactly the jobs that imported it.
   * `onWait` hears, once, that the lease is held elsewhere (another process's import into a
   * shared ledger) and the job waits for it.
   */
  withImportLease<T>(fn: () => Promise<T>, options?: { onWait?: () => void }): Promise<T>;
  /**
   * Makes this process the only writer of import job `id`, under the import lease: a process
   * that ran the job before (and lost its lease, then the job to this one) has every later write
   * of the job refused with `OPTOUT_ERR_JOB_STATE`, chunk commits included. Only ledgers that
   * several processes share have it (PostgreSQL: the job's fencing epoch).
   */
  takeJob?(id: string): Promise<void>;

  /** The position of the last committed change, 0 before the first. Only where `supports.feed`. */
  head(): Promise<number>;
  /** The changes after position `after`, in commit order, at most `limit` of them. Only where `supports.feed`. */
  changesSince(after: number, limit: number): Promise<Change[]>;
  /**
   * What a new follower starts from: the ledger's entries, the metadata of the jobs they point
   * to and the API keys, all as of one feed position (`seq` of every part), in parts. Applying the
   * parts, then the changes after `seq`, gives exactly the ledger. Only where `supports.feed`.
   */
  feedSnapshot(): AsyncIterable<FeedSnapshotPart>;
  /**
   * Names this ledger for its followers, the same for every process that opens it: a view built
   * from one ledger's feed must never follow another's. Only where `supports.feed`.
   */
  feedId(): Promise<string>;
  /**
   * Calls `wake` soon after changes commit, until the returned function is called: a hint that
   * spares a follower its next poll, never a guarantee (a hint may be lost, or come twice), so
   * followers poll anyway. Only where `supports.feed`.
   */
  onChange(wake: () => void): () => void;

  /** Releases the store; every later read or write of stored data fails with OPTOUT_ERR_STORE_NOT_OPEN. */
  close(): Promise<void>;
}

/**
 * {@link Ledger.claimSync} for a store with one writing process: the compare and the write happen
 * under its write lock.
 */
export function claimSyncUnderLock(store: Pick<Ledger, 'withWriteLock' | 'getSync' | 'putSync'>, id: string, due: string, until: string): Promise<boolean> {
  return store.withWriteLock(async () => {
    const sync = await store.getSync(id);
    if (sync?.nextRunAt !== due) return false;
    await store.putSync({ ...sync, nextRunAt: until });
    return true;
  }, { drain: false });
}

/** A backend that is its own check view: the embedded store. */
export interface Store extends Ledger, CheckView {}

/** The ledger's own check view, when it has one (`supports.syncLookups`); a shared ledger has none. */
export function checkViewOf(ledger: Ledger): Store | undefined {
  return ledger.supports.syncLookups ? (ledger as Store) : undefined;
}
