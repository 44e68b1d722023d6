import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { OptoutError, describeValue } from '../../errors.js';
import { POLICY_VERSION } from '../../policy/email.js';
import { KeyFilter } from '../../filter/bloom.js';
import { hashKey, hashKeyTuple } from '../../filter/hash.js';
import { KeyIndex, KeyIndexChanges, UNSURE } from './key-index.js';
import { KEY_INDEX_SNAPSHOT_FILE, readKeyIndexSnapshot, saveKeyIndexSnapshot, type KeyIndexSource } from './key-index-snapshot.js';
import {
  ACCOUNT_WIDE, API_KEY_RANGE, AUDIT_RANGE, COUNT_RANGE, auditIdOfIndex, auditIndexRange, auditOps, JOB_RANGE, SYNC_RANGE, apiKeyKey, countKey, decodeEntryValue, encodeEntryValue,
  entryKey, entryKeyOfHash, entryKeyPrefix, entryKeyStart, entryScopeOf, entryRange, filterLogKey, followedJobKey, holdKeyOfEntry, recordKey, recordRange, holdRangeOfEntry, jobKey, metaKey, parseEntryKey, seenEventKey, syncKey,
} from './keys.js';
import { addRecordOf, type AnyJob, type JobRecord, type SuppressionReason } from '../jobs.js';
import { auditId, type AuditRecord } from '../audit.js';
import { JobMetaCache } from './job-meta.js';
import { rollbackInLevel, type ChangeOp } from './rollback.js';
import type {
  AddOutcome, AuditFields, AuditScan, Change, ChunkKeyCodec, DeliveredEvent, EmptyScopeWatch, EntryMatch, EventOutcome, FeedSnapshotPart, ChunkWriter, HashedKey, JobMeta, NewSuppression, RemovedEntry, RollbackCounts, ScopedEntry, Store,
  RecordKind, StoredApiKey, StoredEntry, SyncRecord,
} from '../store.js';
import { addEventsWith, addOneWith, assertRecordRef, claimSyncUnderLock, type AddGroup, type AddGroupAudit } from '../store.js';
import { FILTER_SNAPSHOT_FILE, saveFilterSnapshot } from './filter-snapshot.js';
import { removeUnfinishedWrites } from '../../files/durable-file.js';
import { clearStoreTemp } from '../../files/scratch.js';
import { FilterLogRecord } from './filter-log.js';
import { generationToken, loadKeyFilter, type FilterSource } from './filter-rebuild.js';
import { InFlight, TurnQueue } from '../turns.js';

/** The store's on-disk format; bump when the key layout changes. */
export const STORE_FORMAT = 1;

/**
 * LevelDB tuning from measurements on 2 cores: chained batches ran 2-3x faster than array
 * batches of the same keys (abstract-level's array path does per-operation work in
 * JavaScript), and a 64 MiB write buffer was slower than 16 MiB. No compression: a lookup of a
 * stored key that misses the block cache (most of them, in a large store) then reads its block
 * without decompressing it; `npm run bench:store-options` measured getSync of stored keys at
 * 1M entries ~220k/s compressed against ~300k/s not, at 10M ~120-150k/s against ~220-240k/s,
 * and a 10M import 6-20% faster (less CPU), for ~20% more disk.
 */
const LEVEL_OPTIONS = { writeBufferSize: 16 * 1024 * 1024, cacheSize: 32 * 1024 * 1024, compression: false } as const;

export interface OpenStoreOptions {
  /** What the process is doing, shown to a second process that finds the store in use. */
  purpose?: string;
  /**
   * Creates the store when the folder holds none. Commands that only read pass false: a mistyped
   * `--db` must be an error, not an empty store that answers "eligible" for every address.
   * @default true
   */
  create?: boolean;
  /**
   * Opens an API replica's view of a database (see replica/open-view.ts). Any other opener is
   * refused one: a view answers for its database only while its follower proves it fresh.
   * @default false
   */
  view?: boolean;
}

/**
 * One durable step of an import, filled while a chunk is classified: entries, holds, and at
 * commit the per-scope counters, the generation and the job's checkpoint, all in one atomic
 * LevelDB batch. Keys are not sorted first: sorting in JavaScript cost more (~2 us a key) than
 * LevelDB's memtable saves on ordered inserts.
 */
