/**
 * The key index: every stored entry in memory as its key's two 32-bit hashes (h1, h2: a 64-bit
 * fingerprint), per scope, with what a decision needs of the entry: its job and its own reason.
 * A check of a listed address then answers without LevelDB's `getSync`, which was ~60% of its
 * CPU (at ~2-3 us a lookup). 12 bytes a slot, at most 3/4 full: 16-32 bytes an entry.
 *
 * It never answers "absent" for a stored entry (the worst answer a check can give):
 * - the store applies every committed change to it (level-store.ts), and a build from a scan
 *   replays the changes committed while it ran;
 * - a slot that may stand for two entries with different answers, or for an entry that was
 *   removed, is *unsure*, and the check reads LevelDB. The index keeps no keys, so a removal
 *   cannot tell the entry it removes from another entry that shares its 64 bits;
 * - an address that is not stored but shares its 64 bits with a stored key of its scope is
 *   answered as that entry: "suppressed" where "eligible" was right, about once in 2^64 / n
 *   checks (n entries in the scope). The hashes are not cryptographic, but crafting such a pair
 *   takes storing one of its addresses, and whoever can opt out an address can opt out the other.
 */
import { SUPPRESSION_REASONS, type SuppressionReason } from '../jobs.js';
import type { EntryMatch } from '../store.js';
import { decodeEntryValue } from './keys.js';

/** {@link KeyIndex.match}'s answer for a slot it cannot vouch for: read the store. */
export const UNSURE = 'unsure';

const EMPTY = 0;
const UNSURE_SLOT = 0xffffffff;
// A slot's value: (job's index + 1) * 8 + reason code (0: the job's reason). The largest value
// below UNSURE_SLOT leaves room for 2^29 - 2 distinct jobs; past that, slots are unsure.
const REASON_CODES = 8;
const MAX_JOBS = Math.floor(UNSURE_SLOT / REASON_CODES) - 1;
const MIN_CAPACITY = 1024;

function reasonCode(reason: string | undefined): number {
  if (reason === undefined) return 0;
  const i = SUPPRESSION_REASONS.indexOf(reason as SuppressionReason);
  return i < 0 ? -1 : i + 1;
}

/** A power of two with room for `entries` at most 3/4 full. */
function capacityFor(entries: number): number {
  let cap = MIN_CAPACITY;
  while (cap * 0.75 < entries) cap *= 2;
  return cap;
}

/**
 * One scope's open-addressing table with linear probing, its slots interleaved (h1, h2, value)
 * so that a probe reads one cache line.
 */
class ScopeTable {
  #slots: Uint32Array;
  #mask: number;
  #size = 0;

  constructor(expected: number) {
    const cap = capacityFor(expected);
    this.#slots = new Uint32Array(cap * 3);
    this.#mask = cap - 1;
  }

  /** A table over saved slots (see {@link KeyIndex.fromSaved}); undefined when they cannot be one. */
  static fromSlots(slots: Uint32Array, size: number): ScopeTable | undefined {
    const cap = slots.length / 3;
    if (!Number.isInteger(cap) || cap < MIN_CAPACITY || (cap & (cap - 1)) !== 0 || !Number.isSafeInteger(size) || size < 0 || size > cap * 0.75) return undefined;
    const t = new ScopeTable(0);
    t.#slots = slots;
    t.#mask = cap - 1;
    t.#size = size;
    return t;
  }

  get slots(): Uint32Array {
    return this.#slots;
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    return this.#slots.byteLength;
  }

  /** The value of the slot of (h1, h2), or EMPTY. */
  find(h1: number, h2: number): number {
    const s = this.#slots;
    const mask = this.#mask;
    for (let i = h2 & mask; ; i = (i + 1) & mask) {
      const v = s[3 * i + 2] as number;
      if (v === EMPTY) return EMPTY;
      if (s[3 * i] === h1 && s[3 * i + 1] === h2) return v;
    }
  }

