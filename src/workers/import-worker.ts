import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { extractColumn, type ExtractResult } from '../csv/extract.js';
import { cellText, readNdjson } from '../source/ndjson.js';
import { hashKey } from '../filter/hash.js';
import { reasonCode, reasonOfCell } from '../csv/reasons.js';
import { SUPPRESSION_REASONS } from '../store/jobs.js';
import { readCell } from './cell.js';
import {
  MAX_REJECT_VALUE_CHARS, SKIP_REASON, bucketOf, type BucketBytes, type BucketResult, type BucketTask, type ChunkReject, type ChunkResult, type ChunkTask,
} from './chunk-task.js';

/**
 * Worker-pool entry: parse one chunk, pick the email column, apply the address policy and
 * sort every valid row into its spool bucket. All per-row work happens here, off the main thread.
 */
export default function processChunk(task: ChunkTask): ChunkResult {
  const buckets = new BucketLines(2 ** task.bucketBits);
  const rejects: ChunkReject[] = [];
  const h = new Uint32Array(3);
  let valid = 0;
  let invalidUtf8 = 0;
  let record = 0;

  const reject = (value: string, line: number, reason: string): void => {
    rejects.push({
      line,
      record,
      value: capped(value),
      reason,
    });
  };

  const skippedRejects: ChunkReject[] = [];
  const reasons = new Array<number>(SUPPRESSION_REASONS.length + 1).fill(0);
  /** One row: its email cell, whether a filter skips it, its own reason's code (0 for none). */
  const row = (value: string | undefined, line: number, undecodable: boolean, skipped: boolean, code: number): void => {
    if (skipped) {
      skippedRejects.push({ line, record, value: capped(value ?? ''), reason: SKIP_REASON });
      record++;
      return;
    }
    const n = readCell(value, undecodable, task.substitutes);
    if (n.valid) {
      hashKey(n.key, h, 0);
      const b = bucketOf(h[0] as number, task.bucketBits);
      if (code === 0) {
        buckets.add(b, n.address === n.key ? n.key : n.key + '\t' + n.address);
      } else {
        buckets.add(b, n.key + '\t' + (n.address === n.key ? '' : n.address) + '\t' + code);
        reasons[code] = (reasons[code] as number) + 1;
      }
      valid++;
    } else {
      if (n.reason === 'INVALID_ENCODING') invalidUtf8++;
      reject(value ?? '', line, n.reason);
    }
    record++;
  };

  let result: ExtractResult;
  const keys = task.recordKeys;
  if (keys !== undefined) {
    result = readNdjsonRows(task, keys, row);
  } else {
    const bytes = task.bytes;
    const skip = skippedRows(task);
    const own = rowReasons(task);
    result = extractColumn(bytes, 0, bytes.length, {
      delimiter: task.delimiter,
      column: task.column,
      maxRecordBytes: task.maxRecordBytes,
      final: task.final,
    }, (value, line, _start, _end, _next, _fields, undecodable) => {
      row(value, line, undecodable, skip?.[record] === 1, own === undefined ? 0 : own[record] as number);
    });
  }

  const out: ChunkResult = {
    consumed: result.consumed,
    records: result.records,
    lines: result.lines,
    valid,
    buckets: buckets.finish(),
    reasons,
    rejects: skippedRejects.length === 0 ? rejects : rejects.concat(skippedRejects).sort((a, b) => a.record - b.record),
    skipped: skippedRejects.length,
    invalidUtf8,
  };
  if (result.error) out.error = result.error;
  return out;
}

/**
 * {@link processChunk} as the worker pool runs it: the bucket bytes are moved to the main thread,
 * not copied.
 */
export function processChunkMoved(task: ChunkTask): unknown {
  const r = processChunk(task);
  return move({ [transferableSymbol]: [r.buckets.bytes.buffer, r.buckets.ends.buffer], [valueSymbol]: r } as never);
}

/**
 * A chunk's lines, written as UTF-8 into one growing buffer per bucket as the rows come, then
 * joined into one buffer of their own ({@link BucketBytes}). Strings joined a row at a time lived
 * as long as the chunk, and copying them from one young generation to the next took about a
 * third of a worker's time on a chunk (measured: 47 ms a 4 MiB chunk against 76 ms).
 */
