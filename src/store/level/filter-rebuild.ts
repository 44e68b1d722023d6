/**
 * Loading the key filter when a store opens, from the cheapest source that is proven to cover
 * every stored key (design.md, invariant 1):
 *
 * 1. `snapshot`: `filter.snapshot` names the store's current generation (and its token: see
 *    filter-log.ts; a snapshot whose token is not the one of its generation here is ignored).
 * 2. `replay`: the snapshot names an older generation G, and the filter log holds a sound record
 *    for every generation after G up to the current one. Every batch that adds entries bumps the
 *    generation and writes that generation's record, atomically; so the snapshot (every key up to
 *    G) plus those records (every key added since) covers every key. This is the start after a
 *    killed import or server: it saved no snapshot, but each batch it wrote has its record.
 * 3. `log`: no usable snapshot; the records of every generation from the first are all there.
 * 4. `scan`: the log has a gap (a store written by a version without it, or a damaged record):
 *    every entry key is read and hashed.
 *
 * Measured at 10M entries on 2 cores (`npm run bench:startup`): the snapshot loads in ~0.25 s;
 * the log is 80 MB and replays in ~1.1 s; the scan takes ~5 s even with the reads spread over
 * several iterators (~8.5 s with one), because classic-level hands each key over as its own
 * JavaScript string (~0.4 us a key on the main thread, plus the LevelDB work and the hashing):
 * a scan alone could not start a server within 5 s on this machine.
 */
import type { ClassicLevel } from 'classic-level';
import type { KeyFilter } from '../../filter/bloom.js';
import { hashKey } from '../../filter/hash.js';
import { NO_TOKEN, decodeFilterLogRecord } from './filter-log.js';
import { readFilterSnapshot } from './filter-snapshot.js';
import { entryKeyPrefix, entryKeyStart, entryRange, filterLogGeneration, filterLogKey } from './keys.js';

export type FilterSource = 'snapshot' | 'replay' | 'log' | 'scan';

export interface LoadedFilter {
  filter: KeyFilter;
  source: FilterSource;
}

type Db = ClassicLevel<string, string>;

/** Records read at once; a record is ~8 bytes a key of its batch (~80 kB for an import's). */
const LOG_RECORDS_PER_READ = 64;
/** Iterators reading the log at once. */
const LOG_READERS = 2;
/** Enough for LOG_RECORDS_PER_READ import records: classic-level stops a read at this many bytes. */
const LOG_READ_BYTES = 8 * 1024 * 1024;
/** Keys per read of the scan; its byte limit (default 16 KiB) would otherwise cut reads to ~500 keys. */
const SCAN_KEYS_PER_READ = 10_000;
const SCAN_READ_BYTES = 1024 * 1024;
/**
 * Iterators read at once during a scan. LevelDB's reads run on libuv's thread pool (4 threads by
 * default), so several iterators overlap them with the work on the main thread: measured at 10M
 * keys, one iterator ~8.5 s, two to eight ~5 s.
 */
const SCAN_PARALLEL = 4;
/** Ranges per scope for the scan: by the first hex digit of the hash part, so evenly filled. */
const HEX_DIGITS = '0123456789abcdef';
/** Pairs staged before they are added in block order (16 MB of buffers). */
const STAGE_PAIRS = 1 << 20;
const REGION_BITS = 10;

/**
 * Adds hash pairs to a filter in batches ordered by block. A filter of 10M keys is ~34 MB, and
 * adds in arrival order each miss the cache and the TLB; ordered by the top bits of h2 (the
 * block index grows with h2, in every layer), each batch sweeps the filter from one end to the
 * other instead. Measured with 10M pairs: ~2.5 s of CPU in arrival order, ~0.75 s ordered.
 * Nothing is in the filter until {@link flush}.
 */
export class BlockOrderedAdds {
  readonly #filter: KeyFilter;
  readonly #staged = new Uint32Array(2 * STAGE_PAIRS);
  readonly #ordered = new Uint32Array(2 * STAGE_PAIRS);
  readonly #starts = new Uint32Array((1 << REGION_BITS) + 1);
  #n = 0;

