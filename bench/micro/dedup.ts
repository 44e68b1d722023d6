/**
 * Micro benchmarks of the dedup core against `bloom-filters` 3.0.4 (design.md: ~80k adds/s at
 * 10M keys, the figure that ruled it out).
 *
 * Each task call does {@link DEDUP_OPS_PER_CALL} operations: one of ours costs 50-500 ns, below
 * what a per-call timer resolves, so ops/s = DEDUP_OPS_PER_CALL / mean call latency.
 * Inputs cycle through pools of precomputed hashes in random (hash) order, so filter probes miss
 * the cache the way real traffic does. Setup is lazy (first task run) and costs ~9 s of CPU:
 * two 10M-key filters are filled with 10M real hashed keys, ~270 MB RSS in all.
 */
import type { Bench } from 'tinybench';
import bloomFilters from 'bloom-filters';
import { BloomFilter, KeyFilter } from '../../src/filter/bloom.js';
import { hashKey } from '../../src/filter/hash.js';

export const DEDUP_OPS_PER_CALL = 1024;

const BIG = 10_000_000;
/**
 * bloom-filters adds take 10-30 us apiece here (two pure-JS 64-bit xxhash passes per key, then a
 * Set of indexes), so it gets a 1M-key filter with 100k keys in it: ~2 s of setup instead of
 * minutes. Its per-op cost is hashing, not memory, so the smaller size flatters it only slightly.
 */
const LIB_CAPACITY = 1_000_000;
const LIB_FILLED = 100_000;
/** Pool sizes are powers of two so that cycling is a mask. */
const HASH_POOL = 1 << 20;
const STRING_POOL = 1 << 16;

const rawPresentKey = (i: number): string => `user${i}.list${i % 9973}@example${i % 97}.com`;
// Timed tasks read keys made by toLowerCase(), as normalize's are: it returns flat strings, while
// a template literal gives a cons string that charCodeAt reads about 2x slower (sliced strings
// from substring() are similar). Same content, same hashes.
const presentKey = (i: number): string => rawPresentKey(i).toLowerCase();
const absentKey = (i: number): string => `other${i}.nobody${i % 7919}@example${i % 89}.org`.toLowerCase();

interface State {
  keys: string[];
  bloom: BloomFilter;
  bloomForAdds: BloomFilter;
  keyFilter: KeyFilter;
  /** h1, h2, h3 of keys in `bloom` and of keys not in it. */
  present: Uint32Array;
  absent: Uint32Array;
  absentKeys: string[];
  lib: InstanceType<typeof bloomFilters.BloomFilter>;
  libPresent: string[];
  libAbsent: string[];
}

let state: State | undefined;

function setup(): State {
  if (state !== undefined) return state;
  const h = new Uint32Array(3);
  const bloom = BloomFilter.forCapacity(BIG);
  const keyFilter = KeyFilter.create(BIG);
  const present = new Uint32Array(HASH_POOL * 3);
  // Every ~10th key goes to the query pool, so queries hit blocks all over the filter.
  const stride = Math.floor(BIG / HASH_POOL);
  for (let i = 0; i < BIG; i++) {
    hashKey(rawPresentKey(i), h, 0);
    bloom.add(h[0]!, h[1]!);
    keyFilter.add(h[0]!, h[1]!);
    const j = i / stride;
    if (i % stride === 0 && j < HASH_POOL) present.set(h, j * 3);
  }
  const absent = new Uint32Array(HASH_POOL * 3);
  for (let i = 0; i < HASH_POOL; i++) hashKey(absentKey(i), absent, i * 3);
  const absentKeys = Array.from({ length: STRING_POOL }, (_, i) => absentKey(i));

  const lib = bloomFilters.BloomFilter.create(LIB_CAPACITY, 0.001);
  const libPresent: string[] = [];
  for (let i = 0; i < LIB_FILLED; i++) {
    const k = presentKey(i);
    lib.add(k);
    if (i < STRING_POOL) libPresent.push(k);
  }
  state = {
    keys: Array.from({ length: STRING_POOL }, (_, i) => presentKey(i)),
    bloom,
    bloomForAdds: BloomFilter.forCapacity(BIG),
    keyFilter,
    present,
    absent,
    absentKeys,
    lib,
    libPresent,
    libAbsent: absentKeys,
  };
  return state;
}

