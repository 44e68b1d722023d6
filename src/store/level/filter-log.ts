/**
 * The filter log: for every store generation, one record of the key filter hashes (h1, h2) of the
 * entries that generation's batch added, written in the same atomic LevelDB batch as those
 * entries. A filter can thus be rebuilt from the log without reading a single entry key (at 10M
 * entries: 80 MB of records against 10M keys to decode and hash, which classic-level hands over
 * at about 1 us a key), and a snapshot saved at generation G is brought up to date by replaying
 * the records after G: the proof that the filter covers every stored key stays the generation,
 * record by record.
 *
 * Each record also carries a random token that names its generation in this store's history
 * alone; a snapshot records the token of the generation it covers, so that a snapshot from
 * another history (another store's, or this store's before it was restored from a copy) that
 * happens to name the same generation number is not taken for this one.
 *
 * Record: format (u16), HASH_VERSION (u16), pair count (u32), token (8 bytes), the pairs (u32 h1,
 * u32 h2, all little-endian), CRC-32 of all of that. A record that fails any check proves
 * nothing: the filter is then rebuilt from the entries themselves.
 */
import { randomFillSync } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { readWordsLE, writeWordsLE } from '../../filter/bloom.js';
import { HASH_VERSION, hashKey } from '../../filter/hash.js';
import { entryKeyStart } from './keys.js';

const FORMAT = 1;
const TOKEN_AT = 8;
const TOKEN_BYTES = 8;
const HEADER_BYTES = TOKEN_AT + TOKEN_BYTES;
/** The token of generation 0 and of a generation without a record (a store older than the log). */
export const NO_TOKEN = '00'.repeat(TOKEN_BYTES);
const CRC_BYTES = 4;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The hashes of the entries one batch adds; encoded once, when the batch is committed. */
export class FilterLogRecord {
  #pairs = new Uint32Array(2048);
  #count = 0;
  readonly #scratch = new Uint32Array(3);

  /**
   * Adds the hashes of an entry key's key, computed here from the very key written: the log
   * must match what the store holds.
   */
  addEntryKey(dbKey: string): void {
    hashKey(dbKey, this.#scratch, 0, entryKeyStart(dbKey));
    this.addHashes(this.#scratch[0] as number, this.#scratch[1] as number);
  }

  /**
   * Adds the hashes of an entry written as bytes: an import's, whose workers hashed each key
   * and wrote its entry key from the same key (and its first hash into it), once.
   */
  addHashes(h1: number, h2: number): void {
    if (2 * this.#count === this.#pairs.length) {
      const next = new Uint32Array(this.#pairs.length * 2);
      next.set(this.#pairs);
      this.#pairs = next;
    }
    this.#pairs[2 * this.#count] = h1;
    this.#pairs[2 * this.#count + 1] = h2;
    this.#count++;
  }

  get count(): number {
    return this.#count;
  }

  encode(): Buffer {
    const words = 2 * this.#count;
    const end = HEADER_BYTES + 4 * words;
    const buf = Buffer.allocUnsafe(end + CRC_BYTES);
    buf.writeUInt16LE(FORMAT, 0);
    buf.writeUInt16LE(HASH_VERSION, 2);
    buf.writeUInt32LE(this.#count, 4);
    randomFillSync(buf, TOKEN_AT, TOKEN_BYTES);
    // Never NO_TOKEN: a record's token must not match "no record".
    buf[TOKEN_AT] = (buf[TOKEN_AT] as number) | 1;
    writeWordsLE(this.#pairs.subarray(0, words), buf, HEADER_BYTES);
    buf.writeUInt32LE(crc32(buf.subarray(0, end)), end);
    return buf;
  }
}

/**
 * The token and the hash pairs (h1, h2, h1, h2, ...) of an encoded record, or undefined when it
 * is not a sound record of this format and hash version. The pairs may share memory with `buf`.
 */
export function decodeFilterLogRecord(buf: Uint8Array): { token: string; pairs: Uint32Array } | undefined {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_BYTES + CRC_BYTES) return undefined;
  if (b.readUInt16LE(0) !== FORMAT || b.readUInt16LE(2) !== HASH_VERSION) return undefined;
  const words = 2 * b.readUInt32LE(4);
  const end = HEADER_BYTES + 4 * words;
  if (b.length !== end + CRC_BYTES || crc32(b.subarray(0, end)) !== b.readUInt32LE(end)) return undefined;
  // A view where the bytes allow one: copying 80 MB of records into fresh arrays cost ~0.25 s.
  const at = b.byteOffset + HEADER_BYTES;
  const pairs = LITTLE_ENDIAN && at % 4 === 0 ? new Uint32Array(b.buffer, at, words) : readWordsLE(b, HEADER_BYTES, words);
  return { token: b.toString('hex', TOKEN_AT, TOKEN_AT + TOKEN_BYTES), pairs };
}
