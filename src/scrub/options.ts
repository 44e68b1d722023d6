import { resolve } from 'node:path';
import { normalizeCheckOptions, type CheckOptions } from '../check/checker.js';
import type { SendType } from '../check/rules.js';
import { OptoutError, describeValue } from '../errors.js';
import { DEFAULT_MAX_RECORD_BYTES, defaultDb, normalizePool, positiveInteger, type ImportOptions } from '../options.js';
import type { ChunkPool } from '../workers/pool.js';
import { normalizeEncoding, type InputEncoding } from '../source/decode.js';
import type { SourceSpec } from '../source/open-source.js';

/** Live progress of a scrub, for progress bars. */
export interface ScrubProgress {
  /** Source bytes read (compressed bytes for gzip), against `total`. */
  done: number;
  /** The source's size, when known (not for stdin). */
  total: number | null;
  /** Rows decided so far. */
  rows: number;
  elapsedMs: number;
}

/** The options that read the send list are the import's: the same sources, dialects and limits. */
export interface ScrubOptions extends Pick<ImportOptions,
  'source' | 'db' | 'column' | 'delimiter' | 'encoding' | 'maxRecordBytes' | 'threads' | 'pool' | 'chunkBytes' | 'signal'> {
  /**
   * Where the eligible rows go: the header and every row that may be sent, as written. The file
   * is written under a temporary name beside it and renamed only once the whole list is done.
   */
  out: string;
  /** Where the removed rows go, with two added columns `optout_reason` and `optout_detail`. @default none */
  removed?: string;
  /** Business unit the campaign is sent for. @default none: account-wide suppressions only */
  unit?: string;
  /** @default 'marketing' */
  type?: SendType;
  /** For a one-to-one send: why sending to suppressed addresses is lawful (recorded for each such row). @default none */
  legalBasis?: string;
  /** Who asked, for the legal-basis records. @default 'library' */
  caller?: string;
  onProgress?: (p: ScrubProgress) => void;
}

export interface NormalizedScrubOptions {
  source: SourceSpec;
  out: string;
  removed: string | undefined;
  db: string;
  column: string | undefined;
  delimiter: string | undefined;
  encoding: InputEncoding;
  check: CheckOptions;
  maxRecordBytes: number;
  threads: number | undefined;
  /** The caller's pool, left running; `undefined`: a worker pool made for the scrub. */
  pool: ChunkPool | undefined;
  chunkBytes: number;
  signal: AbortSignal | undefined;
  onProgress: (p: ScrubProgress) => void;
}

function outputPath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`${name}\` to be a file path, got ${describeValue(value)}`);
  }
  return resolve(value);
}

/** Validates every option once, at the boundary, and fills the defaults. */
export function normalizeScrubOptions(o: ScrubOptions): NormalizedScrubOptions {
  const out = outputPath('out', o.out);
  const removed = o.removed === undefined ? undefined : outputPath('removed', o.removed);
  if (removed === out) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`removed\` to be another file than \`out\`, got ${describeValue(o.removed)}`);
  }
  if (o.source.kind === 'file' && [out, removed].includes(resolve(o.source.path))) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`out\` and \`removed\` to be other files than the send list, got ${describeValue(o.source.path)}`);
  }
  if (o.column !== undefined && (typeof o.column !== 'string' || o.column.length === 0)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`column\` to be a header name or a 1-based index, got ${describeValue(o.column)}`);
  }
  return {
    source: o.source,
    out,
    removed,
    db: o.db ?? defaultDb(),
    column: o.column,
    delimiter: o.delimiter,
    encoding: normalizeEncoding(o.encoding ?? 'utf8'),
    // The same validation as a single check: a scrub decides each row as `optout check` would.
    check: normalizeCheckOptions({ unit: o.unit, type: o.type, legalBasis: o.legalBasis, caller: o.caller }),
    maxRecordBytes: o.maxRecordBytes === undefined ? DEFAULT_MAX_RECORD_BYTES : positiveInteger('maxRecordBytes', o.maxRecordBytes, 64),
    threads: o.threads === undefined ? undefined : positiveInteger('threads', o.threads),
    pool: normalizePool(o.pool),
    chunkBytes: o.chunkBytes === undefined ? 1024 * 1024 : positiveInteger('chunkBytes', o.chunkBytes, 1024),
    signal: o.signal,
    onProgress: o.onProgress ?? (() => undefined),
  };
}
