/**
 * A store held in Maps: no I/O, for fast unit tests, and a plain reading of the store contract
 * (`../store.ts`). It keeps the semantics of the LevelDB store, not its layout; the shared suite
 * (`test/store/contract.ts`) runs on both. Records (jobs, API keys, syncs, audit) are kept as
 * JSON, so a caller gets a copy as it would from a database, never an alias of what is stored.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyFilter } from '../../filter/bloom.js';
import { OptoutError } from '../../errors.js';
import { auditId, type AuditRecord } from '../audit.js';
import { moveJob } from '../job-states.js';
import { addRecordOf, jobMetaOf, type AnyJob, type JobRecord } from '../jobs.js';
import {
  ACCOUNT_WIDE, type AddOutcome, type AuditFields, type AuditScan, type ChunkKeyCodec, type ChunkWriter, type EmptyScopeWatch, type HashedKey, type JobMeta,
  type Change, type NewSuppression, type RemovedEntry, type RollbackCounts, type ScopedEntry, type Store, type StoredApiKey, type StoredEntry,
  type FeedSnapshotPart, type RecordKind, type SyncRecord, type DeliveredEvent, type EventOutcome, type AddGroup, type AddGroupAudit, addEventsWith, addOneWith, assertRecordRef, claimSyncUnderLock,
} from '../store.js';

/** Scopes and keys cannot contain it (see keys.ts), so a chunk key splits back at its first one. */
const SEP = '\u0000';
const SCAN_BATCH = 1000;

/** Job and sync ids are decimal sequences; padded, they sort in creation order. */
const byPaddedId = (a: string, b: string): number => a.padStart(12, '0').localeCompare(b.padStart(12, '0'));
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The Map-backed {@link Store}. */
export class MemoryStore implements Store {
  readonly supports = { syncLookups: true, feed: true, exclusive: true, settlesChunks: false } as const;
  /** The change feed: change `seq` is at index `seq - 1`. */
  readonly #changes: Change[] = [];
  readonly #feedId = randomUUID();
  readonly #wakes = new Set<() => void>();
  /** scope -> key -> entry. */
  readonly #entries = new Map<string, Map<string, StoredEntry>>();
  /** scope -> key -> the jobs that hold it besides its owner. */
  readonly #holds = new Map<string, Map<string, Set<string>>>();
  readonly #counts = new Map<string, number>();
  readonly #filter = KeyFilter.create(0);
  readonly #jobs = new Map<string, string>();
  readonly #apiKeys = new Map<string, string>();
  readonly #syncs = new Map<string, string>();
  /** `<kind>\0<id>` -> JSON. */
  readonly #records = new Map<string, string>();
  /** Ids of the delivered events written. */
  readonly #seenEvents = new Set<string>();
  readonly #audit = new Map<string, string>();
  /** key -> ids of the audit records about it. */
  readonly #auditByKey = new Map<string, string[]>();
  /** Changes of entries other than import chunks' (see `watchEmptyScope`). */
  #otherWrites = 0;
  #jobSeq = 0;
  #syncSeq = 0;
  #auditSeq = 0;
  #open = true;
  #workDir: string | undefined;
  #lockTail: Promise<unknown> = Promise.resolve();
  #leaseTail: Promise<unknown> = Promise.resolve();

  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * Runs `fn` after every writer queued before it, as LevelStore's lock does. Writes apply
   * synchronously here, so there is nothing in flight to drain and `options` is accepted only
   * to keep the same signature.
   */
  withWriteLock<T>(fn: () => Promise<T>, _options?: { drain: boolean }): Promise<T> {
    this.#assertOpen();
    const run = this.#lockTail.then(fn);
    this.#lockTail = run.catch(() => undefined);
    return run;
  }

  withImportLease<T>(fn: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    const run = this.#leaseTail.then(fn);
    this.#leaseTail = run.catch(() => undefined);
    return run;
  }

