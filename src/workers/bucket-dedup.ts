import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { hashAsciiKey, hashKey } from '../filter/hash.js';
import type { BucketResult, BucketTask } from './chunk-task.js';

const RADIX_BITS = 11;
const RADIX = 1 << RADIX_BITS;
const TAB = 0x09;
const LF = 0x0a;

/** How a bucket is read and returned; tests make both small. */
export interface DedupLimits {
  /**
   * Bytes of the bucket file read at a time. A bucket holding one key tens of millions of times
   * is far larger than its distinct keys: reading it in pieces keeps memory to those keys,
   * whatever the number of rows.
   * @default 8 MiB (a usual bucket, ~1 MB, is one piece)
   */
  pieceBytes: number;
  /** Addresses per joined part of the result: at most 254 octets each, a part stays far below V8's string limit. @default 2^20 */
  addressesPerPart: number;
}

export const DEDUP_LIMITS: Readonly<DedupLimits> = { pieceBytes: 8 * 1024 * 1024, addressesPerPart: 1 << 20 };

/**
 * The distinct keys of a bucket, each with its three hashes, in first-seen order, kept as UTF-8
 * bytes end to end. A key is found again by its 64-bit fingerprint (h1, h2) in an
 * open-addressing table, then compared byte for byte: exact, whatever collides.
 *
 * Bytes, not strings: decoding each piece of the file and slicing a string per distinct key
 * took about a quarter of a bucket's dedup (CPU profile, 2M rows), and the keys leave the worker
 * as bytes anyway. An ASCII key, nearly every one, is hashed from its bytes; another is decoded
 * alone and hashed as a string, since the hashes are defined over UTF-16 units (filter/hash.ts).
 */
class DistinctKeys {
  count = 0;
  /** The keys' bytes, end to end: key `i` is `bytes[ends[i - 1] ?? 0, ends[i])`. */
  bytes = Buffer.allocUnsafe(64 * 1024);
  ends = new Uint32Array(1024);
  /** Three hashes per key (see filter/hash.ts), in key order. */
  hashes = new Uint32Array(3 * 1024);
  /** Per slot: the key's index + 1; 0 for an empty slot. */
  #slots = new Uint32Array(2048);
  readonly #scratch = new Uint32Array(3);

  get byteLength(): number {
    return this.count === 0 ? 0 : (this.ends[this.count - 1] as number);
  }

  start(i: number): number {
    return i === 0 ? 0 : (this.ends[i - 1] as number);
  }

  /** Adds the key `line[start, end)` unless it is there already; true when it was new. */
  add(line: Buffer, start: number, end: number): boolean {
    const s = this.#scratch;
    if (!hashAsciiKey(line, start, end, s, 0)) hashKey(line.toString('utf8', start, end), s, 0);
    const h1 = s[0] as number;
    const h2 = s[1] as number;
    const slots = this.#slots;
    const mask = slots.length - 1;
    const length = end - start;
    let i = h2 & mask;
    for (let at = slots[i] as number; at !== 0; i = (i + 1) & mask, at = slots[i] as number) {
      const k = at - 1;
      if (this.hashes[3 * k] === h1 && this.hashes[3 * k + 1] === h2 && this.#equals(k, line, start, length)) return false;
    }
    const n = this.count;
    const from = this.byteLength;
    if (n === this.ends.length) {
      this.ends = grown(this.ends, this.ends.length * 2);
      this.hashes = grown(this.hashes, this.hashes.length * 2);
    }
    if (from + length > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, from + length));
      this.bytes.copy(bigger, 0, 0, from);
      this.bytes = bigger;
    }
    const bytes = this.bytes;
    for (let j = 0; j < length; j++) bytes[from + j] = line[start + j] as number;
    this.ends[n] = from + length;
    this.hashes.set(s, 3 * n);
    this.count = n + 1;
    slots[i] = n + 1;
    // At most half full: probes stay short.
    if (2 * (n + 1) > slots.length) this.#grow();
    return true;
  }

  #equals(k: number, line: Buffer, start: number, length: number): boolean {
    const from = this.start(k);
    if ((this.ends[k] as number) - from !== length) return false;
    const bytes = this.bytes;
    for (let j = 0; j < length; j++) if (bytes[from + j] !== line[start + j]) return false;
    return true;
  }

  #grow(): void {
    const slots = new Uint32Array(this.#slots.length * 2);
    const mask = slots.length - 1;
    const hashes = this.hashes;
    for (let n = 0; n < this.count; n++) {
      let i = (hashes[3 * n + 1] as number) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = n + 1;
    }
    this.#slots = slots;
  }
}

