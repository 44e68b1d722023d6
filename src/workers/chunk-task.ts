import type { ExtractError } from '../csv/extract.js';
import type { ChunkKeyCodec } from '../store/store.js';

/** What every chunk task reports, whatever else it returns: how far it read, and what broke. */
export interface ChunkProgress {
  consumed: number;
  records: number;
  lines: number;
  error?: ExtractError;
}

/** What the main thread sends a worker: one record-aligned chunk of UTF-8 bytes. */
export interface ChunkTask {
  bytes: Uint8Array;
  delimiter: number;
  /** 0-based index of the email column. */
  column: number;
  maxRecordBytes: number;
  /** Keys are spread over 2^bucketBits spool buckets by hash. */
  bucketBits: number;
  /** The last chunk of the source: an unfinished record here is an error, not a carry-over. */
  final: boolean;
  /**
   * The bytes were transcoded to UTF-8 by a decoder that puts U+FFFD in place of input it cannot
   * decode (a UTF-16 source): a U+FFFD in them may stand for such input. False for UTF-8 read
   * as it is, whose bytes themselves tell a bad sequence from a U+FFFD written as one.
   */
  substitutes: boolean;
  /**
   * Rows that are not opt-outs, by other columns' values (trimmed, lower-cased): a row is
   * skipped when any filter says so: its value is one of `values` (`keep` false), or is not (`keep` true).
   */
  filters?: RowTest[] | undefined;
  /** 0-based column holding each row's own reason (see csv/reasons.ts), if the file has one. */
  reasonColumn?: number | undefined;
  /**
   * Set for NDJSON: the bytes are JSON records, one a line (source/ndjson.ts), read as rows
   * under these keys (the first record's); the columns above index them. `delimiter` is unused.
   */
  recordKeys?: string[] | undefined;
}

/** One column's test of whether a row is an opt-out (see {@link ChunkTask.filters}). */
export interface RowTest {
  column: number;
  values: string[];
  keep: boolean;
}

/** A rejected row, positioned relative to the chunk; the main thread adds the chunk's base. */
export interface ChunkReject {
  line: number;
  record: number;
  value: string;
  reason: string;
}

/**
 * A chunk's valid rows grouped by spool bucket, as the spool files hold them: bucket `b` is
 * `bytes[ends[b - 1] .. ends[b])` (from 0 for the first), one UTF-8 line per valid row in row
 * order: `key\n`, or `key\taddress\n` when the address differs from its key (keys and addresses
 * never hold tabs or line breaks), and `key\t[address]\t<reason>\n` for a row with its own reason
 * (the address empty when it is the key). Bytes rather than strings: moved from the worker, not
 * copied, and written to the files as they are.
 */
export interface BucketBytes {
  bytes: Uint8Array;
  ends: Uint32Array;
}

/**
 * One compact result per chunk: the valid rows already grouped by spool bucket, so that the main
 * thread only copies a few runs of bytes per chunk instead of handling every row.
 */
export interface ChunkResult {
  consumed: number;
  records: number;
  lines: number;
  valid: number;
  /** The valid rows, grouped by bucket: see {@link BucketBytes}. */
  buckets: BucketBytes;
  /** Valid rows with their own reason, per reason code (csv/reasons.ts `reasonCode`, index 0 unused). */
  reasons: number[];
  /** Rejected rows: the invalid ones, then (`skipped` of them, last) the skipped ones. */
  rejects: ChunkReject[];
  /** Rows the filter skipped: not opt-outs. Counted apart from the invalid ones. */
  skipped: number;
  invalidUtf8: number;
  error?: ExtractError;
}

/** Dedup of one spool bucket: its distinct keys, in first-seen order. */
export interface BucketTask {
  path: string;
  /** How to write each key as the ledger's chunk key, so that the main thread need not build them. */
  codec: ChunkKeyCodec;
}

export interface BucketResult {
  /** Lines in the bucket: valid rows whose key falls in it. */
  lines: number;
  /**
   * The distinct keys as the ledger's chunk keys (see `ChunkKeyCodec`), UTF-8, end to end in
   * store order: key `i` is `keyBytes[keyEnds[i - 1] ?? 0, keyEnds[i])`. Bytes rather than one
   * joined string: the worker writes them once, the main thread hands them to LevelDB as they
   * are, and no string comes near V8's length limit however many keys a bucket holds.
   */
  keyBytes: Uint8Array;
  keyEnds: Uint32Array;
  /** Addresses that differ from their key, joined by `\n` in parts (one for a usual bucket)... */
  addresses: string[];
  /** ...and the index of the key each belongs to, in ascending order. */
  addressRows: number[];
  /** Three 32-bit hashes per distinct key (see filter/hash.ts). */
  hashes: Uint32Array;
  /**
   * Per distinct key, the reason code (csv/reasons.ts) of its first row, 0 for none; empty when
   * no row of the bucket had its own reason.
   */
  reasons: Uint8Array;
}

/** Why a row was skipped (the export says it is not an opt-out), in the rejects file. */
export const SKIP_REASON = 'NOT_OPTED_OUT';

/** Cells of rejects files are capped so a runaway cell cannot bloat them. */
export const MAX_REJECT_VALUE_CHARS = 512;

/** The bucket a key's first hash falls in. */
export function bucketOf(h1: number, bits: number): number {
  return bits === 0 ? 0 : h1 >>> (32 - bits);
}