class BucketLines {
  readonly #bufs: Array<Buffer | undefined>;
  readonly #lengths: Uint32Array;

  constructor(buckets: number) {
    this.#bufs = new Array<Buffer | undefined>(buckets);
    this.#lengths = new Uint32Array(buckets);
  }

  /** Appends `line` and a line break to bucket `b`. */
  add(b: number, line: string): void {
    let buf = this.#bufs[b];
    let at = this.#lengths[b] as number;
    // 3 bytes a UTF-16 unit at most, and the line break.
    const most = at + 3 * line.length + 1;
    if (buf === undefined || most > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(1024, 2 * most));
      buf?.copy(bigger, 0, 0, at);
      this.#bufs[b] = buf = bigger;
    }
    at = writeUtf8(buf, at, line);
    buf[at++] = 0x0a;
    this.#lengths[b] = at;
  }

  finish(): BucketBytes {
    const lengths = this.#lengths;
    const ends = new Uint32Array(lengths.length);
    let total = 0;
    for (let b = 0; b < lengths.length; b++) {
      total += lengths[b] as number;
      ends[b] = total;
    }
    // Of its own (never Buffer's shared pool): it is moved to another thread.
    const bytes = Buffer.allocUnsafeSlow(total);
    for (let b = 0; b < lengths.length; b++) this.#bufs[b]?.copy(bytes, b === 0 ? 0 : ends[b - 1], 0, lengths[b]);
    return { bytes, ends };
  }
}

function capped(value: string): string {
  return value.length > MAX_REJECT_VALUE_CHARS ? value.slice(0, MAX_REJECT_VALUE_CHARS) + '…' : value;
}

/**
 * The rows of a chunk of NDJSON, each record parsed once: a row's email cell, whether a filter
 * skips it and its own reason come from the same parse.
 */
function readNdjsonRows(task: ChunkTask, keys: readonly string[], row: (value: string | undefined, line: number, undecodable: boolean,
  skipped: boolean, code: number) => void): ExtractResult {
  const emailKey = keys[task.column] as string;
  const filters = (task.filters ?? []).map((f) => ({ key: keys[f.column] as string, values: f.values, keep: f.keep }));
  const reasonKey = task.reasonColumn === undefined ? undefined : keys[task.reasonColumn];
  return readNdjson(task.bytes, task, (record, line, undecodable) => {
    let skipped = false;
    for (const f of filters) {
      if (f.values.includes(cellText(record[f.key]).trim().toLowerCase()) !== f.keep) skipped = true;
    }
    const code = reasonKey === undefined ? 0 : reasonCode(reasonOfCell(cellText(record[reasonKey])));
    const value = cellText(record[emailKey]);
    // The line's bad bytes may lie in another value: only a U+FFFD in this one can stand for them.
    row(value, line, undecodable && value.includes('\uFFFD'), skipped, code);
  });
}

/**
 * Per record of the chunk, 1 when a filter skips it. A second pass of the extractor per filter
 * column: records end at the same places whatever the column, and the passes run only for
 * files that have filters.
 */
function skippedRows(task: ChunkTask): Uint8Array | undefined {
  const filters = task.filters ?? [];
  if (filters.length === 0) return undefined;
  let marks: Uint8Array | undefined;
  for (const f of filters) {
    const column = cellsOf(task, f.column, (value) => {
      const listed = value !== undefined && f.values.includes(value.trim().toLowerCase());
      return listed !== f.keep ? 1 : 0;
    });
    if (marks === undefined) marks = column;
    else for (let i = 0; i < marks.length; i++) marks[i] = (marks[i] as number) | (column[i] as number);
  }
  return marks;
}

/** Per record of the chunk, the reason code of its own reason (0 for none), when the file has a reason column. */
function rowReasons(task: ChunkTask): Uint8Array | undefined {
  if (task.reasonColumn === undefined) return undefined;
  return cellsOf(task, task.reasonColumn, (value) => reasonCode(reasonOfCell(value)));
}

/** One small number per record of the chunk, from its cell in `column`. */
function cellsOf(task: ChunkTask, column: number, mark: (value: string | undefined) => number): Uint8Array {
  const marks: number[] = [];
  extractColumn(task.bytes, 0, task.bytes.length, {
    delimiter: task.delimiter, column, maxRecordBytes: task.maxRecordBytes, final: task.final,
  }, (value) => {
    marks.push(mark(value));
  });
  return Uint8Array.from(marks);
}

