/**
 * Imports run inside a long-lived process (the server): each has a job id from its first
 * request, reads an uploaded file kept under the store (`uploads/<id>.csv`), waits for its
 * confirmation, and writes through the same pipeline as the CLI.
 *
 * Analyses run side by side; the jobs' writing phases take turns under the store's import
 * lease (see runImport), because two imports classifying the same keys at once could both count
 * a key as added. While an import
 * writes, checks keep being answered: parsing and deduplication run in one worker thread (the
 * other core serves requests), and the import gives the event loop back between batches.
 *
 * After a restart, every job that was cut off is taken up again from its record: a job that was
 * writing resumes from its checkpoint, one that was analysing or waiting is analysed again and
 * waits for its confirmation again.
 *
 * Waiting is bounded: a job not confirmed within its time to live (counted from its creation,
 * which a restart does not reset) expires: its files are deleted and it is never analysed
 * again. The files kept for unfinished jobs are bounded too (see UploadQuota).
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OptoutError, describeValue } from '../errors.js';
import { writeFileStream } from '../files/file-stream.js';
import { normalizeImportOptions, normalizePool, positiveInteger, type ImportOptions } from '../options.js';
import { removeOrphanSpools, runImport } from '../pipeline/run-import.js';
import { emptyCounts, type ImportCounts } from '../store/counts.js';
import type { ImportReport } from '../report/summary.js';
import { UNENDED, canMove, moveJob } from '../store/job-states.js';
import type { JobError, JobOrigin, JobRecord, JobState, SuppressionReason } from '../store/jobs.js';
import { reasonCodeCounts, rowsPerReason } from '../csv/reasons.js';
import type { Ledger } from '../store/store.js';
import { fetchSource, type FetchSourceOptions } from '../fetch/fetch-source.js';
import type { ChunkPool } from '../workers/pool.js';
import { redactUrl, validateSyncUrl } from '../fetch/url-policy.js';
import { UploadQuota } from './upload-quota.js';
import {
  DEFAULT_HEARTBEAT_MS, DEFAULT_LOST_AFTER_MS, abandonJob, beat, endWithoutHolder, holderIdOf, holdingOf, lastSeen, type Holding,
} from './job-holders.js';

export interface ImportRequest {
  column?: string | undefined;
  delimiter?: string | undefined;
  encoding?: string | undefined;
  unit?: string | undefined;
  reason?: string | undefined;
  /** The column giving each row's own reason (see ImportOptions `reasonColumn`). @default none, or a recognised export's */
  reasonColumn?: string | undefined;
  /** Whether the first record is a header (ImportOptions `header`). @default detected */
  header?: boolean | undefined;
  /** Only rows whose column holds one of the values: `<column>=<value>[,<value>]` (ImportOptions `where`). */
  where?: string | undefined;
  /** Every row, even those a recognised export marks as not opted out (ImportOptions `allRows`). @default false */
  allRows?: boolean | undefined;
  /** `csv`, `json`, `ndjson` or `zip` (ImportOptions `format`). @default detected */
  format?: string | undefined;
  /** The member of a ZIP archive to read (ImportOptions `member`). */
  member?: string | undefined;
  /** The label kept as the entries' source. @default `upload` or the URL */
  source?: string | undefined;
  /** Write without waiting for a confirmation (scripts, syncs). @default false */
  yes?: boolean | undefined;
}

/** A job as the API shows it: its record's state and counts, and live progress while it runs. */
export interface ImportJobView {
  id: string;
  state: JobState;
  scope: string;
  reason: string;
  source: string;
  origin: JobOrigin | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** After analysis: what a confirmation must name (`unique`). */
  counts: ImportCounts;
  /**
   * Valid rows per reason, as the import report's `reasons`: each row's own (a reason column),
   * else the job's reason; they add up to `counts.valid`.
   */
  reasons: Partial<Record<SuppressionReason, number>>;
  progress: { phase: string; bytes: number; totalBytes: number | null; rows: number } | null;
  /**
   * Why the job failed; before that, a broken record that ended the reading (with its `line`):
   * the counts cover the rows before it, which a confirmation writes before the job fails.
   */
  error: JobError | null;
  /**
   * On a ledger several servers share, for a job not ended: the server that holds it (the id
   * of its folder), when that server was last seen, and whether it is taken as lost (not seen
   * within `lostAfterMs`). Null on the embedded store and for ended jobs.
   */
  holder: Holding | null;
}

