import { OptoutError, describeValue } from './errors.js';
import { ACCOUNT_WIDE, UNIT_ID_PATTERN } from './store/store.js';
import { SUPPRESSION_REASONS, type JobOrigin, type SuppressionReason } from './store/jobs.js';
import type { Ledger } from './store/store.js';
import { normalizeEncoding, type InputEncoding } from './source/decode.js';
import type { SourceSpec } from './source/open-source.js';
import { normalizeFormat, type SourceFormat } from './source/records.js';
import type { ImportProgress } from './store/counts.js';
import type { ImportReport } from './report/summary.js';
import type { ChunkPool } from './workers/pool.js';

/** How an import is confirmed before anything is written. */
export type Confirmation =
  /** Write without asking (scripts). */
  | { mode: 'yes' }
  /** Analyse and report; write nothing. */
  | { mode: 'dry-run' }
  /** Write only when the number of distinct valid addresses equals `count`. */
  | { mode: 'count'; count: number }
  /** Analyse, then ask; the answer must equal the number of distinct valid addresses. `undefined` = no answer. */
  | { mode: 'ask'; ask: (analysis: ImportReport) => Promise<number | undefined> };

export type ImportEvent =
  | { type: 'resumed'; jobId: string; line: number; row: number }
  /** A new job for a file that a completed job imported, unchanged and with the same options. */
  | { type: 'repeated'; jobId: string; finishedAt: string | null }
  | { type: 'spooling' }
  /** Another process's import into the same database holds the import lease: this one waits for it. */
  | { type: 'waiting' }
  | { type: 'phase'; phase: 'analyzing' | 'importing' };

export interface ImportOptions {
  source: SourceSpec;
  /** Store folder, or a PostgreSQL URL. @default `$OPTOUT_DB` or `./optout-db` */
  db?: string;
  /**
   * An already open store (the server's): used instead of `db`, and left open. Import jobs on it
   * take turns under its import lease.
   */
  store?: Ledger | undefined;
  /** Who started the import and how; kept in the job record and the audit trail. @default the CLI */
  origin?: JobOrigin | undefined;
  /**
   * A job record reserved before the import started (an import over HTTP has an id from its
   * first request). The import writes its record there, and resumes it when it was cut off.
   * @default a new job
   */
  jobId?: string | undefined;
  /**
   * Gives the event loop back every this many keys of a batch being built, so that a process
   * answering requests during the import stays responsive. @default never (fastest)
   */
  yieldEvery?: number | undefined;
  /** Email column: a header name or a 1-based index. @default auto-detected from the header */
  column?: string;
  /**
   * Whether the first record is a header: `false` imports it as data. @default detected: a first
   * record whose cell in the email column is an address is data
   */
  header?: boolean | undefined;
  /**
   * `<column>=<value>[,<value>]`: only rows whose column holds one of the values (trimmed, case
   * ignored) are imported; the others are skipped. Replaces a recognised export's own flag.
   * @default every row, or the rows a recognised export marks as opted out
   */
  where?: string | undefined;
  /** Imports every row, also those a recognised export marks as still subscribed. @default false */
  allRows?: boolean | undefined;
  /**
   * The column giving each row's own reason (a header name or a 1-based index): `bounce`,
   * `complaint`, `unsubscribe`, `manual` and their usual spellings (see the README). An empty or
   * unknown value keeps the import's `reason`. @default none, or a recognised export's reason column
   */
  reasonColumn?: string | undefined;
  /** How the source is written: `csv`, `json` or `ndjson`. @default detected from the content */
  format?: string | undefined;
  /** The member of a ZIP archive to read (its path in the archive, or its file name). @default the one list member */
  member?: string | undefined;
  /** Field delimiter `,` `;` `|` or `tab`. @default detected from the header line */
  delimiter?: string;
  /** @default 'utf8' (a UTF-16 byte-order mark of either byte order is honoured) */
  encoding?: string;
  /** Business unit id; suppressions then apply in that unit only. @default account-wide */
  unit?: string;
  /** @default the reason of a recognised export whose rows all have one (mailchimp-cleaned: bounced), else 'unsubscribed' */
  reason?: string;
  /** Label stored with the entries. @default the file name, or `stdin` */
  sourceLabel?: string;
  /** Largest accepted CSV record in bytes. @default 1048576 */
  maxRecordBytes?: number;
  /** Path of a CSV file receiving every invalid row. @default none */
  rejects?: string;
  confirm: Confirmation;
  /** Parsing threads. @default os.availableParallelism() */
  threads?: number;
  /**
   * The pool that parses chunks and dedups spool buckets, instead of a worker pool made for the
   * import (`threads` is then unused). The caller owns it: the run leaves it running.
   * `createInlinePool()` runs the same tasks on the calling thread.
   * @default a worker pool of `threads` threads, destroyed when the import ends
   */
  pool?: ChunkPool | undefined;
  /** Bytes per parsing task. @default 1048576 */
  chunkBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: ImportProgress) => void;
  onEvent?: (e: ImportEvent) => void;
}

export interface NormalizedImportOptions {
  source: SourceSpec;
  db: string;
  store: Ledger | undefined;
  origin: JobOrigin;
  jobId: string | undefined;
  yieldEvery: number | undefined;
  column: string | undefined;
  header: boolean | undefined;
  where: string | undefined;
  allRows: boolean;
  reasonColumn: string | undefined;
  format: SourceFormat | undefined;
  member: string | undefined;
  delimiter: string | undefined;
  encoding: InputEncoding;
  scope: string;
  reason: SuppressionReason;
  /** `reason` was given; else a recognised export's own reason may replace the default. */
  reasonGiven: boolean;
  sourceLabel: string | undefined;
  maxRecordBytes: number;
  rejects: string | undefined;
  confirm: Confirmation;
  threads: number | undefined;
  pool: ChunkPool | undefined;
  chunkBytes: number;
  signal: AbortSignal | undefined;
  onProgress: (p: ImportProgress) => void;
  onEvent: (e: ImportEvent) => void;
}