const ROW_LIMIT = 2 ** 21;

/** How a bucket is read and returned; tests make both small. */
export interface DedupLimits {
  /**
   * Bytes of the bucket file decoded at a time. A bucket holding one key tens of millions of
   * times is larger than the longest string V8 makes (2^29 - 24 characters): reading it in
   * pieces keeps memory to the distinct keys, whatever the number of rows.
   * @default 8 MiB (a usual bucket, ~1 MB, is one piece)
   */
  pieceBytes: number;
  /** Addresses per joined part of the result: at most 254 octets each, a part stays far below V8's string limit. @default 2^20 */
  addressesPerPart: number;
}

export const DEDUP_LIMITS: Readonly<DedupLimits> = { pieceBytes: 8 * 1024 * 1024, addressesPerPart: 1 << 20 };

/**
 * The distinct keys of a bucket, each with its three hashes, in first-seen order. A key is found
 * again by its 64-bit fingerprint (h1, h2) in an open-addressing table, then compared in full:
 * exact, whatever collides. A string Set did the same with V8's own hash of every line, which
 * took twice the time of hashing and probing here, and each key is hashed here anyway.
 */
class DistinctKeys {
  readonly keys: string[] = [];
  /** Three hashes per key (see filter/hash.ts), in `keys` order. */
  keyHashes = new Uint32Array(3 * 1024);
  /** Per slot: the key's index + 1; 0 for an empty slot. */
  #slots = new Uint32Array(2048);
  readonly #scratch = new Uint32Array(3);

  get count(): number {
    return this.keys.length;
  }

  /** Adds `text.slice(start, end)` unless it is there already; true when it was new. */
  add(text: string, start: number, end: number): boolean {
    const s = this.#scratch;
    hashKey(text, s, 0, start, end);
    const h1 = s[0] as number;
    const h2 = s[1] as number;
    const slots = this.#slots;
    const mask = slots.length - 1;
    const hashes = this.keyHashes;
    const length = end - start;
    let i = h2 & mask;
    for (let at = slots[i] as number; at !== 0; i = (i + 1) & mask, at = slots[i] as number) {
      const k = (at - 1) * 3;
      if (hashes[k] === h1 && hashes[k + 1] === h2) {
        const key = this.keys[at - 1] as string;
        if (key.length === length && text.startsWith(key, start)) return false;
      }
    }
    const n = this.keys.length;
    this.keys.push(text.slice(start, end));
    if (3 * n + 3 > hashes.length) {
      const bigger = new Uint32Array(hashes.length * 2);
      bigger.set(hashes);
      this.keyHashes = bigger;
    }
    this.keyHashes.set(s, 3 * n);
    slots[i] = n + 1;
    // At most half full: probes stay short.
    if (2 * (n + 1) > slots.length) this.#grow();
    return true;
  }

  #grow(): void {
    const slots = new Uint32Array(this.#slots.length * 2);
    const mask = slots.length - 1;
    const hashes = this.keyHashes;
    for (let n = 0; n < this.keys.length; n++) {
      let i = (hashes[3 * n + 1] as number) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = n + 1;
    }
    this.#slots = slots;
  }
}

/**
 * Worker-pool entry: the distinct keys of one spool bucket, sorted. Every copy of a key lands in
 * the same bucket, so dedup within a bucket is dedup over the whole file, exact and in memory
 * bounded by the bucket's distinct keys. The first occurrence's address and reason are kept
 * (rows reach a bucket in file order). The keys come back in store order: sorted batches halved
 * LevelDB's time per batch (7.3k keys in ~9 ms instead of ~20 ms), and buckets in hash order
 * make a whole import one sorted run.
 *
 * The chunk keys come back as UTF-8 bytes end to end, with their filter hashes: the main thread
 * hands them to the ledger as they are, without joining, splitting, encoding or hashing a key.
 */
