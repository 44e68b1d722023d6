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
 */
import { existsSync, mkdirSync } from 'node:fs';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OptoutError, describeValue } from '../errors.js';
import { writeFileStream } from '../files/file-stream.js';
import { normalizeImportOptions, normalizePool, type ImportOptions } from '../options.js';
import { removeOrphanSpools, runImport } from '../pipeline/run-import.js';
import { emptyCounts, type ImportCounts } from '../store/counts.js';
import type { ImportReport } from '../report/summary.js';
import { canMove, moveJob } from '../store/job-states.js';
import type { JobError, JobOrigin, JobRecord, JobState } from '../store/jobs.js';
import type { Ledger } from '../store/store.js';
import { fetchSource, type FetchSourceOptions } from '../fetch/fetch-source.js';
import type { ChunkPool } from '../workers/pool.js';
import { redactUrl, validateSyncUrl } from '../fetch/url-policy.js';

export interface ImportRequest {
  column?: string | undefined;
  delimiter?: string | undefined;
  encoding?: string | undefined;
  unit?: string | undefined;
  reason?: string | undefined;
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
  progress: { phase: string; bytes: number; totalBytes: number | null; rows: number } | null;
  /**
   * Why the job failed; before that, a broken record that ended the reading (with its `line`):
   * the counts cover the rows before it, which a confirmation writes before the job fails.
   */
  error: JobError | null;
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
}

const DEFAULT_MAX_UPLOAD = 8 * 1024 ** 3;
const RESUMABLE: ReadonlySet<JobState> = new Set(['analyzing', 'awaiting_confirmation', 'importing', 'interrupted']);

interface Running {
  abort: AbortController;
  progress: ImportJobView['progress'];
  /** Set while the job waits: resolves its confirmation. */
  confirm?: { unique: number; resolve: (count: number) => void };
  done: Promise<void>;
}

/**
 * Counts bytes through a stream and stops it past a limit. An empty upload fails here, before
 * a job exists: there is nothing to analyse, and a job that could only fail would hide that.
 */
async function* limited(body: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > max) throw new OptoutError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', `The upload is larger than ${max} bytes`);
    yield chunk;
  }
  if (n === 0) throw new OptoutError('OPTOUT_ERR_SOURCE', 'The upload is empty: send the CSV as the body');
}

export class ImportJobs {
  readonly #store: Ledger;
  readonly #dir: string;
  readonly #threads: number;
  readonly #pool: ChunkPool | undefined;
  readonly #maxUpload: number;
  readonly #running = new Map<string, Running>();
  readonly #fetching = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  #closed = false;

