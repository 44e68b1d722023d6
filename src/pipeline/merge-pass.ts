import type { KeyFilter } from '../filter/bloom.js';
import { throwIfAborted } from '../errors.js';
import type { BucketResult } from '../workers/chunk-task.js';
import type { ChunkPool } from '../workers/pool.js';
import { reasonOfCode } from '../csv/reasons.js';
import type { JobRecord, SuppressionReason } from '../store/jobs.js';
import { shiftAdded, type ChunkKeyCodec, type ChunkResult, type ChunkWriter, type Ledger } from '../store/store.js';
import type { BucketSpool } from './spool.js';
import type { ImportCounts } from '../store/counts.js';

export interface MergeOptions {
  spool: BucketSpool;
  pool: ChunkPool;
  store: Pick<Ledger, 'presentKeys' | 'beginChunk' | 'withWriteLock' | 'supports' | 'watchEmptyScope'>;
  /** The store's key filter; without one, every key is looked up in the ledger. */
  filter: KeyFilter | undefined;
  /** The ledger's chunk keys for the scope, built by the workers. */
  codec: ChunkKeyCodec;
  /** First bucket to process (a resumed import). */
  startBucket: number;
  /** Counts so far: rows, valid and invalid from reading, the rest from buckets done. */
  counts: ImportCounts;
  onBucket: (bucket: number, counts: ImportCounts) => void;
  signal: AbortSignal | undefined;
  /**
   * Gives the event loop back every this many keys while a bucket's batch is built (a server
   * answering checks during the import); without it a bucket is built in one go.
   */
  yieldEvery: number | undefined;
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Classified {
  result: BucketResult;
  keys: BucketKeys;
  /** Per distinct key: 1 when the scope already holds it. */
  present: Uint8Array;
}

/** A bucket's chunk keys, as the workers wrote them (UTF-8, end to end). */
class BucketKeys {
  readonly count: number;
  readonly #bytes: Buffer;
  readonly #ends: Uint32Array;

  constructor(r: BucketResult) {
    // Moved from a worker, the bytes arrive as a plain Uint8Array.
    this.#bytes = Buffer.from(r.keyBytes.buffer, r.keyBytes.byteOffset, r.keyBytes.length);
    this.#ends = r.keyEnds;
    this.count = r.keyEnds.length;
  }