export function dedupBucket(task: BucketTask, limits: Readonly<DedupLimits> = DEDUP_LIMITS): BucketResult {
  const distinct = new DistinctKeys();
  /** Per distinct key whose address differs from the key: that address. */
  const addressOf = new Map<number, string>();
  /** Per distinct key: its first row's reason code; allocated at the first row that has one. */
  let reasonOf: number[] | undefined;
  let lines = 0;
  let keyChars = 0;
  for (const text of linePieces(task.path, limits.pieceBytes)) {
    let start = 0;
    // The next tab at or after `start`, searched again only once passed: searching from every
    // line made a piece without tabs (every address equal to its key) quadratic.
    let tab = text.indexOf('\t');
    while (start < text.length) {
      const end = text.indexOf('\n', start);
      if (tab >= 0 && tab < start) tab = text.indexOf('\t', start);
      const hasAddress = tab >= 0 && tab < end;
      const keyEnd = hasAddress ? tab : end;
      lines++;
      if (distinct.add(text, start, keyEnd)) {
        keyChars += keyEnd - start;
        let address = hasAddress ? text.slice(tab + 1, end) : '';
        // A row with its own reason: `key\t[address]\t<code>`. The first row of a key decides.
        const second = address.indexOf('\t');
        if (second >= 0) {
          reasonOf ??= new Array<number>(distinct.count - 1).fill(0);
          reasonOf.push(Number(address.slice(second + 1)));
          address = address.slice(0, second);
        } else {
          reasonOf?.push(0);
        }
        if (address !== '') addressOf.set(distinct.count - 1, address);
      }
      start = end + 1;
    }
  }
  const { keys, keyHashes } = distinct;
  // Store keys order by (first hash, key): sort by the hash as a number, then put the rare
  // runs of equal hashes in key order.
  const n = keys.length;
  let rows: Uint32Array;
  if (n < ROW_LIMIT) {
    // hash * 2^21 + row stays exact in a double: a typed-array numeric sort, no comparator calls.
    const order = new Float64Array(n);
    for (let i = 0; i < n; i++) order[i] = (keyHashes[i * 3] as number) * ROW_LIMIT + i;
    order.sort();
    rows = new Uint32Array(n);
    for (let i = 0; i < n; i++) rows[i] = (order[i] as number) % ROW_LIMIT;
  } else {
    rows = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => (keyHashes[a * 3] as number) - (keyHashes[b * 3] as number));
  }
  for (let i = 0; i < n;) {
    let j = i + 1;
    const h1 = keyHashes[(rows[i] as number) * 3];
    while (j < n && keyHashes[(rows[j] as number) * 3] === h1) j++;
    if (j - i > 1) rows.subarray(i, j).sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
    i = j;
  }
  const hashes = new Uint32Array(n * 3);
  const out = new ChunkKeyWriter(task.codec, n, keyChars);
  const addresses: string[] = [];
  const addressRows: number[] = [];
  const reasons = new Uint8Array(reasonOf === undefined ? 0 : n);
  for (let i = 0; i < n; i++) {
    const row = rows[i] as number;
    if (reasonOf !== undefined) reasons[i] = reasonOf[row] as number;
    const address = addressOf.size === 0 ? undefined : addressOf.get(row);
    if (address !== undefined) {
      addresses.push(address);
      addressRows.push(i);
    }
    const h1 = keyHashes[row * 3] as number;
    hashes[i * 3] = h1;
    hashes[i * 3 + 1] = keyHashes[row * 3 + 1] as number;
    hashes[i * 3 + 2] = keyHashes[row * 3 + 2] as number;
    out.add(h1, keys[row] as string);
  }
  const { keyBytes, keyEnds } = out.finish();
  return { lines, keyBytes, keyEnds, addresses: joinInParts(addresses, limits.addressesPerPart), addressRows, hashes, reasons };
}

/**
 * {@link dedupBucket} as the worker pool runs it: the result's typed arrays are moved to the
 * main thread, not copied.
 */
export function dedupBucketMoved(task: BucketTask): unknown {
  const r = dedupBucket(task);
  return move({ [transferableSymbol]: [r.keyBytes.buffer, r.keyEnds.buffer, r.hashes.buffer, r.reasons.buffer], [valueSymbol]: r } as never);
}

const HEX_DIGITS = Buffer.from('0123456789abcdef');

