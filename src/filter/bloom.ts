/**
 * Bloom filters over {@link hashKey} hashes: the "definitely absent" answer of the check path
 * and the first dedup stage of an import (design.md, invariant 1: the filter covers every stored
 * key, so it must never answer false for a key that was added).
 *
 * `BloomFilter` is cache-line blocked: each key touches one 512-bit block (16 words, one cache
 * line), so an add or a query costs one cache miss instead of k. Blocks fill unevenly (Poisson),
 * which a blocked filter pays for with ~1-2 more bits per key than the classic formula; the
 * sizing below models the block loads instead of padding by guesswork, and was checked by
 * measurement.
 *
 * `KeyFilter` stacks BloomFilter layers so that a store can outgrow the size it was opened with
 * without a rebuild, and serializes to a checked snapshot.
 */
import { crc32 } from 'node:zlib';
import { OptoutError, describeValue } from '../errors.js';
import { HASH_VERSION } from './hash.js';

/** Bits in one block: one 64-byte cache line. Part of the snapshot format. */
export const BLOCK_BITS = 512;
const BLOCK_WORDS = BLOCK_BITS / 32;
const BLOCK_BYTES = BLOCK_BITS / 8;

/** Default target false-positive rate. */
export const DEFAULT_FPR = 0.001;

/**
 * The sizing model ({@link blockedFpr}) assumes ideal random bit positions; the real ones come
 * from a 32-bit LCG and measure 0-5% above the model, and the acceptance test samples 200k absent
 * keys (about ±8% noise at 0.1%). Sizing for 80% of the requested rate absorbs both.
 * Measured at full capacity with this margin (keys `p<i>.someone@example.org`, absent keys
 * `a<i>.other@example.net`, hashed with hashKey):
 *   fpr 0.01   -> 10.41 bits/key, k=7:  measured 0.00810 (10M keys, 4M absent; model 0.00798)
 *   fpr 0.001  -> 16.08 bits/key, k=10: measured 0.00083 (10M keys, 4M absent; model 0.00080)
 *   fpr 0.0001 -> 22.59 bits/key, k=12: measured 0.000079 (1M keys, 20M absent; model 0.000080)
 * The classic unblocked formula gives 14.38 bits/key, k=10 for 0.001: blocking costs ~1.7 bits.
 */
const SIZING_MARGIN = 0.8;
const MAX_K = 64;
/** Blocked filters saturate: below ~1e-7 the bits per key climb steeply. */
const MAX_BITS_PER_KEY = 256;
/** 2 GiB per layer: keeps word indexes in int32 range and allocations sane. */
const MAX_BLOCKS = 2 ** 25;
const TWO_POW_NEG_32 = 2 ** -32;
// PCG's 32-bit LCG multiplier: the top bits of successive LCG states are well distributed.
const LCG_MUL = 0x2c9277b5;

export interface BloomParams {
  /** Keys the filter is sized for; beyond it the false-positive rate rises above `fpr`. */
  readonly capacity: number;
  /** Target false-positive rate at `capacity` keys. */
  readonly fpr: number;
  /** Bits set per key, all within one block. */
  readonly k: number;
  /** Number of 512-bit blocks. */
  readonly blocks: number;
}

/**
 * False-positive rate of a 512-bit blocked filter holding `keysPerBlock` keys per block on
 * average, with `k` independent uniform positions per key: block loads are Poisson, and a block
 * holding i keys has each bit set with probability 1 - (1 - 1/512)^(k i).
 */
export function blockedFpr(keysPerBlock: number, k: number): number {
  const lambda = keysPerBlock;
  const last = Math.ceil(lambda + 12 * Math.sqrt(lambda) + 30);
  const miss = 1 - 1 / BLOCK_BITS;
  let term = Math.exp(-lambda);
  let sum = 0;
  for (let i = 0; i <= last; i++) {
    if (i > 0) term *= lambda / i;
    sum += term * Math.pow(1 - Math.pow(miss, k * i), k);
  }
  return sum;
}

const sizeCache = new Map<number, { bitsPerKey: number; k: number }>();