export class EntryBatch {
  readonly #batch: ReturnType<ClassicLevel<string, string>['batch']>;
  readonly #log = new FilterLogRecord();
  readonly #index = new KeyIndexChanges();
  readonly #scope: string | undefined;
  readonly #hashes = new Uint32Array(3);
  /** @param scope the scope of every entry, which then may be given as bytes */
  constructor(db: ClassicLevel<string, string>, scope?: string) {
    this.#batch = db.batch();
    this.#scope = scope;
  }
  /**
   * Entries are written only here: this is what records them in the filter log (filter-log.ts)
   * and for the key index (key-index.ts). A key given as bytes is written as it is, and must
   * come with its hashes (`h1`, `h2`) and a batch of one scope: the import workers computed
   * them from the key they encoded. A key given as a string is hashed here unless its hashes
   * come with it.
   */
  putEntry(dbKey: string | Uint8Array, value: string | Uint8Array, h1?: number, h2?: number): void {
    if (typeof dbKey === 'string') {
      if (typeof value === 'string') this.#batch.put(dbKey, value);
      else this.#batch.put<string, Uint8Array>(dbKey, value, BYTE_VALUE);
      if (h1 === undefined || h2 === undefined) {
        hashKey(dbKey, this.#hashes, 0, entryKeyStart(dbKey));
        h1 = this.#hashes[0] as number;
        h2 = this.#hashes[1] as number;
      }
      this.#log.addHashes(h1, h2);
      this.#index.put(this.#scope ?? entryScopeOf(dbKey), h1, h2, value);
      return;
    }
    if (h1 === undefined || h2 === undefined || this.#scope === undefined) {
      throw new OptoutError('OPTOUT_ERR_INTERNAL', 'An entry key given as bytes needs its filter hashes and a batch of one scope');
    }
    // Straight to classic-level's native batch (`_put`, the operation abstract-level's public
    // `put` ends in): the key is already in LevelDB's form, and the public path wrapped each
    // of an import's millions of operations in an options object and a transcoder, which took
    // a quarter of the main thread's writing time (CPU profile, 2M rows). The batch's other
    // operations (the counters, the generation, the filter log, the job) go through `put`,
    // so abstract-level never takes it for an empty batch.
    (this.#batch as unknown as NativeBatch)._put(dbKey, value);
    this.#log.addHashes(h1, h2);
    this.#index.put(this.#scope, h1, h2, value);
  }
  putHold(dbKey: string): void {
    this.#batch.put(dbKey, '');
  }
  /** @internal */
  get chained(): ReturnType<ClassicLevel<string, string>['batch']> {
    return this.#batch;
  }
  /** @internal */
  get log(): FilterLogRecord {
    return this.#log;
  }
  /** @internal */
  get index(): KeyIndexChanges {
    return this.#index;
  }
}

/** A value already in LevelDB's form (UTF-8 bytes). */
const BYTE_VALUE = { valueEncoding: 'view' } as const;

/** classic-level's chained batch below abstract-level's public methods. */
interface NativeBatch {
  _put(key: string | Uint8Array, value: string | Uint8Array): void;
}

export type { ChangeOp };

interface Owner { pid: number; purpose: string; since: string; url?: string }

/** A replica's view: the ledger it follows, the feed position it holds, and whether its first snapshot is whole. */
export interface Following {
  feedId: string;
  seq: number;
  complete: boolean;
}

/**
 * The embedded store: a LevelDB folder plus the key filter that answers "definitely absent"
 * without I/O. One process owns it at a time (LevelDB's lock); the owner writes `owner.json`
 * so that a second process can say who holds it.
 */
export class LevelStore implements Store {
  readonly supports = { syncLookups: true, feed: false, exclusive: true, settlesChunks: false } as const;
  readonly dir: string;
  readonly db: ClassicLevel<string, string>;
  readonly #jobMeta: JobMetaCache;
  #generation = 0;
  #counts = new Map<string, number>();
  #filter: KeyFilter | undefined;
  #filterGeneration = -1;
  #filterSource: FilterSource | undefined;
  #filterLoading: Promise<KeyFilter> | undefined;
  #closed = false;
  /** Writers that read before they write (see `withWriteLock`). */
  readonly #writers = new TurnQueue();
  /** Import jobs (see `withImportLease`). */
  readonly #importers = new TurnQueue();
  /** Import batches submitted and not yet acknowledged. */
  readonly #inFlight = new InFlight();
  #auditSeq = 0;
  /** Changes written other than by import chunks (see `watchEmptyScope`). */
  #changes = 0;
  #owner: Owner | undefined;
  #following: Following | undefined;
  #apiKeysVersion = 0;
  /** The key index once built (see `indexKeys`). */
  #keyIndex: KeyIndex | undefined;
  #keyIndexBuild: Promise<boolean> | undefined;
  #keyIndexSource: KeyIndexSource | undefined;
  #keyIndexMs: number | undefined;
  /** The generation of the key index snapshot on disk, when it is known to be the index's own. */
  #keyIndexSaved = -1;
  /** The changes committed while the index is built from a scan, to replay over it. */
  #keyIndexPending: KeyIndexChanges[] | undefined;

  private constructor(dir: string, db: ClassicLevel<string, string>) {
    this.dir = dir;
    this.db = db;
    this.#jobMeta = new JobMetaCache(db);
  }

  /** Whether the folder holds a store (a folder that does not exist holds none). */
  static exists(dir: string): boolean {
    return existsSync(join(resolve(dir), 'leveldb'));
  }

  static async open(dirInput: string, options: OpenStoreOptions = {}): Promise<LevelStore> {
    const dir = resolve(dirInput);
    if (options.create === false && !existsSync(join(dir, 'leveldb'))) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`db\` to be a store folder, got ${describeValue(dirInput)}: it holds no store. Import an opt-out list into it first, or pass the right --db.`);
    }
    try {
      mkdirSync(dir, { recursive: true });
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_STORE', `Cannot create the store folder ${dir}: ${(cause as Error).message}`, { cause });
    }
    const db = new ClassicLevel<string, string>(join(dir, 'leveldb'), LEVEL_OPTIONS);
    try {
      await db.open();
    } catch (cause) {
      const inner = (cause as { cause?: { code?: string } }).cause;
      if (inner?.code === 'LEVEL_LOCKED') {
        const owner = readOwner(dir);
        if (owner?.url !== undefined) {
          throw new OptoutError('OPTOUT_ERR_STORE_SERVED', `optout serve (pid ${owner.pid}) holds the store ${dir}. Use its HTTP API ` +
            `instead, e.g. an import: POST ${owner.url}/v1/imports with an admin key; or stop the server first.`, { cause });
        }
        throw new OptoutError('OPTOUT_ERR_STORE_LOCKED', `The store ${dir} is in use by another process${describeOwner(owner)}. ` +
          'Wait for it to finish, or use another --db.', { cause });
      }
      throw new OptoutError('OPTOUT_ERR_STORE', `Cannot open the store ${dir}: ${(cause as Error).message}`, { cause });
    }
    const store = new LevelStore(dir, db);
    try {
      await store.#init(options.purpose ?? 'optout');
      if (store.#following !== undefined && options.view !== true) {
        throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The folder ${dir} is an API replica's view of a PostgreSQL database, not a store: ` +
          'pass the database URL as --db (a view is only read by the replica that keeps it up to date)');
      }
    } catch (err) {
      await db.close();
      throw err;
    }
    return store;
  }

  async #init(purpose: string): Promise<void> {
    // Holding LevelDB's lock, this process is the store's only user: a temporary file left in
    // the folder is a killed process's, and may hold a copy of the list's keys' hashes, or of
    // the list itself (scratch.ts).
    removeUnfinishedWrites(this.dir, [FILTER_SNAPSHOT_FILE, KEY_INDEX_SNAPSHOT_FILE]);
    clearStoreTemp(this.dir);
    this.#owner = { pid: process.pid, purpose, since: new Date().toISOString() };
    writeFileSync(join(this.dir, 'owner.json'), JSON.stringify(this.#owner) + '\n');
    const [format, policy, generation] = await this.db.getMany([metaKey('format'), metaKey('policy'), metaKey('generation')]);
    if (format === undefined) {
      await this.db.batch([
        { type: 'put', key: metaKey('format'), value: String(STORE_FORMAT) },
        { type: 'put', key: metaKey('policy'), value: POLICY_VERSION },
        { type: 'put', key: metaKey('generation'), value: '0' },
      ]);
    } else if (format !== String(STORE_FORMAT) || policy !== POLICY_VERSION) {
      throw new OptoutError('OPTOUT_ERR_STORE_CORRUPT', `The store ${this.dir} has format ${format} and address policy ` +
        `${policy}; this version reads format ${STORE_FORMAT} with policy ${POLICY_VERSION}.`);
    }
    this.#generation = Number(generation ?? 0);
    const following = await this.db.get(metaKey('follow'));
    this.#following = following === undefined ? undefined : (JSON.parse(following) as Following);
    for await (const [key, value] of this.db.iterator(COUNT_RANGE)) {
      this.#counts.set(key.slice(COUNT_RANGE.gt.length), Number(value));
    }
  }

  /** Tells other processes where the owner serves the store's API (they point users there). */
  announceUrl(url: string): void {
    this.#owner = { ...(this.#owner as Owner), url };
    writeFileSync(join(this.dir, 'owner.json'), JSON.stringify(this.#owner) + '\n');
  }

  /** Entries per scope (`*` = account-wide), kept as counters written with every batch. */
  counts(): ReadonlyMap<string, number> {
    return this.#counts;
  }

  totalEntries(): number {
    let n = 0;
    for (const c of this.#counts.values()) n += c;
    return n;
  }

  async scopeCounts(): Promise<ReadonlyMap<string, number>> {
    this.#assertOpen();
    return new Map(this.#counts);
  }

  /** Bumped by every batch that changes entries; the filter snapshot is valid only for the generation it names. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * The key filter covering every stored key: the snapshot when it was saved at this store
   * generation, an older snapshot brought up to date from the filter log (after a crash, say),
   * or a rebuild from the log or from the entries (see filter-rebuild.ts).
   */
  async filter(): Promise<KeyFilter> {
    this.#assertOpen();
    if (this.#filter) return this.#filter;
    // One load for concurrent callers: two filters would each miss the keys added to the other.
    this.#filterLoading ??= this.#loadFilter().finally(() => {
      this.#filterLoading = undefined;
    });
    return this.#filterLoading;
  }

  async #loadFilter(): Promise<KeyFilter> {
    const generation = this.#generation;
    const loaded = await loadKeyFilter(this.db, this.dir, generation,
      () => KeyFilter.create(Math.max(1 << 20, Math.ceil(this.totalEntries() * 1.5))), this.#counts.keys());
    this.#filter = loaded.filter;
    this.#filterSource = loaded.source;
    this.#filterGeneration = loaded.source === 'snapshot' ? generation : -1;
    return loaded.filter;
  }

  /** Where the filter came from when it was loaded; undefined before `filter()`. */
  get filterSource(): FilterSource | undefined {
    return this.#filterSource;
  }

  /**
   * Saves the filter snapshot (atomically, fsynced) when the filter is loaded and the snapshot
   * on disk does not name the current generation: a long-running owner calls it once ready and
   * now and then, so that a crash costs at most a short replay. Resolves true when it wrote one.
   */
  async persistFilter(): Promise<boolean> {
    const filter = this.#filter;
    const generation = this.#generation;
    if (filter === undefined || this.#filterGeneration === generation) return false;
    const token = await generationToken(this.db, generation);
    // A damaged record of the current generation: no snapshot of it could ever be proven.
    if (token === undefined) return false;
    await saveFilterSnapshot(this.dir, filter, generation, token);
    this.#filterGeneration = generation;
    return true;
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    this.#assertOpen();
    try {
      return await this.db.getMany(keys);
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_STORE', `Store read failed: ${(cause as Error).message}`, { cause });
    }
  }

  /** An empty batch; commit it with `commitBatch`, or `discardBatch` on failure. */
  batch(scope?: string): EntryBatch {
    this.#assertOpen();
    return new EntryBatch(this.db, scope);
  }

  async discardBatch(batch: EntryBatch): Promise<void> {
    await batch.chained.close();
  }

  /**
   * Runs `fn` as the store's only writer that reads before it writes. Imports, single changes
   * and rollbacks in one process (the server) take turns here, so none of them classifies a key
   * while another changes it. `drain` also waits for the import batches already submitted: a
   * single change reads what they wrote. An import itself does not drain (it keeps one batch in
   * flight while it classifies the next bucket, whose keys are disjoint from it).
   */
  withWriteLock<T>(fn: () => Promise<T>, options: { drain: boolean } = { drain: true }): Promise<T> {
    this.#assertWritable();
    return this.#writers.run(async () => {
      if (options.drain) await this.#inFlight.drain();
      return fn();
    });
  }

  withImportLease<T>(fn: () => Promise<T>): Promise<T> {
    this.#assertWritable();
    return this.#importers.run(fn);
  }

  /** Writes one import step atomically: its entries and holds, per-scope counters, generation and job. */
  commitBatch(batch: EntryBatch, added: ReadonlyMap<string, number>, job: JobRecord): Promise<void> {
    this.#assertOpen();
    const b = batch.chained;
    b.put(jobKey(job.id), JSON.stringify(job));
    return this.#inFlight.track(this.#commit(b, added, batch.log, batch.index));
  }


  chunkKeyCodec(scope: string): ChunkKeyCodec {
    return { prefix: entryKeyPrefix(scope), withHash: true };
  }

  /**
   * The store has one writing process (LevelDB's lock), and every writer in it but an import's
   * chunks (single changes, events, rollbacks) goes through `commitChange`, which counts them:
   * while the count stays, the scope holds nothing but what import chunks put there.
   */
  watchEmptyScope(scope: string): EmptyScopeWatch | undefined {
    this.#assertOpen();
    if ((this.#counts.get(scope) ?? 0) !== 0) return undefined;
    const at = this.#changes;
    return { untouched: () => this.#changes === at };
  }

  async presentKeys(chunkKeys: readonly string[]): Promise<boolean[]> {
    return (await this.getMany([...chunkKeys])).map((v) => v !== undefined);
  }

  beginChunk(scope: string, jobId: string): ChunkWriter {
    this.#assertWritable();
    const batch = this.batch(scope);
    // The value of most entries: the job's id alone, encoded once a chunk.
    const plain = Buffer.from(jobId);
    const valueOf = (address: string | undefined, reason: SuppressionReason | undefined): Uint8Array | string =>
      address === undefined && reason === undefined ? plain : encodeEntryValue(jobId, address, reason);
    return {
      putEntry: (chunkKey, address, reason, h1, h2) => batch.putEntry(chunkKey, valueOf(address, reason), h1, h2),
      putEntryBytes: (chunkKey, h1, h2, address, reason) => batch.putEntry(chunkKey, valueOf(address, reason), h1, h2),
      putHold: (chunkKey) => batch.putHold(holdKeyOfEntry(chunkKey, jobId)),
      // In flight from the call on, before its first await: a single change that drains the
      // writes waits for this one (see withWriteLock).
      commit: (job, added) => this.#inFlight.track((async () => {
        // Read at once, not awaited: the write then starts before this call returns, while the
        // caller builds its next chunk. Awaited, the read's answer waited for that build (the
        // main thread's), and chunks were built and written one after the other.
        const raw = this.db.getSync(jobKey(job.id));
        const stored = raw === undefined ? undefined : (JSON.parse(raw) as AnyJob);
        if (stored?.kind === 'import' && stored.checkpoint.phase === 'merge' && stored.checkpoint.bucket >= job.checkpoint.bucket) {
          await this.discardBatch(batch);
          return { applied: false, added: 0 };
        }
        const b = batch.chained;
        b.put(jobKey(job.id), JSON.stringify(job));
        await this.#commit(b, new Map([[scope, added]]), batch.log, batch.index);
        return { applied: true, added };
      })()),
      discard: () => this.discardBatch(batch),
    };
  }

  /**
   * Writes a change atomically with its audit record, the per-scope counters and the generation.
   * Call it inside `withWriteLock` when the change depends on what it read.
   */
  async commitChange(ops: readonly ChangeOp[], delta: ReadonlyMap<string, number>, audit: AuditRecord | readonly AuditRecord[] | undefined): Promise<void> {
    this.#assertWritable();
    // Counted before the write starts: a watch read while it is in flight already sees it.
    this.#changes++;
    const b = this.db.batch();
    const log = new FilterLogRecord();
    const index = new KeyIndexChanges();
    const hashes = new Uint32Array(3);
    for (const op of ops) {
      const entry = op.key.startsWith('e');
      if (entry) hashKey(op.key, hashes, 0, entryKeyStart(op.key));
      if (op.type === 'put') {
        b.put(op.key, op.value);
        // An entry written here enters the filter log like an import's (re-adding a key is harmless).
        if (entry) {
          log.addHashes(hashes[0] as number, hashes[1] as number);
          index.put(entryScopeOf(op.key), hashes[0] as number, hashes[1] as number, op.value);
        }
      } else {
        b.del(op.key);
        if (entry) index.remove(entryScopeOf(op.key), hashes[0] as number, hashes[1] as number);
      }
    }
    const audits = audit === undefined ? [] : 'id' in audit ? [audit] : audit;
    for (const record of audits) for (const op of auditOps(record)) b.put(op.key, op.value);
    await this.#commit(b, delta, log, index);
  }

  async #commit(b: ReturnType<ClassicLevel<string, string>['batch']>, delta: ReadonlyMap<string, number>, log: FilterLogRecord,
    index: KeyIndexChanges): Promise<void> {
    const nextCounts = new Map<string, number>();
    for (const [scope, n] of delta) {
      if (n === 0) continue;
      const next = (this.#counts.get(scope) ?? 0) + n;
      nextCounts.set(scope, next);
      b.put(countKey(scope), String(next));
    }
    const generation = this.#generation + 1;
    b.put(metaKey('generation'), String(generation));
    // Every generation has its record, even an empty one: a gap in the log proves nothing.
    b.put<string, Buffer>(filterLogKey(generation), log.encode(), { valueEncoding: 'buffer' });
    try {
      await b.write();
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_STORE', `Store write failed: ${(cause as Error).message}`, { cause });
    }
    // Before the write is acknowledged, in the continuation of the write itself: no check sees
    // the entries stored and the index without them once anyone has been told they are.
    this.#indexChanged(index);
    this.#generation = generation;
    for (const [scope, n] of nextCounts) this.#counts.set(scope, n);
  }

  /**
   * A new audit record, not yet written: the caller writes it in the batch of the change it
   * describes. Ids order by time, then by a per-process sequence.
   */
  audit(fields: AuditFields): AuditRecord {
    const now = Date.now();
    return { id: auditId(now, this.#auditSeq++), time: new Date(now).toISOString(), ...fields };
  }

  /** Appends audit records that describe no store change (a legal-basis decision, say). */
  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    this.#assertOpen();
    if (records.length === 0) return;
    await this.#put(records.flatMap(auditOps));
  }

  /**
   * Stores a new job under the next job id, or over the record `id` names (a job reserved
   * before it started: an import over HTTP); the id and the record are written together.
   * `complete` fills what depends on the id, before anything is written.
   */
  async createJob(fields: Omit<JobRecord, 'id'>, complete: (job: JobRecord) => JobRecord = (j) => j, id?: string): Promise<JobRecord> {
    this.#assertWritable();
    return this.withWriteLock(async () => {
      const next = id === undefined ? await this.nextJobId() : undefined;
      const job = complete({ id: id ?? (next as { id: string }).id, ...fields });
      await this.db.batch([...(next ? [next.op] : []), { type: 'put', key: jobKey(job.id), value: JSON.stringify(job) }]);
      return job;
    }, { drain: false });
  }

  /** Writes a job record, with the audit record of its outcome when there is one. */
  async putJob(job: AnyJob, audit?: AuditRecord): Promise<void> {
    await this.#put([{ key: jobKey(job.id), value: JSON.stringify(job) }, ...(audit ? auditOps(audit) : [])]);
  }

  async getJob(id: string): Promise<AnyJob | undefined> {
    this.#assertOpen();
    const raw = await this.db.get(jobKey(id));
    return raw === undefined ? undefined : (JSON.parse(raw) as AnyJob);
  }

  /** Every job and single change, oldest first. */
  async listJobs(): Promise<AnyJob[]> {
    this.#assertOpen();
    const jobs: AnyJob[] = [];
    for await (const value of this.db.values(JOB_RANGE)) jobs.push(JSON.parse(value) as AnyJob);
    return jobs;
  }

  /** Import jobs only, oldest first. */
  async listImports(): Promise<JobRecord[]> {
    return (await this.listJobs()).filter((j): j is JobRecord => j.kind === 'import');
  }

  /** The next job id, for records written with `commitChange`. Call it inside `withWriteLock`. */
  async nextJobId(): Promise<{ id: string; op: ChangeOp }> {
    const id = String(Number((await this.db.get(metaKey('jobseq'))) ?? 0) + 1);
    return { id, op: { type: 'put', key: metaKey('jobseq'), value: id } };
  }

  get isOpen(): boolean {
    return !this.#closed && this.db.status === 'open';
  }

  /**
   * What a decision needs of the entry of `key` in `scope` (h1, h2: its hashes): from the key
   * index once it is built (see `indexKeys`), else, or for a slot the index cannot vouch for,
   * from LevelDB. On the check path: a read that fails throws, and the checker answers `unavailable`.
   */
  matchSync(scope: string, key: string, h1: number, h2: number): EntryMatch | undefined {
    this.#assertOpen();
    const index = this.#keyIndex;
    if (index !== undefined) {
      const found = index.match(scope, h1, h2);
      if (found !== UNSURE) return found;
    }
    return this.entrySync(scope, key, h1);
  }

  /**
   * Builds the key index (key-index.ts), in the background of a serving process: from its
   * snapshot when that names the store's current generation (saved by `close`), else from a scan
   * of the entries. Checks read LevelDB until it is whole, and the changes committed meanwhile
   * are replayed over it. Resolves true once checks use it, false when the store closed first.
   * Costs 16-32 bytes of memory an entry; a one-off command has no use for it.
   */
  indexKeys(): Promise<boolean> {
    this.#assertOpen();
    const earlier = this.#keyIndexBuild;
    // After a load of the snapshot that found none to use (`loadKeyIndex`), a scan.
    this.#keyIndexBuild = earlier === undefined ? this.#buildKeyIndex(true) : earlier.then((built) => (built || this.#closed ? built : this.#buildKeyIndex(true)));
    return this.#keyIndexBuild;
  }

  /**
   * Loads the key index from its snapshot when that names the store's current generation (see
   * `indexKeys`), and scans nothing: false when there is no such snapshot. An API replica calls
   * it before it follows its database, so that the snapshot its last clean stop saved is still
   * current, and the changes it then applies reach the index as they commit.
   */
  loadKeyIndex(): Promise<boolean> {
    this.#assertOpen();
    this.#keyIndexBuild ??= this.#buildKeyIndex(false);
    return this.#keyIndexBuild;
  }

  /** Whether checks answer from the key index. */
  get keyIndexed(): boolean {
    return this.#keyIndex !== undefined;
  }

  /** The key index's slots in use (0 without one). */
  get keyIndexSize(): number {
    return this.#keyIndex?.size ?? 0;
  }

  /** The key index's memory. */
  get keyIndexBytes(): number {
    return this.#keyIndex?.bytes ?? 0;
  }

  /** Where the key index came from: its snapshot, or a scan of the entries; undefined before it is built. */
  get keyIndexSource(): KeyIndexSource | undefined {
    return this.#keyIndexSource;
  }

  /** How long the build that made the key index took, in milliseconds; undefined before it is built. */
  get keyIndexMs(): number | undefined {
    return this.#keyIndexMs;
  }

  /** The snapshot when it is current, else a scan when `scan`; false when neither was made (or the store closed). */
  async #buildKeyIndex(scan: boolean): Promise<boolean> {
    const started = performance.now();
    // From here on every committed change is queued, and the generation the snapshot must name
    // is read in the same synchronous step: the snapshot's entries and the queue's changes
    // are then every entry.
    const pending: KeyIndexChanges[] = [];
    this.#keyIndexPending = pending;
    const generation = this.#generation;
    let saved: KeyIndex | undefined;
    try {
      saved = await this.#savedKeyIndex(generation);
    } catch (err) {
      this.#keyIndexPending = undefined;
      if (this.#closed) return false;
      throw new OptoutError('OPTOUT_ERR_STORE', `Store read failed while loading the key index: ${(err as Error).message}`, { cause: err });
    }
    const index = saved ?? (scan ? await this.#scanKeyIndex() : undefined);
    if (index === undefined || this.#closed) {
      this.#keyIndexPending = undefined;
      return false;
    }
    // The queue's changes and the switch in one synchronous step: none can fall between them.
    for (const changes of pending) index.apply(changes);
    this.#keyIndex = index;
    this.#keyIndexPending = undefined;
    this.#keyIndexSource = saved === undefined ? 'scan' : 'snapshot';
    this.#keyIndexMs = performance.now() - started;
    if (saved !== undefined) this.#keyIndexSaved = generation;
    return true;
  }

  /** The index of the snapshot on disk when it names `generation` and its token; undefined otherwise. */
  async #savedKeyIndex(generation: number): Promise<KeyIndex | undefined> {
    const snapshot = await readKeyIndexSnapshot(this.dir);
    if (snapshot === undefined || snapshot.generation !== generation || this.#closed) return undefined;
    const token = await generationToken(this.db, generation);
    if (token === undefined || token !== snapshot.token || this.#closed) return undefined;
    return snapshot.load(this.#counts);
  }

  /**
   * The index from a scan of the entries; undefined when the store closed first. Changes
   * committed since the build began are queued (see #buildKeyIndex): each is in the scan, in
   * the queue, or in both (applying one twice changes nothing, or leaves its slot unsure).
   */
  async #scanKeyIndex(): Promise<KeyIndex | undefined> {
    const index = new KeyIndex(this.#counts);
    const it = this.db.iterator(entryRange());
    const hashes = new Uint32Array(3);
    try {
      for (;;) {
        const page = await it.nextv(1000);
        if (page.length === 0) break;
        for (const [key, value] of page) {
          hashKey(key, hashes, 0, entryKeyStart(key));
          index.putStored(entryScopeOf(key), hashes[0] as number, hashes[1] as number, value);
        }
      }
      await it.close();
    } catch (err) {
      this.#keyIndexPending = undefined;
      await it.close();
      if (this.#closed) return undefined;
      throw new OptoutError('OPTOUT_ERR_STORE', `Store read failed while indexing keys: ${(err as Error).message}`, { cause: err });
    }
    return index;
  }

  /**
   * Saves the key index's snapshot for the generation it holds, unless the one on disk is
   * already that. Called once closing, when no change reaches the index any more.
   */
  async #saveKeyIndex(index: KeyIndex, generation: number): Promise<void> {
    if (this.#keyIndexSaved === generation) return;
    const token = await generationToken(this.db, generation);
    if (token === undefined) return;
    await saveKeyIndexSnapshot(this.dir, index, generation, token);
    this.#keyIndexSaved = generation;
  }

  #indexChanged(changes: KeyIndexChanges): void {
    if (changes.count === 0) return;
    if (this.#keyIndex !== undefined) this.#keyIndex.apply(changes);
    else this.#keyIndexPending?.push(changes);
  }

  /** On the check path: a read that fails throws, and the checker answers `unavailable`. */
  entrySync(scope: string, key: string, h1: number): StoredEntry | undefined {
    this.#assertOpen();
    const value = this.db.getSync(entryKeyOfHash(scope, h1, key));
    return value === undefined ? undefined : decodeEntryValue(value);
  }

  jobMetaSync(jobId: string): JobMeta {
    // The cache would otherwise keep answering for a closed store.
    this.#assertOpen();
    return this.#jobMeta.get(jobId);
  }

  apiKeySync(id: string): StoredApiKey | undefined {
    this.#assertOpen();
    const raw = this.db.getSync(apiKeyKey(id));
    return raw === undefined ? undefined : (JSON.parse(raw) as StoredApiKey);
  }

  async *auditRecords(scan: AuditScan): AsyncGenerator<AuditRecord> {
    this.#assertOpen();
    if (scan.key !== undefined) {
      const ids: string[] = [];
      for await (const k of this.db.keys(auditIndexRange(scan.key))) {
        const id = auditIdOfIndex(k);
        if (id >= scan.fromId) ids.push(id);
      }
      for (const raw of await this.getMany(ids.map((id) => 'a' + id))) {
        if (raw !== undefined) yield JSON.parse(raw) as AuditRecord;
      }
      return;
    }
    for await (const raw of this.db.values({ gte: 'a' + scan.fromId, lt: AUDIT_RANGE.lt })) yield JSON.parse(raw) as AuditRecord;
  }

  async addSuppression(s: NewSuppression, audit: (outcome: AddOutcome) => AuditRecord): Promise<AddOutcome> {
    return addOneWith((g, a) => this.#writeAdds(g, a), s, audit);
  }

  async addEvents(events: readonly DeliveredEvent[], audit: (add: NewSuppression, outcome: AddOutcome, eventId: string) => AuditRecord): Promise<EventOutcome[]> {
    return addEventsWith((g, a) => this.#writeAdds(g, a), events, audit);
  }

  /**
   * Single adds, grouped by the event that brought them (none for a plain add), in one batch:
   * each add a job of its own, an entry for a key its scope lacks (or got earlier in the
   * batch), a hold otherwise; the ids of new events; the audit record of every add.
   */
  async #writeAdds(events: readonly AddGroup[], audit: AddGroupAudit): Promise<EventOutcome[]> {
    const filter = await this.filter();
    return this.withWriteLock(async () => {
      // One read for everything the batch depends on: each read is a trip to libuv's threads.
      const ids = events.flatMap((e) => (e.id === undefined ? [] : [e.id]));
      const entryKeys = events.flatMap((e) => e.adds.map((s) => entryKeyOfHash(s.scope, s.h1, s.key)));
      const [jobseq, ...values] = await this.getMany([metaKey('jobseq'), ...ids.map(seenEventKey), ...entryKeys]);
      const seen = new Set(ids.filter((_, i) => values[i] !== undefined));
      const present = new Set(entryKeys.filter((_, i) => values[ids.length + i] !== undefined));
      let seq = Number(jobseq ?? 0);
      const ops: ChangeOp[] = [];
      const audits: AuditRecord[] = [];
      const delta = new Map<string, number>();
      const out: EventOutcome[] = [];
      for (const event of events) {
        if (event.id !== undefined && seen.has(event.id)) {
          out.push({ id: event.id, duplicate: true, adds: [] });
          continue;
        }
        if (event.id !== undefined) {
          seen.add(event.id);
          ops.push({ type: 'put', key: seenEventKey(event.id), value: '' });
        }
        const outcomes: AddOutcome[] = [];
        for (const s of event.adds) {
          const id = String(++seq);
          const entry = entryKeyOfHash(s.scope, s.h1, s.key);
          const outcome: AddOutcome = { added: !present.has(entry), job: id };
          ops.push({ type: 'put', key: jobKey(id), value: JSON.stringify(addRecordOf(id, s)) });
          if (outcome.added) {
            // In the filter before the write is acknowledged: no check may see the entry as absent.
            filter.add(s.h1, s.h2);
            present.add(entry);
            delta.set(s.scope, (delta.get(s.scope) ?? 0) + 1);
            ops.push({ type: 'put', key: entry, value: encodeEntryValue(id, s.address === s.key ? undefined : s.address) });
          } else {
            // Held, as an import holds a key it found: rolling back the entry's owner keeps it.
            ops.push({ type: 'put', key: holdKeyOfEntry(entry, id), value: '' });
          }
          outcomes.push(outcome);
          audits.push(audit(s, outcome, event.id));
        }
        out.push({ id: event.id ?? '', duplicate: false, adds: outcomes });
      }
      if (ops.length === 0) return out;
      ops.push({ type: 'put', key: metaKey('jobseq'), value: String(seq) });
      await this.commitChange(ops, delta, audits);
      return out;
    });
  }

  async removeSuppression(scope: string, key: HashedKey, audit: (removed: RemovedEntry) => AuditRecord): Promise<RemovedEntry> {
    return this.withWriteLock(async () => {
      const entryKey = entryKeyOfHash(scope, key.h1, key.key);
      const [value] = await this.getMany([entryKey]);
      if (value === undefined) {
        throw new OptoutError('OPTOUT_ERR_NOT_SUPPRESSED', `${key.key} is not suppressed ${scope === ACCOUNT_WIDE ? 'account-wide' : `in unit ${scope}`}`);
      }
      const entry = decodeEntryValue(value);
      const range = holdRangeOfEntry(entryKey);
      const holds = await this.db.keys(range).all();
      const removed: RemovedEntry = { entry, meta: this.#jobMeta.get(entry.jobId), heldBy: holds.map((k) => k.slice(range.gte.length)) };
      const ops: ChangeOp[] = [{ type: 'del', key: entryKey }, ...holds.map((k) => ({ type: 'del' as const, key: k }))];
      await this.commitChange(ops, new Map([[scope, -1]]), audit(removed));
      return removed;
    });
  }

  async rollbackJob(job: AnyJob, audit: (counts: RollbackCounts) => AuditRecord): Promise<RollbackCounts> {
    this.#assertOpen();
    return rollbackInLevel(this.db, (ops, delta, a) => this.commitChange(ops, delta, a), job, audit);
  }

  async entriesOf(key: HashedKey): Promise<Array<{ scope: string; entry: StoredEntry }>> {
    return (await this.entriesOfMany([key]))[0] ?? [];
  }

  async entriesOfMany(keys: readonly HashedKey[]): Promise<Array<Array<{ scope: string; entry: StoredEntry }>>> {
    const scopes = [ACCOUNT_WIDE, ...[...this.#counts.keys()].filter((s) => s !== ACCOUNT_WIDE).sort()];
    const values = await this.getMany(keys.flatMap((key) => scopes.map((s) => entryKeyOfHash(s, key.h1, key.key))));
    return keys.map((_, k) => {
      const out: Array<{ scope: string; entry: StoredEntry }> = [];
      scopes.forEach((scope, i) => {
        const value = values[k * scopes.length + i];
        if (value !== undefined) out.push({ scope, entry: decodeEntryValue(value) });
      });
      return out;
    });
  }

  async *scanEntries(scope?: string): AsyncGenerator<ScopedEntry[]> {
    this.#assertOpen();
    const it = this.db.iterator(entryRange(scope));
    try {
      for (;;) {
        const batch = await it.nextv(1000);
        if (batch.length === 0) return;
        yield batch.map(([dbKey, value]) => ({ ...parseEntryKey(dbKey), ...decodeEntryValue(value) }));
      }
    } finally {
      await it.close();
    }
  }

  async putApiKey(key: StoredApiKey, audit: AuditRecord): Promise<void> {
    await this.#put([{ key: apiKeyKey(key.id), value: JSON.stringify(key) }, ...auditOps(audit)]);
    this.#apiKeysVersion++;
  }

  async getApiKey(id: string): Promise<StoredApiKey | undefined> {
    this.#assertOpen();
    const raw = await this.db.get(apiKeyKey(id));
    return raw === undefined ? undefined : (JSON.parse(raw) as StoredApiKey);
  }

  async listApiKeys(): Promise<StoredApiKey[]> {
    this.#assertOpen();
    const out: StoredApiKey[] = [];
    for await (const value of this.db.values(API_KEY_RANGE)) out.push(JSON.parse(value) as StoredApiKey);
    return out;
  }

  async createSync(build: (id: string) => SyncRecord, audit: (sync: SyncRecord) => AuditRecord): Promise<SyncRecord> {
    this.#assertOpen();
    return this.withWriteLock(async () => {
      const id = String(Number((await this.db.get(metaKey('syncseq'))) ?? 0) + 1);
      const sync = build(id);
      await this.commitChange([
        { type: 'put', key: metaKey('syncseq'), value: id },
        { type: 'put', key: syncKey(id), value: JSON.stringify(sync) },
      ], new Map(), audit(sync));
      return sync;
    });
  }

  async putRecord(kind: RecordKind, id: string, value: unknown, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    await this.#put([{ key: recordKey(kind, id), value: JSON.stringify(value) }, ...(audit === undefined ? [] : auditOps(audit))]);
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | undefined> {
    assertRecordRef(kind, id);
    this.#assertOpen();
    const raw = await this.db.get(recordKey(kind, id));
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  async listRecords<T>(kind: RecordKind): Promise<Array<{ id: string; value: T }>> {
    assertRecordRef(kind, 'x');
    this.#assertOpen();
    const out: Array<{ id: string; value: T }> = [];
    const prefix = recordKey(kind, '');
    for await (const [key, value] of this.db.iterator(recordRange(kind))) out.push({ id: key.slice(prefix.length), value: JSON.parse(value) as T });
    return out;
  }

  async deleteRecord(kind: RecordKind, id: string, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    this.#assertWritable();
    const b = this.db.batch().del(recordKey(kind, id));
    if (audit !== undefined) for (const op of auditOps(audit)) b.put(op.key, op.value);
    try {
      await b.write();
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_STORE', `Store write failed: ${(cause as Error).message}`, { cause });
    }
  }

  async putSync(sync: SyncRecord): Promise<void> {
    await this.#put([{ key: syncKey(sync.id), value: JSON.stringify(sync) }]);
  }

  async getSync(id: string): Promise<SyncRecord | undefined> {
    this.#assertOpen();
    const raw = await this.db.get(syncKey(id));
    return raw === undefined ? undefined : (JSON.parse(raw) as SyncRecord);
  }

  async listSyncs(): Promise<SyncRecord[]> {
    this.#assertOpen();
    const out: SyncRecord[] = [];
    for await (const v of this.db.values(SYNC_RANGE)) out.push(JSON.parse(v) as SyncRecord);
    return out;
  }

  claimSync(id: string, due: string, until: string): Promise<boolean> {
    return claimSyncUnderLock(this, id, due, until);
  }

  async deleteSync(id: string, audit: AuditRecord): Promise<void> {
    await this.commitChange([{ type: 'del', key: syncKey(id) }], new Map(), audit);
  }

  async head(): Promise<number> {
    throw noFeed();
  }

  async changesSince(): Promise<Change[]> {
    throw noFeed();
  }

  /** Where this store stands as an API replica's view of a ledger's feed; undefined for an embedded store. */
  get following(): Following | undefined {
    return this.#following;
  }

  /**
   * Makes this store a view that follows the feed of the ledger `feedId` (an API replica's), from
   * position 0 and incomplete until a snapshot has been applied. Refused on a store that holds
   * anything, and on a view of another ledger: their entries are not that ledger's.
   */
  async startFollowing(feedId: string): Promise<void> {
    this.#assertOpen();
    if (this.#following !== undefined) {
      if (this.#following.feedId === feedId) return;
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The folder ${this.dir} is the view of another database (ledger ${this.#following.feedId}, ` +
        `not ${feedId}): give each database its own replica folder, or remove this one`);
    }
    const [job] = await this.db.keys({ ...JOB_RANGE, limit: 1 }).all();
    const [apiKey] = await this.db.keys({ ...API_KEY_RANGE, limit: 1 }).all();
    if (this.totalEntries() > 0 || job !== undefined || apiKey !== undefined) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The folder ${this.dir} holds an embedded store, not a replica's view: ` +
        'a replica needs an empty folder of its own');
    }
    await this.#setFollowing({ feedId, seq: 0, complete: false });
  }

  /**
   * Applies followed changes (a snapshot's parts, or the feed's changes after the view's
   * position) and moves the view to `to`, in one atomic batch: entries, counts, the filter log,
   * job metadata, API keys and the position. The key filter learns the new keys before the
   * write, so that no check can see an entry the filter would deny.
   */
  async applyFollowed(changes: ReadonlyArray<Omit<Change, 'seq'>>, to: { seq: number; complete: boolean }): Promise<void> {
    this.#assertOpen();
    const from = this.#following;
    if (from === undefined) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The store ${this.dir} follows no feed`);
    if (to.seq < from.seq || (from.complete && !to.complete)) {
      throw new OptoutError('OPTOUT_ERR_STORE', `A replica's view moves forward only: at ${from.seq}${from.complete ? '' : ' (loading)'}, asked for ${to.seq}`);
    }
    // While a snapshot loads, the view started empty (see openReplicaView) and the snapshot's
    // parts hold each entry once: nothing to look up.
    const present = from.complete ? await this.#presence(changes) : new Map<string, boolean>();
    const b = this.db.batch();
    const log = new FilterLogRecord();
    const index = new KeyIndexChanges();
    const delta = new Map<string, number>();
    const move = (scope: string, n: number): void => {
      delta.set(scope, (delta.get(scope) ?? 0) + n);
    };
    const filter = this.#filter;
    for (const change of changes) {
      for (const d of change.del) {
        const [h1, h2] = hashKeyTuple(d.key);
        const k = entryKeyOfHash(d.scope, h1, d.key);
        if (present.get(k) !== true) continue;
        b.del(k);
        index.remove(d.scope, h1, h2);
        present.set(k, false);
        move(d.scope, -1);
      }
      for (const p of change.put) {
        const [h1, h2] = hashKeyTuple(p.key);
        const k = entryKeyOfHash(p.scope, h1, p.key);
        filter?.add(h1, h2);
        const value = encodeEntryValue(p.jobId, p.address, p.reason);
        b.put(k, value);
        log.addHashes(h1, h2);
        index.put(p.scope, h1, h2, value);
        if (present.get(k) !== true) move(p.scope, 1);
        present.set(k, true);
      }
      for (const j of change.jobs) b.put(followedJobKey(j.id), JSON.stringify(j.meta));
      for (const key of change.apiKeys) b.put(apiKeyKey(key.id), JSON.stringify(key));
    }
    const keysChanged = changes.some((c) => c.apiKeys.length > 0);
    const following: Following = { feedId: from.feedId, seq: to.seq, complete: to.complete };
    b.put(metaKey('follow'), JSON.stringify(following));
    await this.#inFlight.track(this.#commit(b, delta, log, index));
    this.#following = following;
    if (keysChanged) this.#apiKeysVersion++;
  }

  /**
   * Compacts the entries now rather than in the background: a view loaded from a snapshot got
   * them in key order, which is not the store's (hash) order, so its files overlap, and the
   * compaction LevelDB would run over the next minutes takes the CPU that checks need and slows
   * every lookup until it ends.
   */
  async compactEntries(): Promise<void> {
    this.#assertOpen();
    const range = entryRange();
    await this.db.compactRange(range.gt, range.lt);
  }

  /**
   * Moves whenever an API key record is written here (a revocation that came through the feed,
   * say), so that a cache of keys knows to read them again.
   */
  get apiKeysVersion(): number {
    return this.#apiKeysVersion;
  }

  /** Whether each entry that `changes` put or delete is stored now. */
  async #presence(changes: ReadonlyArray<Omit<Change, 'seq'>>): Promise<Map<string, boolean>> {
    const keys = new Set<string>();
    for (const c of changes) {
      for (const d of c.del) keys.add(entryKey(d.scope, d.key));
      for (const p of c.put) keys.add(entryKey(p.scope, p.key));
    }
    const list = [...keys];
    const values = await this.getMany(list);
    return new Map(list.map((k, i) => [k, values[i] !== undefined]));
  }

  async #setFollowing(following: Following): Promise<void> {
    await this.#write([{ key: metaKey('follow'), value: JSON.stringify(following) }]);
    this.#following = following;
  }

  // eslint-disable-next-line require-yield
  async *feedSnapshot(): AsyncGenerator<FeedSnapshotPart> {
    throw noFeed();
  }

  async feedId(): Promise<string> {
    throw noFeed();
  }

  onChange(): () => void {
    throw noFeed();
  }

  /** Writes records that are not entries (no generation, no filter log), atomically. */
  async #put(ops: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
    this.#assertWritable();
    await this.#write(ops);
  }

  /** {@link #put} without the writability check: for a view's own records. */
  async #write(ops: ReadonlyArray<{ key: string; value: string }>): Promise<void> {
    this.#assertOpen();
    try {
      await this.db.batch(ops.map((op) => ({ type: 'put' as const, ...op })));
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_STORE', `Store write failed: ${(cause as Error).message}`, { cause });
    }
  }

  /** The store folder: imports spool there, so one store's leftovers are found and cleared by its next owner. */
  get workDir(): string {
    return this.dir;
  }

  async storageBytes(): Promise<number> {
    this.#assertOpen();
    return this.sizeOnDisk();
  }

  /** Bytes the store's files take on disk. */
  sizeOnDisk(): number {
    let total = 0;
    const walk = (dir: string): void => {
      for (const ent of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, ent.name);
        if (ent.isDirectory()) walk(p);
        else total += statSync(p).size;
      }
    };
    walk(this.dir);
    return total;
  }

  /**
   * Saves the filter snapshot (when one is loaded and has changed) and the key index's (when
   * it is built and has changed), releases the lock.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Taken with the generation it holds, in one step: from here on no change reaches it.
    const index = this.#keyIndex;
    const generation = this.#generation;
    this.#keyIndex = undefined;
    try {
      await this.persistFilter();
      // Only a faster next start is lost when it cannot be saved (a full disk: the file is the
      // size of the index), and the next build scans: that must not fail the close.
      if (index !== undefined) await this.#saveKeyIndex(index, generation).catch(() => undefined);
    } finally {
      rmSync(join(this.dir, 'owner.json'), { force: true });
      await this.db.close();
    }
  }

  /**
   * A view's writes come from its feed alone (applyFollowed): one written here would reach no
   * other replica and never the database, and the next snapshot load would drop it.
   */
  #assertWritable(): void {
    this.#assertOpen();
    if (this.#following !== undefined) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The store ${this.dir} is an API replica's view of a database: write to the database instead`);
    }
  }

  #assertOpen(): void {
    if (this.#closed || this.db.status !== 'open') {
      throw new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', `The store ${this.dir} is not open`);
    }
  }
}

function noFeed(): OptoutError {
  return new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'The embedded store keeps no change feed (supports.feed is false)');
}

function readOwner(dir: string): Owner | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as Owner;
  } catch {
    return undefined;
  }
}

function describeOwner(owner: Owner | undefined): string {
  return owner === undefined ? '' : ` (pid ${owner.pid}, ${owner.purpose}, since ${owner.since})`;
}