function grown(a: Uint32Array, length: number): Uint32Array<ArrayBuffer> {
  const bigger = new Uint32Array(length);
  bigger.set(a);
  return bigger;
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
  for (const { bytes, end: pieceEnd } of linePieces(task.path, limits.pieceBytes)) {
    for (let start = 0; start < pieceEnd;) {
      // A line is `key`, `key\taddress` or `key\t[address]\t<code>`; keys and addresses hold
      // neither tabs nor line breaks.
      let keyEnd = start;
      let c = bytes[keyEnd] as number;
      while (c !== LF && c !== TAB) c = bytes[++keyEnd] as number;
      const end = c === LF ? keyEnd : bytes.indexOf(LF, keyEnd);
      lines++;
      if (distinct.add(bytes, start, keyEnd)) {
        let addressEnd = keyEnd + 1;
        while (addressEnd < end && bytes[addressEnd] !== TAB) addressEnd++;
        if (addressEnd < end) {
          reasonOf ??= new Array<number>(distinct.count - 1).fill(0);
          reasonOf.push(Number(bytes.toString('latin1', addressEnd + 1, end)));
        } else {
          reasonOf?.push(0);
        }
        if (addressEnd > keyEnd + 1) addressOf.set(distinct.count - 1, bytes.toString('utf8', keyEnd + 1, addressEnd));
      }
      start = end + 1;
    }
  }
  const n = distinct.count;
  const rows = storeOrder(distinct);
  const hashes = new Uint32Array(n * 3);
  const out = new ChunkKeyWriter(task.codec, n, distinct.byteLength);
  const addresses: string[] = [];
  const addressRows: number[] = [];
  const reasons = new Uint8Array(reasonOf === undefined ? 0 : n);
  const keyHashes = distinct.hashes;
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
    out.add(h1, distinct.bytes, distinct.start(row), distinct.ends[row] as number);
  }
  const { keyBytes, keyEnds } = out.finish();
  return { lines, keyBytes, keyEnds, addresses: joinInParts(addresses, limits.addressesPerPart), addressRows, hashes, reasons };
}

/**
 * The keys' rows in store order: by first hash, then (the rare runs of equal first hashes) by
 * their UTF-8 bytes, as LevelDB orders keys.
 */