  /** Stores `value` for (h1, h2); a slot that already holds another value becomes unsure. */
  put(h1: number, h2: number, value: number): void {
    const s = this.#slots;
    const mask = this.#mask;
    for (let i = h2 & mask; ; i = (i + 1) & mask) {
      const at = 3 * i;
      const v = s[at + 2] as number;
      if (v === EMPTY) {
        s[at] = h1;
        s[at + 1] = h2;
        s[at + 2] = value;
        if (++this.#size > (this.#mask + 1) * 0.75) this.#grow();
        return;
      }
      if (s[at] === h1 && s[at + 1] === h2) {
        if (v !== value) s[at + 2] = UNSURE_SLOT;
        return;
      }
    }
  }

  /** Makes the slot of (h1, h2) unsure, when there is one: it may stand for another entry too. */
  remove(h1: number, h2: number): void {
    const s = this.#slots;
    const mask = this.#mask;
    for (let i = h2 & mask; ; i = (i + 1) & mask) {
      const at = 3 * i;
      const v = s[at + 2] as number;
      if (v === EMPTY) return;
      if (s[at] === h1 && s[at + 1] === h2) {
        s[at + 2] = UNSURE_SLOT;
        return;
      }
    }
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#mask = this.#mask * 2 + 1;
    this.#size = 0;
    for (let at = 0; at < old.length; at += 3) {
      const v = old[at + 2] as number;
      if (v !== EMPTY) this.put(old[at] as number, old[at + 1] as number, v);
    }
  }
}

/** Every stored entry's fingerprint, per scope. Not safe to share between stores. */
export class KeyIndex {
  readonly #tables = new Map<string, ScopeTable>();
  readonly #jobIds: string[] = [];
  readonly #jobIndex = new Map<string, number>();
  readonly #sizes: ReadonlyMap<string, number>;
  // The last stored value decoded: an import's entries mostly share theirs.
  #lastStored: string | undefined;
  #lastValue = UNSURE_SLOT;

  /** @param sizes the expected entries per scope, so that the tables need not grow */
  constructor(sizes: ReadonlyMap<string, number> = new Map()) {
    this.#sizes = sizes;
  }

