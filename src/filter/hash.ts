/**
 * Key hashing for the dedup filters.
 *
 * The output is a persisted FORMAT: filter snapshots store bits placed by these hashes, so any
 * change to the constants or the mixing below must bump {@link HASH_VERSION} (a snapshot with
 * another version is rejected and the filter is rebuilt from the store). The pinned outputs in
 * test/filter/hash.test.ts guard against accidental changes.
 *
 * Not cryptographic: a crafted set of addresses can collide, which costs a few extra store
 * look-ups (bloom) or a miscounted duplicate (fingerprints), never a wrong suppression answer.
 */

/** Version of the hash format below; stored in every filter snapshot. */
export const HASH_VERSION = 1;

// Three lanes with distinct odd multipliers, rotations and seeds: lanes that shared a multiplier
// would share their seed-independent collisions (the known weakness of MurmurHash3 with seeds),
// and the 96-bit fingerprint would be worth far fewer bits.
const SEED_1 = 0x243f6a88;
const SEED_2 = 0x85a308d3;
const SEED_3 = 0x13198a2e;
const MUL_1 = 0x9e3779b1;
const MUL_2 = 0x85ebca77;
const MUL_3 = 0xc2b2ae3d;

/**
 * Writes three 32-bit hashes of `key` (h1, h2, h3) to `out[offset]`, `out[offset + 1]` and
 * `out[offset + 2]`. With `start` and `end`, hashes `key.slice(start, end)` without making that
 * string (the key part of a store key, when the filter is rebuilt from millions of them; a line
 * of a spool bucket).
 *
 * One pass over the UTF-16 code units, two units per step (so non-ASCII keys hash without an
 * encoding step): each lane does xor, rotate, multiply. The rotate feeds the high bits a
 * multiply produces back into the low bits, so every input bit reaches every state bit within
 * a couple of steps; a per-lane murmur3 `fmix32` with a distinct first multiplier then
 * avalanches the state. Each step is a bijection of the lane state, so two keys of the same
 * length that differ in one position always differ in all three lanes.
 */
export function hashKey(key: string, out: Uint32Array, offset: number, start = 0, end = key.length): void {
  const n = end - start;
  let a = SEED_1;
  let b = SEED_2;
  let c = SEED_3;
  let i = start;
  let x = 0;
  for (; i + 1 < end; i += 2) {
    const w = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    x = a ^ w;
    a = Math.imul((x << 13) | (x >>> 19), MUL_1);
    x = b ^ w;
    b = Math.imul((x << 15) | (x >>> 17), MUL_2);
    x = c ^ w;
    c = Math.imul((x << 17) | (x >>> 15), MUL_3);
  }
  if (i < end) {
    const w = key.charCodeAt(i);
    x = a ^ w;
    a = Math.imul((x << 13) | (x >>> 19), MUL_1);
    x = b ^ w;
    b = Math.imul((x << 15) | (x >>> 17), MUL_2);
    x = c ^ w;
    c = Math.imul((x << 17) | (x >>> 15), MUL_3);
  }
  finish(a, b, c, n, out, offset);
}

/**
 * {@link hashKey} of a key given as its UTF-8 bytes `bytes[start, end)`, when they are all ASCII:
 * each byte is then its own UTF-16 unit, and the hashes are the same. Returns false, with `out`
 * unchanged, when a byte is not ASCII; the caller then decodes the key and calls `hashKey`.
 * A spool bucket's dedup hashes its lines this way, without making a string of each.
 */
export function hashAsciiKey(bytes: Uint8Array, start: number, end: number, out: Uint32Array, offset: number): boolean {
  let a = SEED_1;
  let b = SEED_2;
  let c = SEED_3;
  let i = start;
  let x = 0;
  let seen = 0;
  for (; i + 1 < end; i += 2) {
    const w = (bytes[i] as number) | ((bytes[i + 1] as number) << 16);
    seen |= w;
    x = a ^ w;
    a = Math.imul((x << 13) | (x >>> 19), MUL_1);
    x = b ^ w;
    b = Math.imul((x << 15) | (x >>> 17), MUL_2);
    x = c ^ w;
    c = Math.imul((x << 17) | (x >>> 15), MUL_3);
  }
  if (i < end) {
    const w = bytes[i] as number;
    seen |= w;
    x = a ^ w;
    a = Math.imul((x << 13) | (x >>> 19), MUL_1);
    x = b ^ w;
    b = Math.imul((x << 15) | (x >>> 17), MUL_2);
    x = c ^ w;
    c = Math.imul((x << 17) | (x >>> 15), MUL_3);
  }
  if ((seen & 0x00800080) !== 0) return false;
  finish(a, b, c, end - start, out, offset);
  return true;
}

/** The lanes' last step, shared by both entries: the length, then a murmur3 `fmix32` per lane. */
function finish(a: number, b: number, c: number, n: number, out: Uint32Array, offset: number): void {
  // The length separates "a" from "a\0" (same words after padding).
  a ^= n;
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  a = Math.imul(a, 0xc2b2ae35);
  a ^= a >>> 16;

  b ^= n;
  b ^= b >>> 16;
  b = Math.imul(b, 0x7feb352d);
  b ^= b >>> 15;
  b = Math.imul(b, 0x846ca68b);
  b ^= b >>> 16;

  c ^= n;
  c ^= c >>> 16;
  c = Math.imul(c, 0x21f0aaad);
  c ^= c >>> 15;
  c = Math.imul(c, 0x735a2d97);
  c ^= c >>> 15;

  out[offset] = a;
  out[offset + 1] = b;
  out[offset + 2] = c;
}

const tupleScratch = new Uint32Array(3);

/** {@link hashKey} as a tuple of unsigned 32-bit numbers, for tests and cold paths. */
export function hashKeyTuple(key: string): [number, number, number] {
  hashKey(key, tupleScratch, 0);
  return [tupleScratch[0]!, tupleScratch[1]!, tupleScratch[2]!];
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** A first hash as 8 hex digits, ordered like the number (the hash part of a chunk key, see store/store.ts). */
export function hashHex(h1: number): string {
  return (HEX[(h1 >>> 24) & 0xff] as string) + (HEX[(h1 >>> 16) & 0xff] as string) +
    (HEX[(h1 >>> 8) & 0xff] as string) + (HEX[h1 & 0xff] as string);
}