  constructor(filter: KeyFilter) {
    this.#filter = filter;
  }

  add(h1: number, h2: number): void {
    this.#staged[2 * this.#n] = h1;
    this.#staged[2 * this.#n + 1] = h2;
    if (++this.#n === STAGE_PAIRS) this.flush();
  }

  /** Adds every staged pair to the filter. */
  flush(): void {
    const n = this.#n;
    const staged = this.#staged;
    const ordered = this.#ordered;
    const starts = this.#starts;
    const shift = 32 - REGION_BITS;
    // A counting sort on the top bits of h2: one pass to count, one to place.
    starts.fill(0);
    for (let i = 1; i < 2 * n; i += 2) {
      const r = ((staged[i] as number) >>> shift) + 1;
      starts[r] = (starts[r] as number) + 1;
    }
    for (let r = 1; r < starts.length; r++) starts[r] = (starts[r] as number) + (starts[r - 1] as number);
    for (let i = 0; i < 2 * n; i += 2) {
      const h2 = staged[i + 1] as number;
      const r = h2 >>> shift;
      const at = 2 * (starts[r] as number);
      starts[r] = (starts[r] as number) + 1;
      ordered[at] = staged[i] as number;
      ordered[at + 1] = h2;
    }
    const filter = this.#filter;
    for (let i = 0; i < 2 * n; i += 2) filter.add(ordered[i] as number, ordered[i + 1] as number);
    this.#n = 0;
  }
}

/**
 * @param generation the store's current generation.
 * @param create a new, empty filter sized for the store.
 * @param scopes the scopes the store counts entries for; only a hint to spread a scan evenly
 *   (every entry is read whatever it holds).
 */
export async function loadKeyFilter(db: Db, dir: string, generation: number, create: () => KeyFilter,
  scopes: Iterable<string>): Promise<LoadedFilter> {
  const read = readFilterSnapshot(dir);
  // A snapshot from a later generation than the store's, or whose token is not that of its
  // generation here, is from another history: it proves nothing about this one.
  const snapshot = read !== undefined && read.generation <= generation && read.token === await generationToken(db, read.generation)
    ? read : undefined;
  if (snapshot !== undefined && snapshot.generation === generation) return { filter: snapshot.filter, source: 'snapshot' };
  if (snapshot !== undefined && await replayFilterLog(db, snapshot.filter, snapshot.generation, generation)) {
    return { filter: snapshot.filter, source: 'replay' };
  }
  const fromLog = create();
  if (await replayFilterLog(db, fromLog, 0, generation)) return { filter: fromLog, source: 'log' };
  const scanned = create();
  await scanEntryKeys(db, scanned, scopes);
  return { filter: scanned, source: 'scan' };
}

/**
 * The token a snapshot of `generation` must carry: its log record's, or {@link NO_TOKEN} for
 * generation 0 and for a generation without a record (a store older than the log). Undefined
 * when the record is damaged: no snapshot can then be proven to be of this store.
 */
export async function generationToken(db: Db, generation: number): Promise<string | undefined> {
  if (generation === 0) return NO_TOKEN;
  const record = await db.get<string, Buffer>(filterLogKey(generation), { valueEncoding: 'buffer' });
  return record === undefined ? NO_TOKEN : decodeFilterLogRecord(record)?.token;
}

/**
 * Adds the records of generations `after + 1` to `through` to `filter`. False when any of them
 * is missing or unsound: the filter then proves nothing and must be dropped (it may hold some of
 * the records' keys, never fewer than before).
 */
export async function replayFilterLog(db: Db, filter: KeyFilter, after: number, through: number): Promise<boolean> {
  if (through <= after) return through === after;
  const adds = new BlockOrderedAdds(filter);
  // Consecutive spans of generations, each read by its own iterator: while one waits for
  // LevelDB on the thread pool, the main thread adds what another has read.
  const span = through - after;
  const parts = Math.min(LOG_READERS, span);
  const bounds = Array.from({ length: parts + 1 }, (_, i) => after + Math.floor((span * i) / parts));
  // The first span found incomplete stops the others: the whole replay is lost anyway.
  const state = { failed: false };
  const complete = await Promise.all(bounds.slice(1).map((end, i) => replaySpan(db, adds, bounds[i] as number, end, state)));
  if (!complete.every(Boolean)) return false;
  adds.flush();
  return true;
}

/** Stages the records of `after + 1` to `through`; false unless each one is there and sound. */
async function replaySpan(db: Db, adds: BlockOrderedAdds, after: number, through: number, state: { failed: boolean }): Promise<boolean> {
  let expected = after + 1;
  const it = db.iterator<string, Buffer>({
    gte: filterLogKey(expected), lte: filterLogKey(through),
    keyEncoding: 'utf8', valueEncoding: 'buffer', fillCache: false, highWaterMarkBytes: LOG_READ_BYTES,
  });
  try {
    for (;;) {
      const records = await it.nextv(LOG_RECORDS_PER_READ);
      if (records.length === 0 || state.failed) break;
      for (const [key, value] of records) {
        const pairs = filterLogGeneration(key) === expected ? decodeFilterLogRecord(value)?.pairs : undefined;
        if (pairs === undefined) {
          state.failed = true;
          return false;
        }
        for (let i = 0; i < pairs.length; i += 2) adds.add(pairs[i] as number, pairs[i + 1] as number);
        expected++;
      }
    }
  } finally {
    await it.close();
  }
  if (expected !== through + 1) state.failed = true;
  return !state.failed;
}

/**
 * Adds every entry key of the store to `filter`, reading the whole entry range in contiguous
 * pieces: the pieces' bounds come from `scopes`, but together they always span all of it.
 */
export async function scanEntryKeys(db: Db, filter: KeyFilter, scopes: Iterable<string>): Promise<void> {
  const ranges = scanRanges(scopes);
  const hashes = new Uint32Array(3);
  const adds = new BlockOrderedAdds(filter);
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < ranges.length) {
      const range = ranges[next++] as { gt: string; lt: string };
      const it = db.keys({ ...range, fillCache: false, highWaterMarkBytes: SCAN_READ_BYTES });
      try {
        for (;;) {
          const keys = await it.nextv(SCAN_KEYS_PER_READ);
          if (keys.length === 0) break;
          for (let i = 0; i < keys.length; i++) {
            const dbKey = keys[i] as string;
            hashKey(dbKey, hashes, 0, entryKeyStart(dbKey));
            adds.add(hashes[0] as number, hashes[1] as number);
          }
        }
      } finally {
        await it.close();
      }
    }
  };
  await Promise.all(Array.from({ length: SCAN_PARALLEL }, reader));
  adds.flush();
}

/**
 * Contiguous ranges from the start of the entry range to its end: each one ends where the next
 * begins, so no key can fall between two of them, whatever the scopes really are. A key equal to
 * a bound belongs to the range that starts there (`gt` would skip it, hence the first bound only
 * uses `gt`, on the entry range's own exclusive start).
 */
export function scanRanges(scopes: Iterable<string>): Array<{ gt: string; lt: string } | { gte: string; lt: string }> {
  const { gt: first, lt: last } = entryRange();
  const bounds = new Set<string>();
  for (const scope of scopes) {
    const prefix = entryKeyPrefix(scope);
    for (const digit of HEX_DIGITS.slice(1)) bounds.add(prefix + digit);
  }
  // In LevelDB's order (bytes of UTF-8), which JavaScript's string order matches only for ASCII.
  const sorted = [...bounds].filter((b) => b > first && b < last)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const starts = [first, ...sorted];
  const ends = [...sorted, last];
  return starts.map((start, i) => (i === 0 ? { gt: start, lt: ends[i] as string } : { gte: start, lt: ends[i] as string }));
}