/**
 * Writes `text` as UTF-8 at `at` (the caller made room: 3 bytes a UTF-16 unit); returns the end.
 * ASCII byte by byte, the rest through Buffer.write: for the short strings of keys and lines the
 * loop is the faster (with Buffer.write for every key, a 42,000-line bucket's dedup took 48-56 ms
 * against 37-45).
 */
function writeUtf8(buf: Buffer, at: number, text: string): number {
  let i = 0;
  const len = text.length;
  for (; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) break;
    buf[at++] = c;
  }
  return i < len ? at + buf.write(i === 0 ? text : text.slice(i), at, 'utf8') : at;
}

/**
 * Writes chunk keys (`prefix`, the hash part, the key) as UTF-8 into one buffer of their own
 * (never Buffer's shared pool: the buffer is moved to another thread), growing it when keys
 * hold multi-byte characters.
 */
class ChunkKeyWriter {
  readonly #prefix: Buffer;
  readonly #withHash: boolean;
  readonly #ends: Uint32Array;
  #buf: Buffer;
  #at = 0;
  #count = 0;

  constructor(codec: BucketTask['codec'], keys: number, keyChars: number) {
    this.#prefix = Buffer.from(codec.prefix);
    this.#withHash = codec.withHash;
    this.#ends = new Uint32Array(keys);
    // Exact for ASCII keys, the usual case.
    this.#buf = Buffer.allocUnsafeSlow(Math.max(1, keys * (this.#prefix.length + (codec.withHash ? 8 : 0)) + keyChars));
  }

  add(h1: number, key: string): void {
    const fixed = this.#prefix.length + (this.#withHash ? 8 : 0);
    if (this.#at + fixed + 3 * key.length > this.#buf.length) {
      const need = fixed + Buffer.byteLength(key);
      if (this.#at + need > this.#buf.length) this.#grow(need);
    }
    const buf = this.#buf;
    let at = this.#at;
    const prefix = this.#prefix;
    for (let i = 0; i < prefix.length; i++) buf[at++] = prefix[i] as number;
    if (this.#withHash) {
      for (let shift = 28; shift >= 0; shift -= 4) buf[at++] = HEX_DIGITS[(h1 >>> shift) & 15] as number;
    }
    at = writeUtf8(buf, at, key);
    this.#at = at;
    this.#ends[this.#count++] = at;
  }

  #grow(need: number): void {
    // Room for this key, and for the rest if they are as long as the keys so far.
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.#buf.length * 2, this.#at + need));
    this.#buf.copy(bigger, 0, 0, this.#at);
    this.#buf = bigger;
  }

  finish(): { keyBytes: Buffer; keyEnds: Uint32Array } {
    // A buffer much larger than its keys (multi-byte keys made it grow) is not moved whole.
    const keyBytes = this.#at * 2 < this.#buf.length ? copyOf(this.#buf.subarray(0, this.#at)) : this.#buf.subarray(0, this.#at);
    return { keyBytes, keyEnds: this.#ends };
  }
}

function copyOf(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(out);
  return out;
}

function joinInParts(items: readonly string[], perPart: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < items.length; i += perPart) parts.push(items.slice(i, i + perPart).join('\n'));
  return parts;
}

/**
 * A spool file's text in pieces of whole lines, each ending with a line break (a missing file is
 * empty). Cutting at a line break never splits a UTF-8 sequence, so each piece decodes alone.
 */
function* linePieces(path: string, pieceBytes: number): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    let buf = Buffer.allocUnsafe(Math.max(1, Math.min(pieceBytes, fstatSync(fd).size)));
    /** Bytes of an unfinished line, kept at the start of `buf`. */
    let held = 0;
    for (;;) {
      if (held === buf.length) {
        // One line longer than a piece: take it whole.
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, held);
        buf = bigger;
      }
      const read = readSync(fd, buf, held, buf.length - held, null);
      if (read === 0) {
        if (held > 0) yield `${buf.toString('utf8', 0, held)}\n`;
        return;
      }
      const end = held + read;
      const cut = buf.lastIndexOf(0x0a, end - 1) + 1;
      if (cut > 0) yield buf.toString('utf8', 0, cut);
      buf.copy(buf, 0, cut, end);
      held = end - cut;
    }
  } finally {
    closeSync(fd);
  }
}