export interface ImportJobsOptions {
  /** Parsing threads per import. @default 1 (the other core answers checks) */
  threads?: number | undefined;
  /**
   * One pool that every import parses in, instead of a worker pool per import (`threads` is
   * then unused); the caller owns it and destroys it after the server closes.
   * @default a worker pool per import
   */
  pool?: ChunkPool | undefined;
  /** The largest upload accepted, in bytes. @default 8 GiB */
  maxUploadBytes?: number | undefined;
  /**
   * How long, in ms from its creation, a job may wait for its confirmation: after that it
   * becomes `expired` and its upload is deleted. A job still analysing expires as its analysis ends.
   * @default 24 h
   */
  pendingTtlMs?: number | undefined;
  /**
   * The most bytes of files kept for unfinished jobs (uploads and fetched lists), uploads still
   * arriving included: an upload that would pass it is refused (`OPTOUT_ERR_PENDING_QUOTA`)
   * before it is stored.
   * @default 10 GiB
   */
  maxPendingBytes?: number | undefined;
  /**
   * On a ledger several servers share: how long, in ms, a confirmation sent to a server that does
   * not hold the job's upload waits for the one that does to take it, before answering that it
   * has not yet. @default 5000
   */
  relayWaitMs?: number | undefined;
  /**
   * On a ledger several servers share: how long, in ms, the server holding a job (its upload,
   * its spool) may go unseen before another server ends the job (`failed`, or `expired` when it
   * waited for a confirmation) for an operator to roll back or import again. Servers look for such
   * jobs every tenth of it (at least every `heartbeatMs`). @default 10 minutes
   */
  lostAfterMs?: number | undefined;
  /**
   * On a ledger several servers share: how often, in ms, this server writes its liveness record
   * and looks for jobs of servers not seen within `lostAfterMs`. @default 5000
   */
  heartbeatMs?: number | undefined;
  /** Hears what the server does to jobs on its own (a lost server's job ended, one of its own found ended). @default stderr */
  onNotice?: ((message: string) => void) | undefined;
}

export type NormalizedImportJobsOptions = Readonly<Required<Omit<ImportJobsOptions, 'pool' | 'onNotice'>> & {
  pool: ChunkPool | undefined; onNotice: (message: string) => void;
}>;

const DEFAULT_MAX_UPLOAD = 8 * 1024 ** 3;
const DEFAULT_PENDING_TTL = 24 * 3_600_000;
const DEFAULT_MAX_PENDING = 10 * 1024 ** 3;
const DEFAULT_RELAY_WAIT = 5000;
/** setTimeout's longest delay; a later deadline is reached in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** States a job's run has no way out of: what is left of it is cleaning up. */
const ENDED: ReadonlySet<JobState> = new Set(['completed', 'failed']);

/** Checks every option of {@link ImportJobs} and fills in the defaults. */
export function normalizeImportJobsOptions(o: ImportJobsOptions = {}): NormalizedImportJobsOptions {
  return {
    threads: o.threads === undefined ? 1 : positiveInteger('threads', o.threads),
    pool: normalizePool(o.pool),
    maxUploadBytes: o.maxUploadBytes === undefined ? DEFAULT_MAX_UPLOAD : positiveInteger('maxUploadBytes', o.maxUploadBytes),
    pendingTtlMs: o.pendingTtlMs === undefined ? DEFAULT_PENDING_TTL : positiveInteger('pendingTtlMs', o.pendingTtlMs),
    maxPendingBytes: o.maxPendingBytes === undefined ? DEFAULT_MAX_PENDING : positiveInteger('maxPendingBytes', o.maxPendingBytes),
    relayWaitMs: o.relayWaitMs === undefined ? DEFAULT_RELAY_WAIT : positiveInteger('relayWaitMs', o.relayWaitMs),
    lostAfterMs: o.lostAfterMs === undefined ? DEFAULT_LOST_AFTER_MS : positiveInteger('lostAfterMs', o.lostAfterMs),
    heartbeatMs: o.heartbeatMs === undefined ? DEFAULT_HEARTBEAT_MS : positiveInteger('heartbeatMs', o.heartbeatMs),
    onNotice: o.onNotice ?? ((m) => void process.stderr.write(`${m}\n`)),
  };
}

interface Waiting {
  unique: number;
  resolve: (count: number) => void;
  reject: (err: unknown) => void;
  /** When the job expires (epoch ms), once its waiting state is stored. */
  expiresAt?: number;
}

interface Running {
  abort: AbortController;
  progress: ImportJobView['progress'];
  /**
   * Set while the job waits. Whoever takes it (a confirmation, the expiry) decides the job's
   * fate: it is taken synchronously, so the other finds nothing to act on.
   */
  confirm?: Waiting;
  done: Promise<void>;
}

/**
 * Counts bytes through a stream and stops it past a limit. An empty upload fails here, before
 * a job exists: there is nothing to analyse, and a job that could only fail would hide that.
 */
async function* limited(body: AsyncIterable<Buffer>, max: number, counted: (bytes: number) => void): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > max) throw new OptoutError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', `The upload is larger than ${max} bytes`);
    counted(n);
    yield chunk;
  }
  if (n === 0) throw new OptoutError('OPTOUT_ERR_SOURCE', 'The upload is empty: send the CSV as the body');
}

/** A job that waits for a confirmation (or will, once analysed), rather than one told to write. */
function waitsForConfirmation(job: JobRecord): boolean {
  return job.confirmed !== 'yes' && (job.state === 'analyzing' || job.state === 'awaiting_confirmation');
}