export const DEFAULT_DB = './optout-db';
export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

export function defaultDb(): string {
  return process.env['OPTOUT_DB'] || DEFAULT_DB;
}

export function positiveInteger(name: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`${name}\` to be an integer from ${min} and up, got ${describeValue(value)}`);
  }
  return value;
}

const POOL_METHODS = ['run', 'dedupBucket', 'scrub', 'destroy'] as const;

/** A caller's {@link ChunkPool}: an object with a thread count and the pool's methods. */
export function normalizePool(value: unknown): ChunkPool | undefined {
  if (value === undefined) return undefined;
  const pool = value as Partial<Record<string, unknown>> | null;
  const usable = typeof pool === 'object' && pool !== null && POOL_METHODS.every((m) => typeof pool[m] === 'function') &&
    Number.isInteger(pool['threads']) && (pool['threads'] as number) >= 1;
  if (!usable) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`pool\` to be a chunk pool (threads from 1 and up; ${POOL_METHODS.join(', ')}), got ${describeValue(value)}`);
  }
  return value as ChunkPool;
}

export function normalizeUnit(unit: unknown): string {
  if (unit === undefined) return ACCOUNT_WIDE;
  if (typeof unit !== 'string' || !UNIT_ID_PATTERN.test(unit)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`unit\` to match [A-Za-z0-9_-]{1,64}, got ${describeValue(unit)}`);
  }
  return unit;
}

export function normalizeReason(reason: unknown): SuppressionReason {
  if (reason === undefined) return 'unsubscribed';
  if (typeof reason !== 'string' || !(SUPPRESSION_REASONS as readonly string[]).includes(reason)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`reason\` to be one of ${SUPPRESSION_REASONS.join(', ')}, got ${describeValue(reason)}`);
  }
  return reason as SuppressionReason;
}

/** Validates every option once, at the boundary, and fills the defaults. */
export function normalizeImportOptions(o: ImportOptions): NormalizedImportOptions {
  if (o.confirm.mode === 'count') positiveInteger('confirm', o.confirm.count, 0);
  if (o.sourceLabel !== undefined && (typeof o.sourceLabel !== 'string' || o.sourceLabel.length === 0 || o.sourceLabel.length > 200)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`source\` to be a label of 1 to 200 characters, got ${describeValue(o.sourceLabel)}`);
  }
  if (o.column !== undefined && (typeof o.column !== 'string' || o.column.length === 0)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`column\` to be a header name or a 1-based index, got ${describeValue(o.column)}`);
  }
  if (o.header !== undefined && typeof o.header !== 'boolean') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`header\` to be a boolean, got ${describeValue(o.header)}`);
  }
  if (o.where !== undefined && (typeof o.where !== 'string' || !/^[^=]+=/.test(o.where))) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`where\` to be <column>=<value>[,<value>], got ${describeValue(o.where)}`);
  }
  if (o.member !== undefined && (typeof o.member !== 'string' || o.member.length === 0)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`member\` to be a ZIP member's name, got ${describeValue(o.member)}`);
  }
  if (o.reasonColumn !== undefined && (typeof o.reasonColumn !== 'string' || o.reasonColumn.length === 0)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`reasonColumn\` to be a header name or a 1-based index, got ${describeValue(o.reasonColumn)}`);
  }
  if (o.allRows !== undefined && typeof o.allRows !== 'boolean') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`allRows\` to be a boolean, got ${describeValue(o.allRows)}`);
  }
  if (o.where !== undefined && o.allRows === true) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'Use only one of `where` and `allRows`');
  }
  return {
    source: o.source,
    db: o.db ?? defaultDb(),
    store: o.store,
    origin: o.origin ?? { via: 'cli', actor: 'cli' },
    jobId: o.jobId,
    yieldEvery: o.yieldEvery === undefined ? undefined : positiveInteger('yieldEvery', o.yieldEvery),
    column: o.column,
    header: o.header,
    where: o.where,
    allRows: o.allRows ?? false,
    reasonColumn: o.reasonColumn,
    format: normalizeFormat(o.format),
    member: o.member,
    delimiter: o.delimiter,
    encoding: normalizeEncoding(o.encoding ?? 'utf8'),
    scope: normalizeUnit(o.unit),
    reason: normalizeReason(o.reason),
    reasonGiven: o.reason !== undefined,
    sourceLabel: o.sourceLabel,
    maxRecordBytes: o.maxRecordBytes === undefined ? DEFAULT_MAX_RECORD_BYTES : positiveInteger('maxRecordBytes', o.maxRecordBytes, 64),
    rejects: o.rejects,
    confirm: o.confirm,
    threads: o.threads === undefined ? undefined : positiveInteger('threads', o.threads),
    pool: normalizePool(o.pool),
    chunkBytes: o.chunkBytes === undefined ? 1024 * 1024 : positiveInteger('chunkBytes', o.chunkBytes, 1024),
    signal: o.signal,
    onProgress: o.onProgress ?? (() => undefined),
    onEvent: o.onEvent ?? (() => undefined),
  };
}
