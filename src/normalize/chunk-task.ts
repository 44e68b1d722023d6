import type { ExtractError } from '../csv/extract.js';
import type { Eol } from '../csv/dialect.js';

/** What the main thread sends a worker: one record-aligned chunk of UTF-8 bytes. */
export interface ChunkTask {
  bytes: Uint8Array;
  delimiter: number;
  eol: Eol;
  /** 0-based index of the email column. */
  column: number;
  maxRecordBytes: number;
  /** Prepended to every key, so that the main thread gets store keys without building them. */
  keyPrefix: string;
  /** The last chunk of the source: an unfinished record here is an error, not a carry-over. */
  final: boolean;
}

/** A rejected row, positioned relative to the chunk; the main thread adds the chunk's base. */
export interface ChunkReject {
  line: number;
  record: number;
  value: string;
  reason: string;
}

/**
 * One compact result per chunk: valid keys joined in one string and their hashes in one typed
 * array, so that the main thread does not pay a structured-clone cost per row.
 */
export interface ChunkResult {
  consumed: number;
  records: number;
  lines: number;
  /** Store keys (`keyPrefix` + key) of the valid rows, in row order, joined by `\n` (keys never contain control characters). */
  keys: string;
  /** Addresses that differ from their key (a `+tag`, Gmail dots), joined by `\n`... */
  addresses: string;
  /** ...and the index of the valid row each belongs to. */
  addressRows: number[];
  /** Three 32-bit hashes per valid row (see dedup/hash.ts). */
  hashes: Uint32Array;
  rejects: ChunkReject[];
  invalidUtf8: number;
  error?: ExtractError;
}

/** Cells of rejects files are capped so a runaway cell cannot bloat them. */
export const MAX_REJECT_VALUE_CHARS = 512;