/** Smallest bits per key (to 1/64) and its best k for which the model meets `target`. */
function sizeFor(target: number): { bitsPerKey: number; k: number } {
  const cached = sizeCache.get(target);
  if (cached !== undefined) return cached;
  let best = { bitsPerKey: Infinity, k: 1 };
  for (let k = 1; k <= MAX_K; k++) {
    // For a fixed k the rate falls as bits grow: bisect on bits per key, in 1/64 steps.
    let lo = 1;
    let hi = 64 * MAX_BITS_PER_KEY;
    if (blockedFpr(BLOCK_BITS / (hi / 64), k) > target) continue;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (blockedFpr(BLOCK_BITS / (mid / 64), k) <= target) hi = mid;
      else lo = mid;
    }
    if (hi / 64 < best.bitsPerKey) best = { bitsPerKey: hi / 64, k };
  }
  sizeCache.set(target, best);
  return best;
}

/** Parameters {@link BloomFilter.forCapacity} uses for `capacity` keys at `fpr`. */
export function bloomParams(capacity: number, fpr: number = DEFAULT_FPR): BloomParams {
  if (!Number.isSafeInteger(capacity) || capacity < 1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`capacity\` to be an integer from 1 and up, got ${describeValue(capacity)}`);
  }
  if (typeof fpr !== 'number' || !(fpr >= 1e-12 && fpr <= 0.5)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`fpr\` to be a number from 1e-12 to 0.5, got ${describeValue(fpr)}`);
  }
  const { bitsPerKey, k } = sizeFor(fpr * SIZING_MARGIN);
  const blocks = Math.ceil((capacity * bitsPerKey) / BLOCK_BITS);
  if (blocks > MAX_BLOCKS) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`capacity\` to need at most ${MAX_BLOCKS * BLOCK_BYTES} bytes at fpr ${fpr}, got ${describeValue(capacity)}`);
  }
  return { capacity, fpr, k, blocks };
}

export class BloomFilter {
  readonly capacity: number;
  readonly fpr: number;
  readonly k: number;
  readonly blocks: number;
  #count: number;
  /** The bit array; exposed for serialization only. */
  readonly words: Uint32Array;

  /** Sized from a measured model so that the FPR at `capacity` keys stays at or under `fpr`. */
  static forCapacity(capacity: number, fpr: number = DEFAULT_FPR): BloomFilter {
    return new BloomFilter(bloomParams(capacity, fpr));
  }

