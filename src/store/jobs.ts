import { OptoutError } from '../errors.js';
import type { ImportCounts } from './counts.js';

/**
 * `analyzing`, `awaiting_confirmation` and `expired` (never confirmed, its upload deleted) are set
 * by imports run over HTTP, which exist as jobs before they are confirmed; `rolling_back` and
 * `rolled_back` by a rollback.
 */
export type JobState = 'analyzing' | 'awaiting_confirmation' | 'expired' | 'importing' | 'completed' | 'failed' | 'interrupted' |
  'rolling_back' | 'rolled_back';
export type SuppressionReason = 'unsubscribed' | 'bounced' | 'complaint' | 'manual';
export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ['unsubscribed', 'bounced', 'complaint', 'manual'];

/**
 * Where a running import stands. An import reads the source into the spool (phase `spool`),
 * then writes the spool's buckets to the store one atomic batch each (phase `merge`); each
 * bucket's batch carries this checkpoint, so a resumed import continues after the last one.
 */
export interface Checkpoint {
  phase: 'spool' | 'merge';
  /** Offset in the decoded (UTF-8) byte stream of the first record not yet spooled. */
  offset: number;
  /** Physical lines before `offset`, header included. */
  lines: number;
  /**
   * Set when the source is NDJSON read line by line in the workers: `offset` and `lines` count
   * its own bytes and lines. Absent for NDJSON read as CSV text (as every job before this field
   * was), whose offsets count the bytes of that text: such a job resumes reading it that way.
   */
  ndjsonLines?: true;
  counts: ImportCounts;
  /** Length of the rejects file covering every record before `offset`. */
  rejectsBytes: number;
  invalidUtf8: number;
  /** The spool folder, its bucket bits, and each bucket file's length at this checkpoint. */
  spool: { dir: string; bits: number; lengths: number[] };
  /** Buckets already written to the store. */
  bucket: number;
  /**
   * Valid rows read so far that gave their own reason, per reason code (csv/reasons.ts); absent
   * when none did (and in jobs recorded before rows had reasons).
   */
  reasons?: number[];
  /**
   * A broken record that ended the reading: the rows before it are written all the same, then
   * the job fails with this error. Kept here so that a resumed job still ends that way.
   */
  inputError?: JobError;
}

/** Why a job failed, or the broken record that stopped its reading: a stable code, and its line. */
export interface JobError {
  code: string;
  message: string;
  /** 1-based physical line where the broken record starts. */
  line?: number;
  /** 1-based data record. */
  row?: number;
}

/** Identifies "the same import" across a crash: same file, same content, same options. */
export interface JobFingerprint {
  path: string | null;
  size: number | null;
  mtimeMs: number | null;
  column: string | null;
  delimiter: string | null;
  encoding: string;
  rejects: string | null;
  /** `--header` / `--no-header`; absent when detected. */
  header?: boolean;
  /** `--where`, `--all-rows`; absent when not given. */
  where?: string;
  allRows?: boolean;
  /** `--reason-column`; absent when not given. */
  reasonColumn?: string;
  /** `--format`, `--member`; absent when not given. */
  format?: string;
  member?: string;
}

/** Where an import's data came from, when not from the command line. */
export interface JobOrigin {
  /** `cli`, `http` (an upload or a URL given to POST /v1/imports) or `sync`. */
  via: 'cli' | 'http' | 'sync';
  /** Who started it: `cli` or an API key id. */
  actor: string;
  url?: string;
  syncId?: string;
}

export interface JobRecord {
  id: string;
  kind: 'import';
  origin?: JobOrigin;
  /**
   * On a ledger several servers share: the id of the server folder that holds the job (its
   * upload and spool), whose liveness record says whether it is still there. Absent for
   * command-line imports, on the embedded store, and on jobs recorded before holders were.
   */
  holder?: string;
  state: JobState;
  /** Business unit id, or `*` for account-wide. */
  scope: string;
  reason: SuppressionReason;
  /** The label stored as the entries' source. */
  source: string;
  fingerprint: JobFingerprint;
  confirmed: 'yes' | 'count';
  /** The `unique` count the user confirmed, when confirmed by count. */
  confirmedCount: number | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  resumedCount: number;
  checkpoint: Checkpoint;
  error: JobError | null;
}