  /** What {@link fromSaved} takes back: the job ids, and each scope's slots as they are in memory. */
  saved(): SavedKeyIndex {
    return { jobIds: [...this.#jobIds], tables: [...this.#tables].map(([scope, t]) => ({ scope, size: t.size, slots: t.slots })) };
  }

  /** An index over what {@link saved} gave (its slots are used, not copied); undefined when it is not sound. */
  static fromSaved(saved: SavedKeyIndex, sizes?: ReadonlyMap<string, number>): KeyIndex | undefined {
    const index = new KeyIndex(sizes);
    if (new Set(saved.jobIds).size !== saved.jobIds.length || saved.jobIds.length > MAX_JOBS) return undefined;
    saved.jobIds.forEach((id, i) => {
      index.#jobIds.push(id);
      index.#jobIndex.set(id, i);
    });
    for (const { scope, size, slots } of saved.tables) {
      const table = ScopeTable.fromSlots(slots, size);
      if (table === undefined || index.#tables.has(scope)) return undefined;
      index.#tables.set(scope, table);
    }
    return index;
  }

  /** The entry of (h1, h2) in `scope`; undefined when none is stored; {@link UNSURE} to read the store. */
  match(scope: string, h1: number, h2: number): EntryMatch | undefined | typeof UNSURE {
    const table = this.#tables.get(scope);
    if (table === undefined) return undefined;
    const v = table.find(h1, h2);
    if (v === EMPTY) return undefined;
    if (v === UNSURE_SLOT) return UNSURE;
    const jobId = this.#jobIds[Math.floor(v / REASON_CODES) - 1] as string;
    const code = v % REASON_CODES;
    return code === 0 ? { jobId } : { jobId, reason: SUPPRESSION_REASONS[code - 1] as SuppressionReason };
  }

  /** Records a stored entry: its job and, when it has one, its own reason. */
  put(scope: string, h1: number, h2: number, jobId: string, reason: string | undefined): void {
    this.#table(scope).put(h1, h2, this.#valueOf(jobId, reason));
  }

  /** Records an entry's value as LevelDB holds it (see keys.ts). */
  putStored(scope: string, h1: number, h2: number, value: string): void {
    if (value !== this.#lastStored) {
      const e = decodeEntryValue(value);
      this.#lastValue = this.#valueOf(e.jobId, e.reason);
      this.#lastStored = value;
    }
    this.#table(scope).put(h1, h2, this.#lastValue);
  }

  /** Records the removal of an entry (see the module's comment: its slot becomes unsure). */
  remove(scope: string, h1: number, h2: number): void {
    this.#tables.get(scope)?.remove(h1, h2);
  }

  /** Applies committed changes, in the order they were recorded. */
  apply(changes: KeyIndexChanges): void {
    changes.applyTo(this);
  }

  /** Slots in use, unsure ones included. */
  get size(): number {
    let n = 0;
    for (const t of this.#tables.values()) n += t.size;
    return n;
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.#tables.values()) n += t.bytes;
    return n;
  }

  #table(scope: string): ScopeTable {
    let t = this.#tables.get(scope);
    if (t === undefined) {
      t = new ScopeTable(this.#sizes.get(scope) ?? 0);
      this.#tables.set(scope, t);
    }
    return t;
  }

  #valueOf(jobId: string, reason: string | undefined): number {
    const code = reasonCode(reason);
    let job = this.#jobIndex.get(jobId);
    if (job === undefined) {
      if (this.#jobIds.length >= MAX_JOBS || code < 0) return UNSURE_SLOT;
      job = this.#jobIds.length;
      this.#jobIds.push(jobId);
      this.#jobIndex.set(jobId, job);
    }
    return code < 0 ? UNSURE_SLOT : (job + 1) * REASON_CODES + code;
  }
}

/** A key index as {@link KeyIndex.saved} gives it. */
export interface SavedKeyIndex {
  jobIds: string[];
  tables: Array<{ scope: string; size: number; slots: Uint32Array }>;
}

/**
 * The entries one store batch puts and removes, recorded as the batch is built and applied to
 * the index once it has committed. A value is kept as written (a string, or an import chunk's
 * bytes of its job id, shared by the chunk's entries) and decoded only when applied.
 */
export class KeyIndexChanges {
  #hashes = new Uint32Array(256);
  readonly #scopes: string[] = [];
  // Undefined for a removal.
  readonly #values: Array<string | Uint8Array | undefined> = [];

  put(scope: string, h1: number, h2: number, value: string | Uint8Array): void {
    this.#push(scope, h1, h2, value);
  }

  remove(scope: string, h1: number, h2: number): void {
    this.#push(scope, h1, h2, undefined);
  }

  get count(): number {
    return this.#scopes.length;
  }

  /** @internal */
  applyTo(index: KeyIndex): void {
    const h = this.#hashes;
    let lastBytes: Uint8Array | undefined;
    let lastValue = '';
    for (let i = 0; i < this.#scopes.length; i++) {
      const scope = this.#scopes[i] as string;
      const value = this.#values[i];
      if (value === undefined) {
        index.remove(scope, h[2 * i] as number, h[2 * i + 1] as number);
        continue;
      }
      let text: string;
      if (typeof value === 'string') {
        text = value;
      } else {
        if (value !== lastBytes) {
          lastBytes = value;
          lastValue = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8');
        }
        text = lastValue;
      }
      index.putStored(scope, h[2 * i] as number, h[2 * i + 1] as number, text);
    }
  }

  #push(scope: string, h1: number, h2: number, value: string | Uint8Array | undefined): void {
    const n = this.#scopes.length;
    if (2 * n === this.#hashes.length) {
      const next = new Uint32Array(this.#hashes.length * 2);
      next.set(this.#hashes);
      this.#hashes = next;
    }
    this.#hashes[2 * n] = h1;
    this.#hashes[2 * n + 1] = h2;
    this.#scopes.push(scope);
    this.#values.push(value);
  }
}