  counts(): ReadonlyMap<string, number> {
    this.#assertOpen();
    return this.#counts;
  }

  totalEntries(): number {
    let n = 0;
    for (const c of this.counts().values()) n += c;
    return n;
  }

  async scopeCounts(): Promise<ReadonlyMap<string, number>> {
    return new Map(this.counts());
  }

  async filter(): Promise<KeyFilter> {
    this.#assertOpen();
    return this.#filter;
  }

  entrySync(scope: string, key: string, _h1: number): StoredEntry | undefined {
    this.#assertOpen();
    const entry = this.#entries.get(scope)?.get(key);
    return entry === undefined ? undefined : { ...entry };
  }

  matchSync(scope: string, key: string, h1: number, _h2: number): StoredEntry | undefined {
    return this.entrySync(scope, key, h1);
  }

  jobMetaSync(jobId: string): JobMeta {
    return jobMetaOf(this.#read<AnyJob>(this.#jobs, jobId));
  }

  apiKeySync(id: string): StoredApiKey | undefined {
    return this.#read(this.#apiKeys, id);
  }

  audit(fields: AuditFields): AuditRecord {
    this.#assertOpen();
    const now = Date.now();
    return { id: auditId(now, this.#auditSeq++), time: new Date(now).toISOString(), ...fields };
  }

  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    this.#assertOpen();
    for (const r of records) this.#appendAudit(r);
  }

  async *auditRecords(scan: AuditScan): AsyncGenerator<AuditRecord> {
    this.#assertOpen();
    const ids = scan.key === undefined ? [...this.#audit.keys()] : [...(this.#auditByKey.get(scan.key) ?? [])];
    for (const id of ids.filter((i) => i >= scan.fromId).sort(byString)) yield this.#read(this.#audit, id) as AuditRecord;
  }

  async createJob(fields: Omit<JobRecord, 'id'>, complete: (job: JobRecord) => JobRecord = (j) => j, id?: string): Promise<JobRecord> {
    return this.withWriteLock(async () => {
      const job = complete({ id: id ?? this.#nextJobId(), ...fields });
      this.#jobs.set(job.id, JSON.stringify(job));
      return job;
    });
  }

  async putJob(job: AnyJob, audit?: AuditRecord): Promise<void> {
    this.#assertOpen();
    this.#jobs.set(job.id, JSON.stringify(job));
    if (audit) this.#appendAudit(audit);
  }

  async getJob(id: string): Promise<AnyJob | undefined> {
    return this.#read(this.#jobs, id);
  }

  async listJobs(): Promise<AnyJob[]> {
    return this.#readAll(this.#jobs, byPaddedId);
  }

  async listImports(): Promise<JobRecord[]> {
    return (await this.listJobs()).filter((j): j is JobRecord => j.kind === 'import');
  }

  /** Chunk keys are `<scope>\0<key>`: no hash part, nothing here is ordered by it. */
  chunkKeyCodec(scope: string): ChunkKeyCodec {
    this.#assertOpen();
    return { prefix: scope + SEP, withHash: false };
  }

  async presentKeys(chunkKeys: readonly string[]): Promise<boolean[]> {
    this.#assertOpen();
    return chunkKeys.map((chunkKey) => {
      const { scope, key } = parseChunkKey(chunkKey);
      return this.#entries.get(scope)?.has(key) ?? false;
    });
  }

  /** One writing process, whose every writer but import chunks counts its changes: see LevelStore's. */
  watchEmptyScope(scope: string): EmptyScopeWatch | undefined {
    this.#assertOpen();
    if ((this.#counts.get(scope) ?? 0) !== 0) return undefined;
    const at = this.#otherWrites;
    return { untouched: () => this.#otherWrites === at };
  }

  beginChunk(scope: string, jobId: string): ChunkWriter {
    this.#assertOpen();
    let entries: Array<[string, StoredEntry]> = [];
    let holds: string[] = [];
    return {
      putEntry: (chunkKey, address, reason) => {
        entries.push([parseChunkKey(chunkKey).key, reason === undefined ? { jobId, address } : { jobId, address, reason }]);
      },
      putHold: (chunkKey) => {
        holds.push(parseChunkKey(chunkKey).key);
      },
      // No await before the writes: the chunk applies whole, or (closed, replayed) not at all.
      commit: async (job, added) => {
        this.#assertOpen();
        const stored = this.#read<AnyJob>(this.#jobs, job.id);
        if (stored?.kind === 'import' && stored.checkpoint.phase === 'merge' && stored.checkpoint.bucket >= job.checkpoint.bucket) {
          return { applied: false, added: 0 };
        }
        for (const [key, entry] of entries) this.#scope(this.#entries, scope).set(key, entry);
        for (const key of holds) this.#holdersOf(scope, key).add(jobId);
        this.#count(scope, added);
        this.#jobs.set(job.id, JSON.stringify(job));
        this.#record({ put: entries.map(([key, entry]) => ({ scope, key, ...entry })), jobs: [{ id: job.id, meta: jobMetaOf(job) }] });
        return { applied: true, added };
      },
      discard: async () => {
        entries = [];
        holds = [];
      },
    };
  }

  async addSuppression(s: NewSuppression, audit: (outcome: AddOutcome) => AuditRecord): Promise<AddOutcome> {
    return addOneWith((g, a) => this.#writeAdds(g, a), s, audit);
  }

  async addEvents(events: readonly DeliveredEvent[], audit: (add: NewSuppression, outcome: AddOutcome, eventId: string) => AuditRecord): Promise<EventOutcome[]> {
    return addEventsWith((g, a) => this.#writeAdds(g, a), events, audit);
  }

  /** Single adds, grouped by the event that brought them (none for a plain add): one change. */
  async #writeAdds(events: readonly AddGroup[], audit: AddGroupAudit): Promise<EventOutcome[]> {
    return this.withWriteLock(async () => {
      this.#otherWrites++;
      const change: Pick<Change, 'put' | 'jobs'> = { put: [], jobs: [] };
      const out: EventOutcome[] = [];
      // Audit records first, applied after: a throwing callback leaves nothing half-written.
      const writes: Array<() => void> = [];
      const batchSeen = new Set<string>();
      const batchKeys = new Set<string>();
      for (const event of events) {
        if (event.id !== undefined && (this.#seenEvents.has(event.id) || batchSeen.has(event.id))) {
          out.push({ id: event.id, duplicate: true, adds: [] });
          continue;
        }
        if (event.id !== undefined) batchSeen.add(event.id);
        const outcomes: AddOutcome[] = [];
        for (const s of event.adds) {
          const id = this.#nextJobId();
          const record = addRecordOf(id, s);
          const place = s.scope + SEP + s.key;
          const outcome: AddOutcome = { added: !this.#scope(this.#entries, s.scope).has(s.key) && !batchKeys.has(place), job: id };
          batchKeys.add(place);
          const address = s.address === s.key ? undefined : s.address;
          if (outcome.added) change.put.push({ scope: s.scope, key: s.key, jobId: id, address });
          if (outcome.added) change.jobs.push({ id, meta: jobMetaOf(record) });
          const auditRecord = audit(s, outcome, event.id);
          writes.push(() => {
            if (outcome.added) {
              // In the filter before the entry exists: no check may see it as absent.
              this.#filter.add(s.h1, s.h2);
              this.#scope(this.#entries, s.scope).set(s.key, { jobId: id, address });
              this.#count(s.scope, 1);
            } else {
              // Opt-out wins: the entry stays its owner's; the add holds it, so a rollback of the owner keeps it.
              this.#holdersOf(s.scope, s.key).add(id);
            }
            this.#jobs.set(id, JSON.stringify(record));
            this.#appendAudit(auditRecord);
          });
          outcomes.push(outcome);
        }
        out.push({ id: event.id ?? '', duplicate: false, adds: outcomes });
      }
      for (const id of batchSeen) this.#seenEvents.add(id);
      for (const write of writes) write();
      if (change.put.length > 0) this.#record(change);
      return out;
    });
  }

  async removeSuppression(scope: string, key: HashedKey, audit: (removed: RemovedEntry) => AuditRecord): Promise<RemovedEntry> {
    return this.withWriteLock(async () => {
      this.#otherWrites++;
      const entry = this.#entries.get(scope)?.get(key.key);
      if (entry === undefined) {
        throw new OptoutError('OPTOUT_ERR_NOT_SUPPRESSED', `${key.key} is not suppressed ${scope === ACCOUNT_WIDE ? 'account-wide' : `in unit ${scope}`}`);
      }
      const heldBy = [...(this.#holds.get(scope)?.get(key.key) ?? [])].sort(byString);
      const removed: RemovedEntry = { entry: { ...entry }, meta: this.jobMetaSync(entry.jobId), heldBy };
      const record = audit(removed);
      this.#entries.get(scope)?.delete(key.key);
      this.#holds.get(scope)?.delete(key.key);
      this.#count(scope, -1);
      this.#record({ del: [{ scope, key: key.key }] });
      this.#appendAudit(record);
      return removed;
    });
  }

  async rollbackJob(job: AnyJob, audit: (counts: RollbackCounts) => AuditRecord): Promise<RollbackCounts> {
    this.#assertOpen();
    this.#otherWrites++;
    const counts: RollbackCounts = { removed: 0, kept: 0, holdsReleased: 0 };
    const holds = this.#holds.get(job.scope);
    for (const holders of holds?.values() ?? []) {
      if (holders.delete(job.id)) counts.holdsReleased++;
    }
    const entries = this.#entries.get(job.scope);
    const change: Pick<Change, 'put' | 'del' | 'jobs'> = { put: [], del: [], jobs: [] };
    for (const [key, entry] of entries ?? []) {
      if (entry.jobId !== job.id) continue;
      const holders = holds?.get(key);
      // The earliest other holder inherits the entry, as if it had been the first to store it.
      const heir = holders === undefined ? undefined : [...holders].reduce<string | undefined>((a, b) => (a !== undefined && Number(a) <= Number(b) ? a : b), undefined);
      if (heir === undefined) {
        entries?.delete(key);
        change.del.push({ scope: job.scope, key });
        counts.removed++;
      } else {
        entries?.set(key, { ...entry, jobId: heir });
        holders?.delete(heir);
        change.put.push({ scope: job.scope, key, ...entry, jobId: heir });
        if (!change.jobs.some((j) => j.id === heir)) change.jobs.push({ id: heir, meta: this.jobMetaSync(heir) });
        counts.kept++;
      }
    }
    for (const [key, holders] of holds ?? []) if (holders.size === 0) holds?.delete(key);
    this.#count(job.scope, -counts.removed);
    this.#jobs.set(job.id, JSON.stringify(moveJob<AnyJob>(job, 'rolled_back')));
    this.#record(change);
    this.#appendAudit(audit(counts));
    return counts;
  }

  async entriesOf(key: HashedKey): Promise<Array<{ scope: string; entry: StoredEntry }>> {
    return (await this.entriesOfMany([key]))[0] ?? [];
  }

  async entriesOfMany(keys: readonly HashedKey[]): Promise<Array<Array<{ scope: string; entry: StoredEntry }>>> {
    this.#assertOpen();
    const scopes = [...this.#entries.keys()].sort((a, b) => (a === ACCOUNT_WIDE ? -1 : b === ACCOUNT_WIDE ? 1 : byString(a, b)));
    return keys.map((key) => {
      const out: Array<{ scope: string; entry: StoredEntry }> = [];
      for (const scope of scopes) {
        const entry = this.#entries.get(scope)?.get(key.key);
        if (entry !== undefined) out.push({ scope, entry: { ...entry } });
      }
      return out;
    });
  }

  async *scanEntries(scope?: string): AsyncGenerator<ScopedEntry[]> {
    this.#assertOpen();
    const scopes = scope === undefined ? [...this.#entries.keys()].sort(byString) : [scope];
    // A snapshot, as a LevelDB iterator reads one: writes made while the caller walks it are not seen.
    const rows: ScopedEntry[] = [];
    for (const s of scopes) {
      const entries = this.#entries.get(s) ?? new Map<string, StoredEntry>();
      for (const key of [...entries.keys()].sort(byString)) rows.push({ scope: s, key, ...(entries.get(key) as StoredEntry) });
    }
    for (let i = 0; i < rows.length; i += SCAN_BATCH) yield rows.slice(i, i + SCAN_BATCH);
  }

  async putApiKey(key: StoredApiKey, audit: AuditRecord): Promise<void> {
    this.#assertOpen();
    this.#apiKeys.set(key.id, JSON.stringify(key));
    this.#appendAudit(audit);
    this.#record({ apiKeys: [structuredClone(key)] });
  }

  async getApiKey(id: string): Promise<StoredApiKey | undefined> {
    return this.apiKeySync(id);
  }

  async listApiKeys(): Promise<StoredApiKey[]> {
    return this.#readAll(this.#apiKeys, byString);
  }

  async createSync(build: (id: string) => SyncRecord, audit: (sync: SyncRecord) => AuditRecord): Promise<SyncRecord> {
    return this.withWriteLock(async () => {
      const sync = build(String(this.#syncSeq + 1));
      const record = audit(sync);
      this.#syncSeq++;
      this.#syncs.set(sync.id, JSON.stringify(sync));
      this.#appendAudit(record);
      return sync;
    });
  }

  async putRecord(kind: RecordKind, id: string, value: unknown, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    this.#assertOpen();
    this.#records.set(`${kind}\u0000${id}`, JSON.stringify(value));
    if (audit !== undefined) this.#appendAudit(audit);
  }

  async getRecord<T>(kind: RecordKind, id: string): Promise<T | undefined> {
    assertRecordRef(kind, id);
    return this.#read<T>(this.#records, `${kind}\u0000${id}`);
  }

  async listRecords<T>(kind: RecordKind): Promise<Array<{ id: string; value: T }>> {
    assertRecordRef(kind, 'x');
    this.#assertOpen();
    const prefix = `${kind}\u0000`;
    return [...this.#records.keys()].filter((k) => k.startsWith(prefix)).sort(byString)
      .map((k) => ({ id: k.slice(prefix.length), value: this.#read<T>(this.#records, k) as T }));
  }

  async deleteRecord(kind: RecordKind, id: string, audit: AuditRecord | undefined): Promise<void> {
    assertRecordRef(kind, id);
    this.#assertOpen();
    this.#records.delete(`${kind}\u0000${id}`);
    if (audit !== undefined) this.#appendAudit(audit);
  }

  async putSync(sync: SyncRecord): Promise<void> {
    this.#assertOpen();
    this.#syncs.set(sync.id, JSON.stringify(sync));
  }

  async getSync(id: string): Promise<SyncRecord | undefined> {
    return this.#read(this.#syncs, id);
  }

  async listSyncs(): Promise<SyncRecord[]> {
    return this.#readAll(this.#syncs, byPaddedId);
  }

  claimSync(id: string, due: string, until: string): Promise<boolean> {
    return claimSyncUnderLock(this, id, due, until);
  }

  async deleteSync(id: string, audit: AuditRecord): Promise<void> {
    this.#assertOpen();
    this.#syncs.delete(id);
    this.#appendAudit(audit);
  }

  /** Made on first use, removed at close: only imports into the store need it. */
  get workDir(): string {
    this.#workDir ??= mkdtempSync(join(tmpdir(), 'optout-memory-'));
    return this.#workDir;
  }

  /** Held in memory: nothing on disk but what imports spool (removed with the store). */
  async storageBytes(): Promise<number> {
    this.#assertOpen();
    return 0;
  }

  async close(): Promise<void> {
    this.#open = false;
    if (this.#workDir !== undefined) rmSync(this.#workDir, { recursive: true, force: true });
  }

  async head(): Promise<number> {
    this.#assertOpen();
    return this.#changes.length;
  }

  async changesSince(after: number, limit: number): Promise<Change[]> {
    this.#assertOpen();
    return structuredClone(this.#changes.slice(Math.max(0, after), Math.max(0, after) + limit));
  }

  async *feedSnapshot(): AsyncGenerator<FeedSnapshotPart> {
    this.#assertOpen();
    // Read whole before the first yield: a write made while the caller applies the parts is not
    // in them, and comes after `seq` in the feed.
    const seq = this.#changes.length;
    const apiKeys = this.#readAll<StoredApiKey>(this.#apiKeys, byString);
    const put: ScopedEntry[] = [];
    for (const [scope, entries] of [...this.#entries].sort(([a], [b]) => byString(a, b))) {
      for (const [key, entry] of entries) put.push({ scope, key, ...entry });
    }
    const jobs = [...new Set(put.map((e) => e.jobId))].map((id) => ({ id, meta: this.jobMetaSync(id) }));
    yield { seq, put, jobs, apiKeys };
  }

  async feedId(): Promise<string> {
    this.#assertOpen();
    return this.#feedId;
  }

  onChange(wake: () => void): () => void {
    this.#assertOpen();
    const listener = (): void => wake();
    this.#wakes.add(listener);
    return () => {
      this.#wakes.delete(listener);
    };
  }

  /** Appends a change to the feed, numbered next. */
  #record(change: Partial<Omit<Change, 'seq'>>): void {
    this.#changes.push({ seq: this.#changes.length + 1, put: [], del: [], jobs: [], apiKeys: [], ...change });
    // After the caller's write, as a database's notification comes after the commit.
    for (const wake of this.#wakes) queueMicrotask(wake);
  }

  #nextJobId(): string {
    return String(++this.#jobSeq);
  }

  #read<T>(records: ReadonlyMap<string, string>, id: string): T | undefined {
    this.#assertOpen();
    const raw = records.get(id);
    return raw === undefined ? undefined : (JSON.parse(raw) as T);
  }

  #readAll<T>(records: ReadonlyMap<string, string>, order: (a: string, b: string) => number): T[] {
    this.#assertOpen();
    return [...records.keys()].sort(order).map((id) => this.#read(records, id) as T);
  }

  #appendAudit(r: AuditRecord): void {
    this.#audit.set(r.id, JSON.stringify(r));
    if (r.key !== null) {
      const ids = this.#auditByKey.get(r.key) ?? [];
      ids.push(r.id);
      this.#auditByKey.set(r.key, ids);
    }
  }

  #scope<V>(maps: Map<string, Map<string, V>>, scope: string): Map<string, V> {
    let m = maps.get(scope);
    if (m === undefined) {
      m = new Map();
      maps.set(scope, m);
    }
    return m;
  }

  #holdersOf(scope: string, key: string): Set<string> {
    const holds = this.#scope(this.#holds, scope);
    let holders = holds.get(key);
    if (holders === undefined) {
      holders = new Set();
      holds.set(key, holders);
    }
    return holders;
  }

  #count(scope: string, delta: number): void {
    if (delta !== 0) this.#counts.set(scope, (this.#counts.get(scope) ?? 0) + delta);
  }

  #assertOpen(): void {
    if (!this.#open) throw new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', 'The memory store is not open');
  }
}

function parseChunkKey(chunkKey: string): { scope: string; key: string } {
  const sep = chunkKey.indexOf(SEP);
  return { scope: chunkKey.slice(0, sep), key: chunkKey.slice(sep + 1) };
}