/** An error as a job record and a report keep it, with its place in the file when it has one. */
export function jobErrorOf(err: OptoutError): JobError {
  const at = err.location;
  return {
    code: err.code, message: err.message,
    ...(at?.line === undefined ? {} : { line: at.line }), ...(at?.row === undefined ? {} : { row: at.row }),
  };
}

/** The error a recorded broken record is thrown as, once the rows before it are written. */
export function errorOfJob(rec: JobError): OptoutError {
  const location = { ...(rec.line === undefined ? {} : { line: rec.line }), ...(rec.row === undefined ? {} : { row: rec.row }) };
  return new OptoutError(rec.code as OptoutError['code'], rec.message, { location });
}

/**
 * A single address added by hand (`optout add`, `PUT /v1/suppressions/{email}`). It is a job of
 * its own so that the entry's metadata, holds and rollback work as for imports.
 */
export interface AddRecord {
  id: string;
  kind: 'add';
  state: 'completed' | 'rolled_back';
  scope: string;
  reason: SuppressionReason;
  source: string;
  actor: string;
  key: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string;
}

export type AnyJob = JobRecord | AddRecord;

/** The record of a single add made now, under job id `id`. */
export function addRecordOf(id: string, s: Pick<AddRecord, 'scope' | 'reason' | 'source' | 'actor' | 'key'>): AddRecord {
  const now = new Date().toISOString();
  return {
    id, kind: 'add', state: 'completed', scope: s.scope, reason: s.reason, source: s.source, actor: s.actor, key: s.key,
    createdAt: now, updatedAt: now, finishedAt: now,
  };
}

/** What a job listing shows: the record without its checkpoint's internals. */
export function jobSummary(j: AnyJob): Record<string, unknown> {
  const common = { id: j.id, kind: j.kind, state: j.state, scope: j.scope, reason: j.reason, source: j.source, createdAt: j.createdAt, finishedAt: j.finishedAt };
  if (j.kind === 'add') return { ...common, actor: j.actor, key: j.key };
  return { ...common, origin: j.origin ?? { via: 'cli', actor: 'cli' }, ...j.checkpoint.counts, error: j.error };
}

/** What an entry inherits from the job that stored it. */
export interface JobMeta {
  reason: string;
  source: string;
  addedAt: string;
}

const UNKNOWN_JOB: JobMeta = Object.freeze({ reason: 'unknown', source: 'unknown', addedAt: '' });

/** What an entry inherits from the job that stored it; a placeholder for a job that is gone. */
export function jobMetaOf(job: AnyJob | undefined): JobMeta {
  return job === undefined ? UNKNOWN_JOB : { reason: job.reason, source: job.source, addedAt: job.createdAt };
}

/** What an entry shows: its job's metadata, with the entry's own reason when it has one. */
export function entryMetaOf(entry: { reason?: SuppressionReason | undefined }, meta: JobMeta): JobMeta {
  return entry.reason === undefined ? meta : { ...meta, reason: entry.reason };
}

/**
 * Job metadata by id, read from the ledger once per job: reason, source and date never change
 * after a job is created, and entries point to a few jobs each, so an export of millions of
 * entries reads each job once.
 */
export class JobMetas {
  readonly #ledger: { getJob(id: string): Promise<AnyJob | undefined> };
  readonly #byId = new Map<string, JobMeta>();

  constructor(ledger: { getJob(id: string): Promise<AnyJob | undefined> }) {
    this.#ledger = ledger;
  }

  /** How many jobs' metadata is kept. */
  get size(): number {
    return this.#byId.size;
  }

  /** The metadata already read, without I/O. */
  known(jobId: string): JobMeta | undefined {
    return this.#byId.get(jobId);
  }

  async get(jobId: string): Promise<JobMeta> {
    let meta = this.#byId.get(jobId);
    if (meta === undefined) {
      meta = jobMetaOf(await this.#ledger.getJob(jobId));
      this.#byId.set(jobId, meta);
    }
    return meta;
  }
}
