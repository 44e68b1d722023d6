/**
 * The keys one chunk has added or now holds, found by hash and confirmed by string equality, so
 * that a hash collision can never make a new key look like a duplicate (which would drop an
 * opt-out). Cheaper than a `Set<string>`, which hashes every string a second time.
 */
export class ChunkKeyIndex {
  readonly #keys: readonly string[];
  readonly #hashes: Uint32Array;
  /** Row index + 1 per slot; 0 = empty. */
  readonly #slots: Int32Array;
  readonly #mask: number;

  /** @param keys the chunk's keys @param hashes three hashes per key, as the workers produce them */
  constructor(keys: readonly string[], hashes: Uint32Array) {
    let size = 16;
    while (size < keys.length * 2) size *= 2;
    this.#keys = keys;
    this.#hashes = hashes;
    this.#slots = new Int32Array(size);
    this.#mask = size - 1;
  }

  add(row: number): void {
    let slot = (this.#hashes[row * 3 + 2] as number) & this.#mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = row + 1;
  }

  has(key: string, h3: number): boolean {
    let slot = h3 & this.#mask;
    for (;;) {
      const v = this.#slots[slot] as number;
      if (v === 0) return false;
      if (this.#hashes[(v - 1) * 3 + 2] === h3 && this.#keys[v - 1] === key) return true;
      slot = (slot + 1) & this.#mask;
    }
  }
}