  constructor(store: Ledger, options: ImportJobsOptions = {}) {
    this.#store = store;
    this.#dir = join(store.workDir, 'uploads');
    this.#threads = options.threads ?? 1;
    this.#pool = normalizePool(options.pool);
    this.#maxUpload = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD;
    mkdirSync(this.#dir, { recursive: true });
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
    await removeOrphanSpools(this.#store);
    // Uploads and fetches cut off before their job existed belong to no job.
    for (const name of await readdir(this.#dir)) {
      if (name.startsWith('incoming-') || name.startsWith('optout-sync-')) await rm(join(this.#dir, name), { force: true });
    }
    const resumed: string[] = [];
    for (const job of await this.#store.listImports()) {
      if (job.origin?.via === 'cli' || job.origin === undefined || !RESUMABLE.has(job.state)) continue;
      if (!existsSync(this.uploadPath(job.id))) {
        await this.#fail(job.id, new OptoutError('OPTOUT_ERR_SOURCE', 'The uploaded file of this job is gone'));
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
   * so that a bad request leaves no job and reads no body.
   */
  async createFromUpload(body: AsyncIterable<Buffer> | Readable, request: ImportRequest, origin: JobOrigin): Promise<ImportJobView> {
    this.#assertOpen();
    this.#options(request);
    const tmp = join(this.#dir, `incoming-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    await writeFileStream(tmp, {}, (out) => pipeline(limited(body as AsyncIterable<Buffer>, this.#maxUpload), out));
    return this.createFromFile(tmp, request, origin);
  }

  /** Starts a job on a file, which it takes over (moves under the store, deletes when done). */
  async createFromFile(path: string, request: ImportRequest, origin: JobOrigin): Promise<ImportJobView> {
    this.#assertOpen();
    let job: JobRecord;
    try {
      job = await this.#reserve(request, origin);
      await rename(path, this.uploadPath(job.id));
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    this.#launch(job.id, request, origin, request.yes === true);
    return this.#view(job);
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
        await rename(r.path, this.uploadPath(job.id));
        this.#launch(job.id, { ...request, source: label }, withUrl, request.yes === true);
      } catch (err) {
        // Stopped by a shutdown: the job fails rather than wait for a file that will not come.
        await this.#fail(job.id, (err as OptoutError).code === 'OPTOUT_ERR_ABORTED'
          ? new OptoutError('OPTOUT_ERR_ABORTED', 'The server stopped while fetching the file') : err);
      }
    })();
    this.#fetching.add(fetching);
    void fetching.finally(() => this.#fetching.delete(fetching));
    return this.#view(job);
  }

  /** The job's view once it has ended (completed, failed, or stopped by `close`). */
  async wait(id: string): Promise<ImportJobView | undefined> {
    await Promise.allSettled([...this.#fetching]);
    await this.#running.get(id)?.done;
    return this.get(id);
  }

  async #reserve(request: ImportRequest, origin: JobOrigin): Promise<JobRecord> {
    const options = this.#options(request);
    const now = new Date().toISOString();
    return this.#store.createJob({
      kind: 'import', origin, state: request.yes ? 'importing' : 'analyzing', scope: options.scope, reason: options.reason,
      source: request.source ?? origin.url ?? 'upload',
      fingerprint: {
        path: null, size: null, mtimeMs: null, column: options.column ?? null, delimiter: options.delimiter ?? null,
        encoding: options.encoding, rejects: null,
      },
      confirmed: request.yes ? 'yes' : 'count', confirmedCount: null,
      createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
      checkpoint: { phase: 'spool', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 0, lengths: [] }, bucket: 0 },
      error: null,
    });
  }

  async get(id: string): Promise<ImportJobView | undefined> {
    const job = /^\d{1,12}$/.test(id) ? await this.#store.getJob(id) : undefined;
    return job?.kind === 'import' ? this.#view(job) : undefined;
  }

  async list(): Promise<ImportJobView[]> {
    return (await this.#store.listImports()).map((j) => this.#view(j));
  }

  /** Confirms a job waiting with the count it must name; a wrong count leaves it waiting. */
  async confirm(id: string, count: unknown): Promise<ImportJobView> {
    const job = await this.get(id);
    if (job === undefined) throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${id}`);
    const waiting = this.#running.get(id)?.confirm;
    if (job.state !== 'awaiting_confirmation' || waiting === undefined) {
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} is ${job.state}, not awaiting_confirmation`);
    }
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`count\` to be an integer from 0 and up, got ${describeValue(count)}`);
    }
    if (count !== waiting.unique) {
      throw new OptoutError('OPTOUT_ERR_NOT_CONFIRMED', `The count ${count} does not match: the job would suppress ${waiting.unique} addresses. It keeps waiting.`);
    }
    // Moved here rather than by the pipeline once it resumes, so that the answer (and any read
    // after it) shows the state the confirmation led to.
    await this.#setState(id, 'importing');
    waiting.resolve(count);
    return (await this.get(id)) as ImportJobView;
  }

  /** Whether a job is being run by this process (a rollback must wait for it). */
  isRunning(id: string): boolean {
    return this.#running.has(id);
  }

  /** Stops every running job at a safe point; each is taken up again by the next `resumeAll`. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    const running = [...this.#running.values()];
    for (const r of running) r.abort.abort();
    await Promise.allSettled([...running.map((r) => r.done), ...this.#fetching]);
  }

  /** Validates a request's options the way the import will, before anything is stored. */
  #options(request: ImportRequest): ReturnType<typeof normalizeImportOptions> {
    return normalizeImportOptions({
      source: { kind: 'file', path: this.#dir }, column: request.column, delimiter: request.delimiter, encoding: request.encoding,
      unit: request.unit, reason: request.reason, sourceLabel: request.source, confirm: { mode: 'yes' },
    });
  }

  #requestOf(job: JobRecord): ImportRequest {
    return {
      column: job.fingerprint.column ?? undefined, delimiter: job.fingerprint.delimiter ?? undefined, encoding: job.fingerprint.encoding,
      unit: job.scope === '*' ? undefined : job.scope, reason: job.reason, source: job.source, yes: job.confirmed === 'yes',
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
      column: request.column, delimiter: request.delimiter, encoding: request.encoding,
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
            entry.confirm = { unique: analysis.unique, resolve };
            abort.signal.addEventListener('abort', () => reject(new OptoutError('OPTOUT_ERR_ABORTED', 'The server is closing')), { once: true });
            void this.#setState(id, 'awaiting_confirmation', countsOf(analysis), analysis.error ?? undefined);
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
        await rm(this.uploadPath(id), { force: true });
      } catch (err) {
        if ((err as OptoutError).code !== 'OPTOUT_ERR_ABORTED') {
          await this.#fail(id, err);
          await rm(this.uploadPath(id), { force: true });
        }
      } finally {
        this.#running.delete(id);
      }
    })();
  }

  /** Marks a job failed unless the pipeline already did (it records failures of its writing phase). */
  async #fail(id: string, err: unknown): Promise<void> {
    const job = await this.#store.getJob(id).catch(() => undefined);
    if (job?.kind !== 'import' || !canMove(job.state, 'failed')) return;
    const e = err as OptoutError;
    await this.#store.putJob(moveJob(job, 'failed', { error: { code: e.code ?? 'OPTOUT_ERR_INTERNAL', message: e.message } })).catch(() => undefined);
  }

  async #setState(id: string, state: JobState, counts?: ImportCounts, inputError?: JobError): Promise<void> {
    const job = await this.#store.getJob(id);
    // A job that ended meanwhile (failed, stopped) keeps its state.
    if (job?.kind !== 'import' || !canMove(job.state, state)) return;
    await this.#store.putJob(moveJob(job, state,
      counts ? { checkpoint: { ...job.checkpoint, counts, ...(inputError ? { inputError } : {}) } } : {}));
  }

  #view(job: JobRecord): ImportJobView {
    const running = this.#running.get(job.id);
    return {
      id: job.id, state: job.state, scope: job.scope, reason: job.reason, source: job.source, origin: job.origin ?? null,
      createdAt: job.createdAt, updatedAt: job.updatedAt, finishedAt: job.finishedAt,
      counts: job.checkpoint.counts,
      progress: running?.progress ?? null,
      error: job.error ?? job.checkpoint.inputError ?? null,
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new OptoutError('OPTOUT_ERR_STORE_NOT_OPEN', 'The server is closing');
  }
}

function countsOf(r: ImportReport): ImportCounts {
  return {
    rows: r.rows, valid: r.valid, invalid: r.invalid, unique: r.unique, duplicates: r.duplicates,
    added: r.added, alreadySuppressed: r.alreadySuppressed,
  };
}