  /** Key `i` as bytes, sharing the bucket's memory. */
  bytes(i: number): Uint8Array {
    const start = i === 0 ? 0 : (this.#ends[i - 1] as number);
    return new Uint8Array(this.#bytes.buffer, this.#bytes.byteOffset + start, (this.#ends[i] as number) - start);
  }

  /** Key `i` as a string: for look-ups, holds, and ledgers that take strings. */
  text(i: number): string {
    return this.#bytes.toString('utf8', i === 0 ? 0 : (this.#ends[i - 1] as number), this.#ends[i] as number);
  }
}

/** Dedups buckets in the worker pool, a few ahead of the one being settled, in bucket order. */
async function* dedupedBuckets(o: MergeOptions): AsyncGenerator<{ bucket: number; result: BucketResult }> {
  const ahead = Math.max(2, o.pool.threads * 2);
  const queue: Array<Promise<BucketResult>> = [];
  let next = o.startBucket;
  const fill = (): void => {
    while (queue.length < ahead && next < o.spool.buckets) {
      const p = o.pool.dedupBucket({ path: o.spool.path(next++), codec: o.codec });
      p.catch(() => undefined);
      queue.push(p);
    }
  };
  fill();
  for (let bucket = o.startBucket; bucket < o.spool.buckets; bucket++) {
    throwIfAborted(o.signal);
    const result = await (queue.shift() as Promise<BucketResult>);
    fill();
    yield { bucket, result };
  }
}

/** Splits a worker's joined parts back into strings. */
function splitParts(parts: readonly string[]): string[] {
  return parts.length === 1 ? (parts[0] as string).split('\n') : parts.flatMap((p) => p.split('\n'));
}

/**
 * Looks up, in the store, only the keys the filter may have seen. With `lookup` false every key
 * is taken as new: the writing pass on a ledger that settles each key at commit
 * (`supports.settlesChunks`), whose commit says how many it really stored, or on a scope that
 * held nothing but this import's own chunks (see `Ledger.watchEmptyScope`).
 */
async function classify(result: BucketResult, o: MergeOptions, lookup = true): Promise<Classified> {
  const keys = new BucketKeys(result);
  const n = keys.count;
  const present = new Uint8Array(n);
  if (!lookup) return { result, keys, present };
  const maybe: number[] = [];
  const h = result.hashes;
  for (let i = 0; i < n; i++) {
    if (o.filter === undefined || o.filter.mightContain(h[i * 3] as number, h[i * 3 + 1] as number)) maybe.push(i);
  }
  if (maybe.length > 0) {
    const found = await o.store.presentKeys(maybe.map((i) => keys.text(i)));
    maybe.forEach((i, j) => {
      present[i] = found[j] === true ? 1 : 0;
    });
  }
  return { result, keys, present };
}

function tally(counts: ImportCounts, c: Classified): number {
  const distinct = c.keys.count;
  const already = c.present.reduce((n, p) => n + p, 0);
  counts.duplicates += c.result.lines - distinct;
  counts.unique += distinct;
  counts.alreadySuppressed += already;
  counts.added += distinct - already;
  return distinct - already;
}

/** The confirmation's count: what a write would report, with nothing written. */
export async function countPass(o: MergeOptions): Promise<ImportCounts> {
  const counts = { ...o.counts };
  for await (const { bucket, result } of dedupedBuckets(o)) {
    tally(counts, await classify(result, o));
    o.onBucket(bucket, counts);
  }
  return counts;
}

/**
 * The writing phase: one atomic chunk per bucket with its new entries, the holds of keys the
 * scope already had, the per-scope counter and the job's checkpoint. While one batch
 * is written (on libuv's thread pool), the next bucket is classified; buckets hold disjoint
 * keys, so it cannot depend on the batch in flight. Batches are submitted in order, one at a
 * time, or as many as the store's `supports.chunksInFlight` (the store then commits them in order).
 */
export async function writeMergePass(o: MergeOptions, job: JobRecord, onDurable: (job: JobRecord) => void): Promise<JobRecord> {
  let counts = { ...o.counts };
  type Pending = { write: Promise<ChunkResult>; job: JobRecord; added: number };
  const inFlight: Pending[] = [];
  const most = Math.max(1, o.store.supports.chunksInFlight ?? 1);
  const shift = (j: JobRecord, delta: number): JobRecord => ({ ...j, checkpoint: { ...j.checkpoint, counts: shiftAdded(j.checkpoint.counts, delta) } });
  // A ledger that settles keys at commit may store fewer keys than classified (another writer
  // raced this one, or, unasked, the scope already held them) or more; it wrote the corrected
  // checkpoint, and the tally follows it, as do the checkpoints of the chunks submitted after
  // it (their counts include its own; the ledger corrects them the same way).
  const settle = async (): Promise<void> => {
    const pending = inFlight[0] as Pending;
    const result = await pending.write;
    inFlight.shift();
    const delta = result.applied ? result.added - pending.added : 0;
    if (delta !== 0) {
      counts = shiftAdded(counts, delta);
      for (const p of [pending, ...inFlight]) {
        const current = job === p.job;
        p.job = shift(p.job, delta);
        if (current) job = p.job;
      }
    }
    onDurable(pending.job);
  };
  const settles = o.store.supports.settlesChunks;
  // Taken before the first chunk, with every earlier write settled: while it holds, no key of
  // this import can be in the scope already (buckets hold disjoint keys), and none is looked up.
  const watch = settles ? undefined : await o.store.withWriteLock(async () => o.store.watchEmptyScope?.(job.scope));
  const step = async (bucket: number, result: BucketResult): Promise<void> => {
    const c = await classify(result, o, !settles && watch?.untouched() !== true);
    const chunk: ChunkWriter = o.store.beginChunk(job.scope, job.id);
    const bytes = chunk.putEntryBytes?.bind(chunk);
    // The keys whose address differs from the key, in key order: walked with the keys.
    const addressRows = result.addressRows;
    const addressList = splitParts(result.addresses);
    let nextAddress = 0;
    const h = result.hashes;
    const every = o.yieldEvery ?? 0;
    // A key's own reason is stored only when it differs from the job's.
    const reasons = result.reasons;
    const reasonAt = (i: number): SuppressionReason | undefined => {
      const reason = reasons.length === 0 ? undefined : reasonOfCode(reasons[i] as number);
      return reason === job.reason ? undefined : reason;
    };
    const keys = c.keys;
    for (let i = 0; i < keys.count; i++) {
      const address = addressRows[nextAddress] === i ? addressList[nextAddress++] : undefined;
      if (c.present[i] === 1) {
        chunk.putHold(keys.text(i), address, reasonAt(i));
      } else {
        const h1 = h[i * 3] as number;
        const h2 = h[i * 3 + 1] as number;
        // In the filter before the chunk is acknowledged: a check never sees a stored key as absent.
        o.filter?.add(h1, h2);
        if (bytes) bytes(keys.bytes(i), h1, h2, address, reasonAt(i));
        else chunk.putEntry(keys.text(i), address, reasonAt(i), h1, h2);
      }
      if (every > 0 && i % every === every - 1) await nextTurn();
    }
    const added = tally(counts, c);
    try {
      while (inFlight.length >= most) await settle();
    } catch (err) {
      await chunk.discard();
      throw err;
    }
    job = {
      ...job,
      updatedAt: new Date().toISOString(),
      checkpoint: { ...job.checkpoint, phase: 'merge', bucket: bucket + 1, counts: { ...counts } },
    };
    const write = chunk.commit(job, added);
    // Awaited with the next bucket; until then a failure must not count as unhandled.
    write.catch(() => undefined);
    inFlight.push({ write, job, added });
  };
  try {
    for await (const { bucket, result } of dedupedBuckets(o)) {
      // An empty bucket needs no batch; a resumed run will find it empty again.
      if (result.lines === 0) continue;
      // Classifying and submitting under the store's write lock: a single change made by the
      // same process (the server) cannot slip between this bucket's reads and its write.
      await o.store.withWriteLock(() => step(bucket, result), { drain: false });
      o.onBucket(bucket, counts);
    }
    while (inFlight.length > 0) await settle();
  } finally {
    // Never leave a write running behind the caller's back; when failing, still report the last
    // durable checkpoint, so the job record written on failure does not go back in time.
    while (inFlight.length > 0) {
      await settle().catch(() => {
        inFlight.shift();
      });
    }
  }
  return job;
}