export class ImportJobs {
  readonly #store: Ledger;
  readonly #dir: string;
  readonly #threads: number;
  readonly #pool: ChunkPool | undefined;
  readonly #maxUpload: number;
  readonly #ttl: number;
  readonly #quota: UploadQuota;
  readonly #relayWait: number;
  readonly #running = new Map<string, Running>();
  /** Names of the uploads this instance is receiving, which the cleanup at start must spare. */
  readonly #arriving = new Set<string>();
  /**
   * Until `resumeAll` has listed the jobs and spools, no job is reserved: the list holds only
   * earlier ones. It runs beside the first requests, and a job of this process's own would
   * otherwise run twice, or, with its file not moved in yet, be failed as having lost it.
   */
  #listing: Promise<void> = Promise.resolve();
  readonly #fetching = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  #closed = false;
  /** Fires at the earliest expiry of a waiting job; none while no job waits. */
  #expiryTimer: NodeJS.Timeout | undefined;
  /** On a shared ledger, while a job waits here: looks for confirmations other servers received. */
  #relayTimer: NodeJS.Timeout | undefined;
  /** On a shared ledger: this server's id as the holder of the jobs it starts (job-holders.ts). */
  readonly #holder: string | undefined;
  readonly #lostAfter: number;
  readonly #notice: (message: string) => void;
  #heartbeat: NodeJS.Timeout | undefined;
  /** The first liveness record: a job records this server as its holder only once it is written. */
  #firstBeat: Promise<void> = Promise.resolve();
  #beating: Promise<void> | undefined;
  /** How often, and next when, the heartbeat looks for jobs of lost servers: a tenth of the bound. */
  readonly #sweepEvery: number;
  #nextSweep = 0;
  /** Each server's liveness record as this process last read it, and since when (performance.now()). */
  readonly #records = new Map<string, { at: number | undefined; since: number }>();
  /** Jobs of this server found ended by another, told once each. */
  readonly #leftEnded = new Set<string>();

