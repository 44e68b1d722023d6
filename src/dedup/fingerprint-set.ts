/**
 * A set of 96-bit key fingerprints (hashKey's h1, h2, h3), for counting the distinct keys of a
 * file in one pass: 12 bytes per slot in one Uint32Array instead of a JS Set of strings (~130
 * bytes per key). Two distinct keys collide with probability ~2^-96 per pair, negligible for any
 * file size.
 *
 * Open addressing, linear probing, power-of-two table; an all-zero slot is empty, so the one
 * fingerprint that is all zeros is kept in a flag instead of the table.
 */
import { OptoutError, describeValue } from '../errors.js';

const MAX_LOAD = 0.7;
const MIN_SLOTS = 16;
/** 2^28 slots = 3 GiB: the largest table worth allocating; beyond it, fail clearly. */
const MAX_SLOTS = 2 ** 28;

export class FingerprintSet {
  #table: Uint32Array;
  #mask: number;
  #size = 0;
  #hasZero = false;
  /** Table entries (excluding the zero fingerprint) at which the table doubles. */
  #growAt: number;

  /** @param expectedSize distinct fingerprints to presize for, avoiding rehashes. @default 0 */
  constructor(expectedSize = 0) {
    if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected \`expectedSize\` to be an integer from 0 and up, got ${describeValue(expectedSize)}`);
    }
    let slots = MIN_SLOTS;
    while (slots * MAX_LOAD < expectedSize && slots < MAX_SLOTS) slots *= 2;
    this.#table = new Uint32Array(slots * 3);
    this.#mask = slots - 1;
    this.#growAt = Math.floor(slots * MAX_LOAD);
  }

  /** Number of distinct fingerprints. */
  get size(): number {
    return this.#size;
  }

  /** Bytes held by the table. */
  get byteLength(): number {
    return this.#table.byteLength;
  }

  /** Adds the fingerprint; true when it was not in the set yet. */
  add(h1: number, h2: number, h3: number): boolean {
    h1 >>>= 0;
    h2 >>>= 0;
    h3 >>>= 0;
    if ((h1 | h2 | h3) === 0) {
      if (this.#hasZero) return false;
      this.#hasZero = true;
      this.#size++;
      return true;
    }
    const t = this.#table;
    const mask = this.#mask;
    // h3 picks the slot: the bloom filter uses h1 and h2, so keys it selects are not clustered here.
    let slot = h3 & mask;
    for (;;) {
      const i = slot * 3;
      const a = t[i]!;
      const b = t[i + 1]!;
      const c = t[i + 2]!;
      if (a === h1 && b === h2 && c === h3) return false;
      if ((a | b | c) === 0) {
        t[i] = h1;
        t[i + 1] = h2;
        t[i + 2] = h3;
        this.#size++;
        if (this.#size - (this.#hasZero ? 1 : 0) > this.#growAt) this.#grow();
        return true;
      }
      slot = (slot + 1) & mask;
    }
  }

  has(h1: number, h2: number, h3: number): boolean {
    h1 >>>= 0;
    h2 >>>= 0;
    h3 >>>= 0;
    if ((h1 | h2 | h3) === 0) return this.#hasZero;
    const t = this.#table;
    const mask = this.#mask;
    let slot = h3 & mask;
    for (;;) {
      const i = slot * 3;
      const a = t[i]!;
      const b = t[i + 1]!;
      const c = t[i + 2]!;
      if (a === h1 && b === h2 && c === h3) return true;
      if ((a | b | c) === 0) return false;
      slot = (slot + 1) & mask;
    }
  }

  #grow(): void {
    const old = this.#table;
    const slots = (this.#mask + 1) * 2;
    if (slots > MAX_SLOTS) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
        `Expected at most ${Math.floor(MAX_SLOTS * MAX_LOAD)} distinct keys in a fingerprint set, got more`);
    }
    const t = new Uint32Array(slots * 3);
    const mask = slots - 1;
    for (let i = 0; i < old.length; i += 3) {
      const a = old[i]!;
      const b = old[i + 1]!;
      const c = old[i + 2]!;
      if ((a | b | c) === 0) continue;
      let slot = c & mask;
      while ((t[slot * 3]! | t[slot * 3 + 1]! | t[slot * 3 + 2]!) !== 0) slot = (slot + 1) & mask;
      t[slot * 3] = a;
      t[slot * 3 + 1] = b;
      t[slot * 3 + 2] = c;
    }
    this.#table = t;
    this.#mask = mask;
    this.#growAt = Math.floor(slots * MAX_LOAD);
  }
}