function storeOrder(distinct: DistinctKeys): Uint32Array {
  const n = distinct.count;
  const keyHashes = distinct.hashes;
  // An LSD radix sort of the rows by first hash, 11 bits a pass: stable, so equal hashes keep
  // their rows in order. A Float64Array sort of hash * 2^21 + row took three times as long.
  let rows = new Uint32Array(n);
  let into = new Uint32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  const starts = new Uint32Array(RADIX);
  for (let shift = 0; shift < 32; shift += RADIX_BITS) {
    starts.fill(0);
    for (let i = 0; i < n; i++) {
      const d = ((keyHashes[(rows[i] as number) * 3] as number) >>> shift) & (RADIX - 1);
      starts[d] = (starts[d] as number) + 1;
    }
    for (let d = 0, at = 0; d < RADIX; d++) {
      const count = starts[d] as number;
      starts[d] = at;
      at += count;
    }
    for (let i = 0; i < n; i++) {
      const row = rows[i] as number;
      const d = ((keyHashes[row * 3] as number) >>> shift) & (RADIX - 1);
      const at = starts[d] as number;
      into[at] = row;
      starts[d] = at + 1;
    }
    [rows, into] = [into, rows];
  }
  const key = (row: number): Buffer => distinct.bytes.subarray(distinct.start(row), distinct.ends[row] as number);
  for (let i = 0; i < n;) {
    let j = i + 1;
    const h1 = keyHashes[(rows[i] as number) * 3];
    while (j < n && keyHashes[(rows[j] as number) * 3] === h1) j++;
    if (j - i > 1) rows.subarray(i, j).sort((a, b) => Buffer.compare(key(a), key(b)));
    i = j;
  }
  return rows;
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
 * Writes chunk keys (`prefix`, the hash part, the key's bytes) into one buffer of their own
 * (never Buffer's shared pool: the buffer is moved to another thread).
 */
class ChunkKeyWriter {
  readonly #prefix: Buffer;
  readonly #withHash: boolean;
  readonly #ends: Uint32Array;
  readonly #buf: Buffer;
  #at = 0;
  #count = 0;

  constructor(codec: BucketTask['codec'], keys: number, keyBytes: number) {
    this.#prefix = Buffer.from(codec.prefix);
    this.#withHash = codec.withHash;
    this.#ends = new Uint32Array(keys);
    this.#buf = Buffer.allocUnsafeSlow(Math.max(1, keys * (this.#prefix.length + (codec.withHash ? 8 : 0)) + keyBytes));
  }

  add(h1: number, bytes: Buffer, start: number, end: number): void {
    const buf = this.#buf;
    let at = this.#at;
    const prefix = this.#prefix;
    for (let i = 0; i < prefix.length; i++) buf[at++] = prefix[i] as number;
    if (this.#withHash) {
      for (let shift = 28; shift >= 0; shift -= 4) buf[at++] = HEX_DIGITS[(h1 >>> shift) & 15] as number;
    }
    for (let i = start; i < end; i++) buf[at++] = bytes[i] as number;
    this.#at = at;
    this.#ends[this.#count++] = at;
  }

  finish(): { keyBytes: Buffer; keyEnds: Uint32Array } {
    return { keyBytes: this.#buf.subarray(0, this.#at), keyEnds: this.#ends };
  }
}

function joinInParts(items: readonly string[], perPart: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < items.length; i += perPart) parts.push(items.slice(i, i + perPart).join('\n'));
  return parts;
}

/**
 * A spool file's bytes in pieces of whole lines: `bytes[0, end)`, ending with a line break (a
 * missing file is empty; a last line without one gets it). The buffer is reused from one piece
 * to the next.
 */
function* linePieces(path: string, pieceBytes: number): Generator<{ bytes: Buffer; end: number }> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    // One byte more than a piece: room for the line break a last line may lack.
    let buf = Buffer.allocUnsafe(Math.max(1, Math.min(pieceBytes, fstatSync(fd).size)) + 1);
    /** Bytes of an unfinished line, kept at the start of `buf`. */
    let held = 0;
    for (;;) {
      if (held === buf.length - 1) {
        // One line longer than a piece: take it whole.
        const bigger = Buffer.allocUnsafe(2 * buf.length);
        buf.copy(bigger, 0, 0, held);
        buf = bigger;
      }
      const read = readSync(fd, buf, held, buf.length - 1 - held, null);
      if (read === 0) {
        if (held > 0) {
          buf[held] = LF;
          yield { bytes: buf, end: held + 1 };
        }
        return;
      }
      const end = held + read;
      const cut = buf.lastIndexOf(LF, end - 1) + 1;
      if (cut > 0) yield { bytes: buf, end: cut };
      buf.copy(buf, 0, cut, end);
      held = end - cut;
    }
  } finally {
    closeSync(fd);
  }
}