  /** Prefer {@link BloomFilter.forCapacity}; this takes explicit parameters (snapshots). */
  constructor(params: BloomParams, words?: Uint32Array, count = 0) {
    const { k, blocks } = params;
    if (!Number.isInteger(k) || k < 1 || k > MAX_K || !Number.isInteger(blocks) || blocks < 1 || blocks > MAX_BLOCKS) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`k\` from 1 to ${MAX_K} and \`blocks\` from 1 to ${MAX_BLOCKS}, got ${describeValue({ k, blocks })}`);
    }
    this.capacity = params.capacity;
    this.fpr = params.fpr;
    this.k = params.k;
    this.blocks = params.blocks;
    this.words = words ?? new Uint32Array(params.blocks * BLOCK_WORDS);
    this.#count = count;
    if (this.words.length !== params.blocks * BLOCK_WORDS) {
      throw new RangeError(`Expected ${params.blocks * BLOCK_WORDS} words, got ${this.words.length}`);
    }
  }

  /** Number of adds (not distinct keys: adding a key twice counts twice). */
  get count(): number {
    return this.#count;
  }

  get byteLength(): number {
    return this.words.byteLength;
  }

  add(h1: number, h2: number): void {
    const words = this.words;
    // Multiply-shift maps h2 onto [0, blocks) without a power-of-two size; the float product
    // stays below blocks * 2^32 even when rounded, so the floor is always a valid block.
    // The block comes from h2, not h1: imports add keys in h1 order (the store's order), and a
    // layer that fills up part-way through would otherwise hold keys of a few blocks only
    // (measured: 10% false positives instead of 0.05%).
    const base = Math.floor((h2 >>> 0) * this.blocks * TWO_POW_NEG_32) * BLOCK_WORDS;
    // The low half of h2 barely moves the block choice, so it goes into the probe sequence.
    const inc = ((h2 << 16) | (h2 >>> 16) | 1) | 0;
    let x = h1 | 0;
    for (let i = this.k; i > 0; i--) {
      x = (Math.imul(x, LCG_MUL) + inc) | 0;
      const bit = x >>> 23;
      const w = base + (bit >>> 5);
      words[w] = words[w]! | (1 << (bit & 31));
    }
    this.#count++;
  }

  mightContain(h1: number, h2: number): boolean {
    const words = this.words;
    const base = Math.floor((h2 >>> 0) * this.blocks * TWO_POW_NEG_32) * BLOCK_WORDS;
    const inc = ((h2 << 16) | (h2 >>> 16) | 1) | 0;
    let x = h1 | 0;
    for (let i = this.k; i > 0; i--) {
      x = (Math.imul(x, LCG_MUL) + inc) | 0;
      const bit = x >>> 23;
      if ((words[base + (bit >>> 5)]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/**
 * FPR budget of layer `i` of a KeyFilter with target `fpr`: half for the first layer (most
 * filters never grow), then fpr * 3 / (pi^2 i^2), which sums to the other half. A geometric split
 * (fpr / 2^(i+1)) would drive deep layers below what a blocked filter can reach in sane memory;
 * this one costs only ~2 log2(i) extra bits per key at layer i. The price of the split: a filter
 * that never grows is sized for fpr / 2 (at 0.001: 17.94 bits/key, k=10, measured 0.0004,
 * instead of 16.08 bits/key).
 */
export function layerFpr(fpr: number, i: number): number {
  return i === 0 ? fpr / 2 : (fpr * 3) / (Math.PI * Math.PI * i * i);
}

/** Layers never start smaller than this: a handful of blocks, not worth a growth step. */
const MIN_LAYER_CAPACITY = 64;
/** Format limit; with doubling layers it is far beyond any feasible key count. */
const MAX_LAYERS = 48;
/** Keeps the deepest layer's share of the budget (layerFpr) within what bloomParams accepts. */
const MIN_KEY_FILTER_FPR = 1e-8;

/**
 * The filter the rest of optout uses: a scalable stack of {@link BloomFilter} layers.
 *
 * Adds fill the oldest layer with room; when every layer is full (or {@link ensureCapacity} asks
 * for more) a new layer of at least twice the previous one's capacity is appended, so the layer
 * count stays logarithmic in the key count. A query checks every layer, so the layers' FPRs add
 * up: {@link layerFpr} splits `fpr` so that the sum stays under it however many layers there are.
 * Nothing is ever removed, so there are no false negatives.
 */
export class KeyFilter {
  /** Target false-positive rate of the whole filter. */
  readonly fpr: number;
  readonly #layers: BloomFilter[];
  /** Index of the layer adds go to: the oldest one not yet full. */
  #active: number;
  #count: number;
  #capacity: number;

  private constructor(fpr: number, layers: BloomFilter[]) {
    this.fpr = fpr;
    this.#layers = layers;
    this.#count = 0;
    this.#capacity = 0;
    for (const layer of layers) {
      this.#count += layer.count;
      this.#capacity += layer.capacity;
    }
    this.#active = 0;
    this.#advance();
  }

  /**
   * @param capacity keys expected; the filter grows past it, at some memory cost.
   * @param fpr target false-positive rate. @default 0.001
   */
  static create(capacity: number, fpr: number = DEFAULT_FPR): KeyFilter {
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`capacity\` to be an integer from 0 and up, got ${describeValue(capacity)}`);
    }
    if (typeof fpr !== 'number' || !(fpr >= MIN_KEY_FILTER_FPR && fpr <= 0.5)) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`fpr\` to be a number from ${MIN_KEY_FILTER_FPR} to 0.5, got ${describeValue(fpr)}`);
    }
    return new KeyFilter(fpr, [BloomFilter.forCapacity(Math.max(capacity, MIN_LAYER_CAPACITY), layerFpr(fpr, 0))]);
  }

  /** Number of adds across all layers. */
  get count(): number {
    return this.#count;
  }

  /** Keys the filter holds at or under its target FPR (sum of layer capacities). */
  get capacity(): number {
    return this.#capacity;
  }

  /** Number of layers. */
  get layers(): number {
    return this.#layers.length;
  }

  /** Bytes of filter bits (the snapshot adds a small header). */
  get byteLength(): number {
    let n = 0;
    for (const layer of this.#layers) n += layer.byteLength;
    return n;
  }

  add(h1: number, h2: number): void {
    let layer = this.#layers[this.#active]!;
    if (layer.count >= layer.capacity) {
      this.#advance();
      if (this.#active === this.#layers.length) this.#grow(1);
      layer = this.#layers[this.#active]!;
    }
    layer.add(h1, h2);
    this.#count++;
  }

  mightContain(h1: number, h2: number): boolean {
    const layers = this.#layers;
    for (let i = 0; i < layers.length; i++) {
      if (layers[i]!.mightContain(h1, h2)) return true;
    }
    return false;
  }

  /**
   * Makes room for `totalExpectedKeys` keys in all (those already added included), so that adds
   * up to that total keep the filter within its FPR. Returns true when it added a layer.
   */
  ensureCapacity(totalExpectedKeys: number): boolean {
    if (!Number.isSafeInteger(totalExpectedKeys) || totalExpectedKeys < 0) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`totalExpectedKeys\` to be an integer from 0 and up, got ${describeValue(totalExpectedKeys)}`);
    }
    if (totalExpectedKeys <= this.#capacity) return false;
    this.#grow(totalExpectedKeys - this.#capacity);
    return true;
  }

  /** Moves #active to the oldest layer with room, or to layers.length when all are full. */
  #advance(): void {
    const layers = this.#layers;
    let i = this.#active;
    while (i < layers.length && layers[i]!.count >= layers[i]!.capacity) i++;
    this.#active = i;
  }

  #grow(shortfall: number): void {
    const layers = this.#layers;
    if (layers.length >= MAX_LAYERS) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected the key filter to need at most ${MAX_LAYERS} layers, got a request for one more`);
    }
    const last = layers[layers.length - 1]!;
    const capacity = Math.max(shortfall, 2 * last.capacity, MIN_LAYER_CAPACITY);
    layers.push(BloomFilter.forCapacity(capacity, layerFpr(this.fpr, layers.length)));
    this.#capacity += capacity;
    this.#advance();
  }

  /**
   * A snapshot: header (magic, format version, HASH_VERSION, block size, fpr, each layer's
   * capacity, count, fpr, k and blocks), the layers' bits, and a CRC-32 of all of it. A flipped
   * bit in the payload would be a silent false negative, hence the checksum.
   */
  toBuffer(): Buffer {
    const layers = this.#layers;
    const headerBytes = HEADER_BYTES + LAYER_BYTES * layers.length;
    let total = headerBytes + CRC_BYTES;
    for (const layer of layers) total += layer.byteLength;
    const buf = Buffer.alloc(total);
    buf.write(MAGIC, 0, 'latin1');
    buf.writeUInt16LE(FORMAT_VERSION, 4);
    buf.writeUInt16LE(HASH_VERSION, 6);
    buf.writeUInt32LE(BLOCK_BITS, 8);
    buf.writeUInt32LE(layers.length, 12);
    buf.writeDoubleLE(this.fpr, 16);
    let off = HEADER_BYTES;
    for (const layer of layers) {
      buf.writeDoubleLE(layer.capacity, off);
      buf.writeDoubleLE(layer.count, off + 8);
      buf.writeDoubleLE(layer.fpr, off + 16);
      buf.writeUInt32LE(layer.k, off + 24);
      buf.writeUInt32LE(layer.blocks, off + 28);
      off += LAYER_BYTES;
    }
    for (const layer of layers) {
      writeWordsLE(layer.words, buf, off);
      off += layer.byteLength;
    }
    buf.writeUInt32LE(crc32(buf.subarray(0, off)), off);
    return buf;
  }

  /** Loads a {@link toBuffer} snapshot; throws `OPTOUT_ERR_STORE_CORRUPT` on any mismatch. */
  static fromBuffer(buf: Uint8Array): KeyFilter {
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (b.length < HEADER_BYTES + CRC_BYTES) corrupt(`it is ${b.length} bytes, shorter than a header`);
    if (b.toString('latin1', 0, 4) !== MAGIC) corrupt('it does not start with the key filter magic');
    const format = b.readUInt16LE(4);
    if (format !== FORMAT_VERSION) corrupt(`format version ${format}, expected ${FORMAT_VERSION}`);
    const hashVersion = b.readUInt16LE(6);
    if (hashVersion !== HASH_VERSION) corrupt(`hash version ${hashVersion}, expected ${HASH_VERSION}`);
    const blockBits = b.readUInt32LE(8);
    if (blockBits !== BLOCK_BITS) corrupt(`block size ${blockBits} bits, expected ${BLOCK_BITS}`);
    const layerCount = b.readUInt32LE(12);
    if (layerCount < 1 || layerCount > MAX_LAYERS) corrupt(`${layerCount} layers, expected 1 to ${MAX_LAYERS}`);
    const headerBytes = HEADER_BYTES + LAYER_BYTES * layerCount;
    if (b.length < headerBytes + CRC_BYTES) corrupt(`it is ${b.length} bytes, shorter than its layer table`);
    const fpr = b.readDoubleLE(16);
    if (!(fpr >= MIN_KEY_FILTER_FPR && fpr <= 0.5)) corrupt(`fpr ${fpr} out of range`);

    const params: { p: BloomParams; count: number }[] = [];
    let expected = headerBytes + CRC_BYTES;
    for (let i = 0, off = HEADER_BYTES; i < layerCount; i++, off += LAYER_BYTES) {
      const capacity = b.readDoubleLE(off);
      const count = b.readDoubleLE(off + 8);
      const lFpr = b.readDoubleLE(off + 16);
      const k = b.readUInt32LE(off + 24);
      const blocks = b.readUInt32LE(off + 28);
      if (!Number.isSafeInteger(capacity) || capacity < 1) corrupt(`layer ${i} capacity ${capacity}`);
      if (!Number.isSafeInteger(count) || count < 0 || count > capacity) corrupt(`layer ${i} count ${count}`);
      if (!(lFpr > 0 && lFpr <= fpr)) corrupt(`layer ${i} fpr ${lFpr}`);
      if (k < 1 || k > MAX_K) corrupt(`layer ${i} k ${k}`);
      if (blocks < 1 || blocks > MAX_BLOCKS) corrupt(`layer ${i} blocks ${blocks}`);
      params.push({ p: { capacity, fpr: lFpr, k, blocks }, count });
      expected += blocks * BLOCK_BYTES;
    }
    if (b.length !== expected) corrupt(`it is ${b.length} bytes, its header describes ${expected}`);
    const crcAt = expected - CRC_BYTES;
    if (crc32(b.subarray(0, crcAt)) !== b.readUInt32LE(crcAt)) corrupt('checksum mismatch');

    const layers: BloomFilter[] = [];
    let off = headerBytes;
    for (const { p, count } of params) {
      const words = readWordsLE(b, off, p.blocks * BLOCK_WORDS);
      off += p.blocks * BLOCK_BYTES;
      layers.push(new BloomFilter(p, words, count));
    }
    return new KeyFilter(fpr, layers);
  }
}

const MAGIC = 'OOKF';
/** 2: the block comes from h2 (version 1 took it from h1); older snapshots are rebuilt. */
const FORMAT_VERSION = 2;
const HEADER_BYTES = 24;
const LAYER_BYTES = 32;
const CRC_BYTES = 4;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function corrupt(detail: string): never {
  throw new OptoutError('OPTOUT_ERR_STORE_CORRUPT', `Key filter snapshot rejected: ${detail}`);
}

/** Writes `words` at `off` as little-endian bytes, the byte order of every persisted format. */
export function writeWordsLE(words: Uint32Array, buf: Buffer, off: number): void {
  if (LITTLE_ENDIAN) {
    buf.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), off);
    return;
  }
  for (let i = 0; i < words.length; i++) buf.writeUInt32LE(words[i]!, off + 4 * i);
}

/** A copy of `length` little-endian words read from `off`. */
export function readWordsLE(buf: Buffer, off: number, length: number): Uint32Array {
  const words = new Uint32Array(length);
  if (LITTLE_ENDIAN) {
    // A copy, not a view: the snapshot buffer may be unaligned or pooled.
    new Uint8Array(words.buffer).set(buf.subarray(off, off + length * 4));
    return words;
  }
  for (let i = 0; i < length; i++) words[i] = buf.readUInt32LE(off + 4 * i);
  return words;
}