  constructor(store: Ledger, options: ImportJobsOptions = {}) {
    const o = normalizeImportJobsOptions(options);
    this.#store = store;
    this.#dir = join(store.workDir, 'uploads');
    this.#threads = o.threads;
    this.#pool = o.pool;
    this.#maxUpload = o.maxUploadBytes;
    this.#ttl = o.pendingTtlMs;
    this.#quota = new UploadQuota(o.maxPendingBytes);
    this.#relayWait = o.relayWaitMs;
    this.#lostAfter = o.lostAfterMs;
    this.#sweepEvery = Math.max(o.heartbeatMs, Math.floor(o.lostAfterMs / 10));
    this.#notice = o.onNotice;
    mkdirSync(this.#dir, { recursive: true });
    if (!store.supports.exclusive) {
      this.#holder = holderIdOf(store.workDir);
      const startedAt = new Date().toISOString();
      this.#firstBeat = beat(store, this.#holder, startedAt);
      this.#firstBeat.catch((err: unknown) => this.#notice(`cannot write this server's liveness record: ${(err as Error).message}`));
      this.#heartbeat = setInterval(() => {
        this.#beating ??= this.#tick(startedAt).finally(() => {
          this.#beating = undefined;
        });
      }, o.heartbeatMs);
      this.#heartbeat.unref();
    }
    // Files of jobs a previous process left count from the start, before they are taken up.
    for (const name of readdirSync(this.#dir)) {
      const id = /^(\d+)\.csv$/.exec(name)?.[1];
      if (id !== undefined) this.#quota.set(id, statSync(join(this.#dir, name)).size);
    }
  }

  /** Bytes of the files kept for unfinished jobs, and of uploads arriving. */
  get pendingBytes(): number {
    return this.#quota.used;
  }

  /** Where uploads and fetched files are kept until their job ends. */
  get uploadDir(): string {
    return this.#dir;
  }

  uploadPath(id: string): string {
    return join(this.#dir, `${id}.csv`);
  }

  rejectsPath(id: string): string {
    return join(this.#dir, `${id}.rejects.csv`);
  }

  /** Takes up the jobs a previous process left unfinished. */
  async resumeAll(): Promise<string[]> {
    let listed = (): void => undefined;
    this.#listing = new Promise<void>((resolve) => {
      listed = resolve;
    });
    let names: string[];
    let jobs: JobRecord[];
    try {
      await removeOrphanSpools(this.#store);
      // Listed before the jobs: a job's file appears only once its record exists, so every file
      // listed here has a job in the list below.
      names = await readdir(this.#dir);
      jobs = await this.#store.listImports();
    } finally {
      listed();
    }
    const live = new Set(jobs.filter((j) => UNENDED.has(j.state)).map((j) => j.id));
    for (const name of names) {
      if (this.#arriving.has(name)) continue;
      const id = /^(\d+)\.csv$/.exec(name)?.[1];
      // Uploads and fetches cut off before their job existed belong to no job; the file of a
      // job that has ended (a crash before its removal) is of no use to anyone.
      if (id !== undefined && !live.has(id)) {
        const ended = jobs.find((j) => j.id === id);
        if (ended !== undefined && endedWithoutHolder(ended)) this.#leaveEnded(ended);
        await this.#removeUpload(id);
      }
      else if (name.startsWith('incoming-') || name.startsWith('optout-sync-')) await rm(join(this.#dir, name), { force: true });
    }
    const resumed: string[] = [];
    for (const job of jobs) {
      if (this.#running.has(job.id) || job.origin?.via === 'cli' || job.origin === undefined || !UNENDED.has(job.state)) continue;
      // Analysing it again would only lead to its expiry.
      if (waitsForConfirmation(job) && Date.parse(job.createdAt) + this.#ttl <= Date.now()) {
        await this.#expireRecord(job.id);
        continue;
      }
      if (!existsSync(this.uploadPath(job.id))) {
        // On a shared ledger, the upload is on the machine of the server that received it: that
        // server runs the job, and takes it up again when it restarts.
        if (!this.#store.supports.exclusive) continue;
        await this.#fail(job.id, new OptoutError('OPTOUT_ERR_SOURCE', 'The uploaded file of this job is gone'));
        this.#quota.release(job.id);
        continue;
      }
      if (job.state === 'awaiting_confirmation') await this.#setState(job.id, 'analyzing');
      this.#launch(job.id, this.#requestOf(job), job.origin, job.confirmed === 'yes' || job.state === 'importing' || job.state === 'interrupted');
      resumed.push(job.id);
    }
    return resumed;
  }

  /**
   * Stores an uploaded body, then reserves the job and starts it. Validates the options first,
   * so that a bad request leaves no job and reads no body. `length`, when the client declared
   * it, lets an upload that cannot fit the pending quota be refused before its first byte;
   * otherwise it is refused once its count crosses the quota, and its partial file removed.
   */
  async createFromUpload(body: AsyncIterable<Buffer> | Readable, request: ImportRequest, origin: JobOrigin, length?: number): Promise<ImportJobView> {
    this.#assertOpen();
    this.#options(request);
    const name = `incoming-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const tmp = join(this.#dir, name);
    this.#quota.grow(tmp, length ?? 0);
    this.#arriving.add(name);
    try {
      await writeFileStream(tmp, {}, (out) => pipeline(limited(body as AsyncIterable<Buffer>, this.#maxUpload, (n) => this.#quota.grow(tmp, n)), out));
      return await this.createFromFile(tmp, request, origin);
    } finally {
      // Counted under its job's id from now on.
      this.#quota.release(tmp);
      this.#arriving.delete(name);
    }
  }

  /** Starts a job on a file, which it takes over (moves under the store, deletes when done). */
  async createFromFile(path: string, request: ImportRequest, origin: JobOrigin): Promise<ImportJobView> {
    this.#assertOpen();
    let job: JobRecord;
    try {
      job = await this.#reserve(request, origin);
      await this.#takeFile(job.id, path);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    this.#launch(job.id, request, origin, request.yes === true);
    return this.#view(job, this.#seenNow());
  }

  /** Moves a job's file under the store, where it counts against the pending quota until the job ends. */
  async #takeFile(id: string, path: string): Promise<void> {
    await rename(path, this.uploadPath(id));
    this.#quota.set(id, (await stat(this.uploadPath(id))).size);
  }

  /** Deletes the file a job read; it no longer counts against the pending quota. */
  async #removeUpload(id: string): Promise<void> {
    await rm(this.uploadPath(id), { force: true });
    this.#quota.release(id);
  }

  /**
   * Starts a job whose file is fetched from a URL: the job exists at once (its state says
   * what happens), the fetch runs behind it, and a failed fetch fails the job.
   */
  async createFromUrl(url: string, request: ImportRequest, origin: JobOrigin, fetchOptions: Omit<FetchSourceOptions, 'dir'>): Promise<ImportJobView> {
    this.#assertOpen();
    const checked = validateSyncUrl(url, fetchOptions);
    const label = request.source ?? redactUrl(checked);
    const withUrl: JobOrigin = { ...origin, url: redactUrl(checked) };
    const job = await this.#reserve({ ...request, source: label }, withUrl);
    const fetching = (async () => {
      try {
        const r = await fetchSource(checked, { ...fetchOptions, dir: this.#dir, signal: this.#closing.signal });
        if (r.status !== 'fetched') throw new OptoutError('OPTOUT_ERR_FETCH', 'The server answered 304 to a request that was not conditional');
        await this.#takeFile(job.id, r.path);
        this.#launch(job.id, { ...request, source: label }, withUrl, request.yes === true);
      } catch (err) {
        // Stopped by a shutdown: the job fails rather than wait for a file that will not come.
        await this.#fail(job.id, (err as OptoutError).code === 'OPTOUT_ERR_ABORTED'
          ? new OptoutError('OPTOUT_ERR_ABORTED', 'The server stopped while fetching the file') : err);
      }
    })();
    this.#fetching.add(fetching);
    void fetching.finally(() => this.#fetching.delete(fetching));
    return this.#view(job, this.#seenNow());
  }

  /** The job's view once it has ended (completed, failed, or stopped by `close`). */
  async wait(id: string): Promise<ImportJobView | undefined> {
    await Promise.allSettled([...this.#fetching]);
    await this.#running.get(id)?.done;
    return this.get(id);
  }

  async #reserve(request: ImportRequest, origin: JobOrigin): Promise<JobRecord> {
    const options = this.#options(request);
    // Recorded as this server's only once its liveness record exists; a failed first write is
    // retried by the heartbeat, and meanwhile the job's age stands in for it (job-holders.ts).
    await this.#firstBeat.catch(() => undefined);
    await this.#listing;
    const now = new Date().toISOString();
    return this.#store.createJob({
      kind: 'import', origin, ...(this.#holder === undefined ? {} : { holder: this.#holder }), state: request.yes ? 'importing' : 'analyzing', scope: options.scope, reason: options.reason,
      source: request.source ?? origin.url ?? 'upload',
      fingerprint: {
        path: null, size: null, mtimeMs: null, column: options.column ?? null, delimiter: options.delimiter ?? null,
        encoding: options.encoding, rejects: null,
        // Kept so that a job taken up after a restart reads its file the same way.
        ...definedOf({ header: request.header, where: request.where, allRows: request.allRows, reasonColumn: request.reasonColumn, format: request.format, member: request.member }),
      },
      confirmed: request.yes ? 'yes' : 'count', confirmedCount: null,
      createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
      checkpoint: { phase: 'spool', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 0, lengths: [] }, bucket: 0 },
      error: null,
    });
  }

  async get(id: string): Promise<ImportJobView | undefined> {
    const job = /^\d{1,12}$/.test(id) ? await this.#store.getJob(id) : undefined;
    if (job?.kind !== 'import') return undefined;
    const shown = await this.#letGo(job);
    return this.#view(shown, await this.#seen([shown]));
  }

  async list(): Promise<ImportJobView[]> {
    const jobs = await Promise.all((await this.#store.listImports()).map((j) => this.#letGo(j)));
    const seen = await this.#seen(jobs);
    return jobs.map((j) => this.#view(j, seen));
  }

  /**
   * Ends a job whose server an operator knows is gone (`optout jobs abandon`), without waiting
   * for `lostAfterMs`: refused, unless `force`, while its server was seen within it. A job this
   * server runs is not lost, and is never abandoned here.
   */
  async abandon(id: string, actor: string, force: boolean): Promise<ImportJobView> {
    this.#assertOpen();
    if (this.#running.has(id)) {
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} runs on this server, which is not lost: wait for it to end (or expire), then roll it back if need be`);
    }
    return this.#view(await abandonJob(this.#store, id, { actor, force, lostAfterMs: this.#lostAfter }), new Map());
  }

  /** When the holders of `jobs` were last seen, read only when one of them has not ended. */
  async #seen(jobs: readonly JobRecord[]): Promise<ReadonlyMap<string, number>> {
    return this.#holder !== undefined && jobs.some((j) => j.holder !== undefined && UNENDED.has(j.state)) ? lastSeen(this.#store) : new Map();
  }

  #seenNow(): ReadonlyMap<string, number> {
    return this.#holder === undefined ? new Map() : new Map([[this.#holder, Date.now()]]);
  }

  /**
   * One heartbeat: this server's liveness record; its own running jobs that were ended elsewhere
   * (while it was not seen, or by an operator); now and then, the jobs of servers not seen within
   * the bound, ended here unless another server gets there first (the ledger lets one move each).
   */
  async #tick(startedAt: string): Promise<void> {
    const self = this.#holder as string;
    try {
      await beat(this.#store, self, startedAt);
      for (const id of [...this.#running.keys()]) {
        const job = await this.#store.getJob(id);
        if (job?.kind === 'import' && endedWithoutHolder(job)) this.#leaveEnded(job);
      }
      // Every job is read to find the lost ones: often enough for the bound, not every heartbeat.
      if (Date.now() < this.#nextSweep) return;
      this.#nextSweep = Date.now() + this.#sweepEvery;
      const seen = await lastSeen(this.#store);
      const unchanged = this.#watchRecords(seen);
      const lost = (id: string): boolean => unchanged(id) > this.#lostAfter;
      /** Servers that still hold a job that has not ended. */
      const holders = new Set<string>();
      for (const job of await this.#store.listImports()) {
        if (job.holder === undefined || job.holder === self) continue;
        const holding = holdingOf(job, seen, this.#lostAfter);
        if (holding === undefined) continue;
        if (!holding.lost || !lost(job.holder) || this.#closed) {
          holders.add(job.holder);
          continue;
        }
        const ended = await endWithoutHolder(this.#store, job, { actor: `server:${self}`, holding, lostAfterMs: this.#lostAfter, forced: false });
        if (ended !== undefined) this.#notice(`import job ${job.id} (${job.state}) is now ${ended.state}: ${ended.error?.message ?? ''}`);
        // Moved elsewhere meanwhile: looked at again in the next sweep.
        else holders.add(job.holder);
      }
      // The liveness records of servers gone for good, once no job waits on them: a server that
      // comes back writes its record again, and a watcher whose record of it vanished watches it
      // for a whole bound anew (#watchRecords) before it could take it as lost.
      for (const [id, at] of seen) {
        if (id === self || holders.has(id) || this.#closed || Date.now() - at <= this.#lostAfter || !lost(id)) continue;
        await this.#store.deleteRecord('server', id, undefined);
        this.#records.delete(id);
      }
    } catch (err) {
      if (!this.#closed) this.#notice(`heartbeat of this server (folder id ${self}): ${(err as Error).message}; tried again in the next one`);
    }
  }

  /**
   * How long, on this process's own clock, each server's liveness record has stayed as it is now.
   * A server is taken as lost only when its record also looks old by the wall clock: a server
   * whose clock runs ahead of the others', or behind, never makes a live one look lost, and one
   * just started waits the whole bound before it ends anything.
   */
  #watchRecords(seen: ReadonlyMap<string, number>): (id: string) => number {
    const now = performance.now();
    for (const [id, at] of seen) {
      if (this.#records.get(id)?.at !== at) this.#records.set(id, { at, since: now });
    }
    // A record deleted (a server pruned as gone) starts its watch anew if it is ever asked about.
    for (const [id, record] of this.#records) {
      if (record.at !== undefined && !seen.has(id)) this.#records.delete(id);
    }
    return (id) => {
      let record = this.#records.get(id);
      // A holder that never wrote its record: watched from now.
      if (record === undefined) this.#records.set(id, (record = { at: undefined, since: now }));
      return now - record.since;
    };
  }

  /**
   * A job of this server that was ended elsewhere (another server found this one lost, or an
   * operator abandoned it): stopped here if it runs, its files deleted, its record left as it is
   * (the ledger refuses anything this server would still write for it).
   */
  #leaveEnded(job: JobRecord): void {
    if (this.#leftEnded.has(job.id)) return;
    this.#leftEnded.add(job.id);
    this.#notice(`import job ${job.id}: ended elsewhere (${job.state}) without this server, which holds it; stopped here, its upload ` +
      `deleted and the job left as it is: ${job.error?.message ?? ''}`);
    const entry = this.#running.get(job.id);
    if (entry === undefined) return;
    delete entry.confirm;
    this.#armExpiry();
    entry.abort.abort();
    void entry.done.then(async () => {
      await this.#removeUpload(job.id);
      await rm(this.rejectsPath(job.id), { force: true });
    });
  }

  /**
   * A job's record says it ended a moment before this process has let go of it (its upload
   * deleted, its pending bytes released): a job is shown ended only after that, so that a
   * client that sees the end can act on it at once (roll it back, upload the next list).
   */
  async #letGo(job: JobRecord): Promise<JobRecord> {
    const running = this.#running.get(job.id);
    if (running !== undefined && ENDED.has(job.state)) await running.done;
    return job;
  }

  /** Confirms a job waiting with the count it must name; a wrong count leaves it waiting. */
  async confirm(id: string, count: unknown): Promise<ImportJobView> {
    const job = await this.get(id);
    if (job === undefined) throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${id}`);
    const entry = this.#running.get(id);
    const waiting = entry?.confirm;
    if (job.state === 'awaiting_confirmation' && entry === undefined && !this.#store.supports.exclusive) return this.#confirmElsewhere(job, count);
    if (job.state !== 'awaiting_confirmation' || entry === undefined || waiting === undefined) {
      // Still shown waiting while its expiry is being stored: it is not waiting any more.
      const state = job.state === 'awaiting_confirmation' ? 'no longer awaiting confirmation' : `${job.state}, not awaiting_confirmation`;
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} is ${state}`);
    }
    assertConfirmedCount(count, waiting.unique);
    delete entry.confirm;
    // Moved here rather than by the pipeline once it resumes, so that the answer (and any read
    // after it) shows the state the confirmation led to.
    try {
      await this.#setState(id, 'importing');
    } catch (err) {
      entry.confirm = waiting;
      this.#armExpiry();
      throw err;
    }
    waiting.resolve(count);
    return (await this.get(id)) as ImportJobView;
  }

  /**
   * Confirms a job that waits on another server sharing the ledger (the one that received its
   * upload, where the file is): the count is checked against the stored analysis, then left in
   * the ledger for that server, which takes it within a poll. Answers the job once it has moved.
   */
  async #confirmElsewhere(job: ImportJobView, count: unknown): Promise<ImportJobView> {
    assertConfirmedCount(count, job.counts.unique);
    await this.#store.putRecord('confirmation', job.id, { count, at: new Date().toISOString() }, undefined);
    const deadline = Date.now() + this.#relayWait;
    for (;;) {
      const now = await this.get(job.id);
      if (now !== undefined && now.state !== 'awaiting_confirmation') return now;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, RELAY_POLL_MS));
    }
    throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${job.id} waits on the server that received its upload, which has not taken the ` +
      `confirmation within ${this.#relayWait / 1000} s: it stays in the database, and that server takes it when it can (GET /v1/imports/${job.id} shows when)`);
  }

  /** Takes, for the jobs that wait here, the confirmations other servers left in the ledger. */
  #armRelay(): void {
    if (this.#store.supports.exclusive || this.#relayTimer !== undefined || this.#closed) return;
    this.#relayTimer = setTimeout(() => {
      this.#relayTimer = undefined;
      void this.#takeRelayed().finally(() => {
        if ([...this.#running.values()].some((r) => r.confirm !== undefined)) this.#armRelay();
      });
    }, RELAY_POLL_MS);
    this.#relayTimer.unref();
  }

  async #takeRelayed(): Promise<void> {
    for (const [id, entry] of this.#running) {
      if (entry.confirm === undefined) continue;
      try {
        const relayed = await this.#store.getRecord<{ count: number }>('confirmation', id);
        if (relayed === undefined) continue;
        await this.#store.deleteRecord('confirmation', id, undefined);
        // Checked again here, against the analysis this server holds.
        await this.confirm(id, relayed.count);
      } catch {
        // A count that no longer matches, a job that expired meanwhile, a ledger that failed:
        // the job keeps its state, and whoever asked sees it stay waiting.
      }
    }
  }

  /**
   * Whether a job is being run by this process (a rollback must wait for it). A job whose record
   * already shows it ended has only its upload left to delete: that is waited for, so that a
   * client that saw the job end can roll it back at once.
   */
  async isRunning(id: string): Promise<boolean> {
    const running = this.#running.get(id);
    if (running === undefined) return false;
    const job = await this.#store.getJob(id);
    if (job?.kind !== 'import' || !ENDED.has(job.state)) return true;
    await running.done;
    return false;
  }

  /** Stops every running job at a safe point; each is taken up again by the next `resumeAll`. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    clearTimeout(this.#relayTimer);
    this.#relayTimer = undefined;
    this.#closing.abort();
    const running = [...this.#running.values()];
    for (const r of running) r.abort.abort();
    await Promise.allSettled([...running.map((r) => r.done), ...this.#fetching, this.#beating]);
  }

  /** Validates a request's options the way the import will, before anything is stored. */
  #options(request: ImportRequest): ReturnType<typeof normalizeImportOptions> {
    return normalizeImportOptions({
      source: { kind: 'file', path: this.#dir }, ...readingOptions(request),
      unit: request.unit, reason: request.reason, sourceLabel: request.source, confirm: { mode: 'yes' },
    });
  }

  #requestOf(job: JobRecord): ImportRequest {
    const f = job.fingerprint;
    return {
      column: f.column ?? undefined, delimiter: f.delimiter ?? undefined, encoding: f.encoding,
      header: f.header, where: f.where, allRows: f.allRows, reasonColumn: f.reasonColumn, format: f.format, member: f.member,
      unit: job.scope === '*' ? undefined : job.scope, reason: job.reason, source: job.source,
      yes: job.confirmed === 'yes',
    };
  }

  #launch(id: string, request: ImportRequest, origin: JobOrigin, confirmed: boolean): void {
    const abort = new AbortController();
    const entry: Running = { abort, progress: null, done: Promise.resolve() };
    this.#running.set(id, entry);
    const options: ImportOptions = {
      source: { kind: 'file', path: this.uploadPath(id) },
      store: this.#store,
      jobId: id,
      origin,
      ...readingOptions(request),
      unit: request.unit, reason: request.reason, sourceLabel: request.source,
      rejects: this.rejectsPath(id),
      threads: this.#threads,
      pool: this.#pool,
      // A batch of ~30k keys is ~90 ms of main-thread work: given back in slices of ~6 ms.
      yieldEvery: 2048,
      signal: abort.signal,
      confirm: confirmed ? { mode: 'yes' } : {
        mode: 'ask',
        ask: async (analysis: ImportReport) => {
          const count = await new Promise<number>((resolve, reject) => {
            const waiting: Waiting = { unique: analysis.unique, resolve, reject };
            entry.confirm = waiting;
            abort.signal.addEventListener('abort', () => reject(new OptoutError('OPTOUT_ERR_ABORTED', 'The server is closing')), { once: true });
            // The clock is armed once the job is stored as waiting: an expiry never precedes that.
            this.#setState(id, 'awaiting_confirmation', countsOf(analysis), analysis.error ?? undefined, reasonCodeCounts(analysis.reasons)).then((job) => {
              if (job === undefined) return;
              waiting.expiresAt = Date.parse(job.createdAt) + this.#ttl;
              this.#armExpiry();
              this.#armRelay();
            }).catch(reject);
          });
          delete entry.confirm;
          return count;
        },
      },
      onProgress: (p) => {
        entry.progress = { phase: p.phase, bytes: p.done, totalBytes: p.total, rows: p.rows };
      },
    };
    entry.done = (async () => {
      try {
        await runImport(options);
        await this.#removeUpload(id);
      } catch (err) {
        if ((err as OptoutError).code !== 'OPTOUT_ERR_ABORTED') {
          const stored = await this.#store.getJob(id).catch(() => undefined);
          // Its writes refused: the job was ended elsewhere while this server was not seen.
          if (stored?.kind === 'import' && endedWithoutHolder(stored)) this.#leaveEnded(stored);
          // An expired job keeps its state: the table has no way from there to failed.
          else await this.#fail(id, err);
          await this.#removeUpload(id);
        }
      } finally {
        this.#running.delete(id);
      }
    })();
  }

  /** Sets the timer to the earliest expiry of a waiting job, or clears it when none waits. */
  #armExpiry(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    let next = Infinity;
    for (const r of this.#running.values()) next = Math.min(next, r.confirm?.expiresAt ?? Infinity);
    if (this.#closed || next === Infinity) return;
    this.#expiryTimer = setTimeout(() => void this.#expireDue(), Math.min(Math.max(0, next - Date.now()), MAX_TIMER_MS));
    // A deadline is no reason to keep a process alive that is otherwise done.
    this.#expiryTimer.unref();
  }

  async #expireDue(): Promise<void> {
    const now = Date.now();
    const due: Array<[string, Waiting]> = [];
    for (const [id, r] of this.#running) {
      if (r.confirm?.expiresAt !== undefined && r.confirm.expiresAt <= now) {
        due.push([id, r.confirm]);
        // Taken: a confirmation arriving from now on answers that the job no longer waits.
        delete r.confirm;
      }
    }
    this.#armExpiry();
    await Promise.all(due.map(async ([id, waiting]) => {
      try {
        await this.#expireRecord(id);
        waiting.reject(new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} was not confirmed within ${this.#ttl} ms of its creation: it expired`));
      } catch (err) {
        // The store failed: the job fails (if it can) rather than wait without a deadline.
        waiting.reject(err);
      }
    }));
  }

  /**
   * Deletes a job's files, then stores it as expired. In that order: a crash in between leaves
   * a job past its time that the next start expires, never an expired job with its list on disk.
   */
  async #expireRecord(id: string): Promise<void> {
    await this.#removeUpload(id);
    await rm(this.rejectsPath(id), { force: true });
    const job = await this.#store.getJob(id);
    if (job?.kind !== 'import' || !canMove(job.state, 'expired')) return;
    await this.#store.putJob(moveJob(job, 'expired', { finishedAt: new Date().toISOString() }));
  }

  /** Marks a job failed unless the pipeline already did (it records failures of its writing phase). */
  async #fail(id: string, err: unknown): Promise<void> {
    const job = await this.#store.getJob(id).catch(() => undefined);
    if (job?.kind !== 'import' || !canMove(job.state, 'failed')) return;
    const e = err as OptoutError;
    await this.#store.putJob(moveJob(job, 'failed', { error: { code: e.code ?? 'OPTOUT_ERR_INTERNAL', message: e.message } })).catch(() => undefined);
  }

  /** Moves a job to `state`; resolves the record stored, or undefined when the job could not move. */
  async #setState(id: string, state: JobState, counts?: ImportCounts, inputError?: JobError, reasons?: number[]): Promise<JobRecord | undefined> {
    const job = await this.#store.getJob(id);
    // A job that ended meanwhile (failed, stopped) keeps its state.
    if (job?.kind !== 'import' || !canMove(job.state, state)) return undefined;
    const moved = moveJob(job, state,
      counts ? { checkpoint: { ...job.checkpoint, counts, ...(inputError ? { inputError } : {}), ...(reasons ? { reasons } : {}) } } : {});
    await this.#store.putJob(moved);
    return moved;
  }

  #view(job: JobRecord, seen: ReadonlyMap<string, number>): ImportJobView {
    const running = this.#running.get(job.id);
    return {
      id: job.id, state: job.state, scope: job.scope, reason: job.reason, source: job.source, origin: job.origin ?? null,
      createdAt: job.createdAt, updatedAt: job.updatedAt, finishedAt: job.finishedAt,
      counts: job.checkpoint.counts,
      reasons: rowsPerReason(job.checkpoint.counts.valid, job.checkpoint.reasons, job.reason),
      progress: running?.progress ?? null,
      error: job.error ?? job.checkpoint.inputError ?? null,
      holder: this.#holder === undefined ? null : holdingOf(job, seen, this.#lostAfter) ?? null,
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', 'The server is closing');
  }
}