export function registerDedupBenches(bench: Bench): void {
  // async: false, or tinybench calls each task once at add() time to detect it, running setup early.
  const opts = { async: false, beforeAll: () => void setup() };
  const n = DEDUP_OPS_PER_CALL;
  const out = new Uint32Array(n * 3);
  let cursor = 0;
  /** Next start index into a pool of `size` entries. */
  const next = (size: number): number => {
    const at = cursor & (size - 1);
    cursor = (cursor + n) | 0;
    return at;
  };
  let sink = 0;

  bench.add(`dedup: hashKey x${n}`, () => {
    const keys = setup().keys;
    const at = next(STRING_POOL);
    for (let i = 0; i < n; i++) hashKey(keys[(at + i) & (STRING_POOL - 1)]!, out, i * 3);
  }, opts);

  bench.add(`dedup: BloomFilter(10M) add x${n}`, () => {
    const { bloomForAdds: f, present: p } = setup();
    const at = next(HASH_POOL);
    for (let i = 0; i < n; i++) {
      const j = ((at + i) & (HASH_POOL - 1)) * 3;
      f.add(p[j]!, p[j + 1]!);
    }
  }, opts);

  for (const which of ['present', 'absent'] as const) {
    bench.add(`dedup: BloomFilter(10M, full) mightContain ${which} x${n}`, () => {
      const s = setup();
      const p = s[which];
      const f = s.bloom;
      const at = next(HASH_POOL);
      for (let i = 0; i < n; i++) {
        const j = ((at + i) & (HASH_POOL - 1)) * 3;
        if (f.mightContain(p[j]!, p[j + 1]!)) sink++;
      }
    }, opts);
  }

  // The check path one key at a time: hash, then ask the filter. Costs more than the two tasks
  // above added up (~250 vs ~120 ns here): the hashing between probes leaves the CPU no room to
  // overlap their cache misses, which the pre-hashed loops do. Batch callers should hash a whole
  // batch into a Uint32Array first, then probe.
  bench.add(`dedup: hashKey + KeyFilter(10M, full) mightContain absent x${n}`, () => {
    const { keyFilter: f, absentKeys: keys } = setup();
    const at = next(STRING_POOL);
    for (let i = 0; i < n; i++) {
      hashKey(keys[(at + i) & (STRING_POOL - 1)]!, out, 0);
      if (f.mightContain(out[0]!, out[1]!)) sink++;
    }
  }, opts);

  // bloom-filters hashes the string itself, so its figures include hashing (compare with the
  // hashKey + KeyFilter task above). Sized for 1M keys, not 10M: see LIB_CAPACITY.
  bench.add(`dedup: bloom-filters(1M) add x${n}`, () => {
    const { lib, absentKeys: keys } = setup();
    const at = next(STRING_POOL);
    for (let i = 0; i < n; i++) lib.add(keys[(at + i) & (STRING_POOL - 1)]!);
  }, opts);

  for (const which of ['libPresent', 'libAbsent'] as const) {
    bench.add(`dedup: bloom-filters(1M) has ${which === 'libPresent' ? 'present' : 'absent'} x${n}`, () => {
      const s = setup();
      const keys = s[which];
      const at = next(STRING_POOL);
      for (let i = 0; i < n; i++) if (s.lib.has(keys[(at + i) & (STRING_POOL - 1)]!)) sink++;
    }, opts);
  }

  bench.addEventListener('complete', () => {
    if (sink === -1) console.log(sink); // keeps the query results observable
  });
}