/** A job that ended because its holder was lost or abandoned (job-holders.ts). */
function endedWithoutHolder(job: JobRecord): boolean {
  return !UNENDED.has(job.state) && job.error?.code === 'OPTOUT_ERR_HOLDER_LOST';
}

/** How often a server looks for confirmations of its waiting jobs left by others. */
const RELAY_POLL_MS = 250;

/** @throws OptoutError OPTOUT_ERR_INVALID_OPTION for a count that is none, OPTOUT_ERR_NOT_CONFIRMED for another than `unique`. */
function assertConfirmedCount(count: unknown, unique: number): asserts count is number {
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`count\` to be an integer from 0 and up, got ${describeValue(count)}`);
  }
  if (count !== unique) {
    throw new OptoutError('OPTOUT_ERR_NOT_CONFIRMED', `The count ${count} does not match: the job would suppress ${unique} addresses. It keeps waiting.`);
  }
}

/** How a request's file is read, as {@link ImportOptions} takes it. */
function readingOptions(r: ImportRequest): Pick<ImportOptions, 'column' | 'delimiter' | 'encoding' | 'header' | 'where' | 'allRows' | 'reasonColumn' | 'format' | 'member'> {
  return {
    column: r.column, delimiter: r.delimiter, encoding: r.encoding, header: r.header, where: r.where, allRows: r.allRows,
    reasonColumn: r.reasonColumn, format: r.format, member: r.member,
  };
}

/** The fields of `o` that are set: a record keeps no `undefined`. */
function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function countsOf(r: ImportReport): ImportCounts {
  return {
    rows: r.rows, valid: r.valid, invalid: r.invalid, skipped: r.skipped, unique: r.unique, duplicates: r.duplicates,
    added: r.added, alreadySuppressed: r.alreadySuppressed,
  };
}
