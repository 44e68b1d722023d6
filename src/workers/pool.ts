import { availableParallelism } from 'node:os';
import { OptoutError } from '../errors.js';
import { loadOnUse } from '../load-on-use.js';
import type { ScrubResult, ScrubTask } from './scrub-task.js';
import type { BucketResult, BucketTask, ChunkResult, ChunkTask } from './chunk-task.js';

export interface ChunkPool {
  readonly threads: number;
  run(task: ChunkTask): Promise<ChunkResult>;
  dedupBucket(task: BucketTask): Promise<BucketResult>;
  /** A send list's chunk: each record's bytes, key and hashes, or why it is invalid. */
  scrub(task: ScrubTask): Promise<ScrubResult>;
  destroy(): Promise<void>;
}

async function wrapped<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (cause) {
    throw new OptoutError('OPTOUT_ERR_WORKER', `A parsing worker failed: ${(cause as Error).message}`, { cause });
  }
}

/** Loaded by the first pool: a server loads it only once it imports. */
const loadPiscina = loadOnUse<typeof import('piscina')>('piscina');

/**
 * Piscina loads a thread's module with require() first, which Node 20.19 and later allow for an ES
 * module, synchronously; a thread terminated while it links that module (the pool destroyed by
 * an import that failed at once: a file without an email column, Ctrl-C) aborts the whole process
 * in Node 20 ("FATAL ERROR: v8::Module::IsGraphAsync"). Without require(esm), piscina falls back
 * to import(), which a termination ends cleanly.
 */
const WORKER_FLAGS = ['--no-experimental-require-module'];

/** Scrub's task lives in its own module; piscina loads it into the same threads on first use. */
const SCRUB_WORKER = new URL('./scrub-worker.js', import.meta.url).href;

/**
 * The worker pool that parses chunks and dedups spool buckets. One thread per core: the main
 * thread's share of an import (spool appends, store batches) is small next to parsing, and
 * LevelDB's own threads take the rest.
 */
export function createChunkPool(threads = availableParallelism()): ChunkPool {
  const options = {
    filename: new URL('./import-worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    // Callers bound the tasks in flight themselves (see pipeline/scan.ts, pipeline/merge-pass.ts).
    maxQueue: 'auto',
    idleTimeout: 30_000,
  } as const;
  const { Piscina } = loadPiscina();
  let pool: InstanceType<typeof Piscina>;
  try {
    pool = new Piscina({ ...options, execArgv: [...process.execArgv, ...WORKER_FLAGS] });
  } catch (err) {
    // The parent's options hold one a thread cannot take (a V8 flag): the threads inherit them as they are.
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
    pool = new Piscina(options);
  }
  return {
    threads,
    run: (task) => wrapped(pool.run(task, { name: 'processChunkMoved' }) as Promise<ChunkResult>),
    dedupBucket: (task) => wrapped(pool.run(task, { name: 'dedupBucketMoved' }) as Promise<BucketResult>),
    scrub: (task) => wrapped(pool.run(task, { filename: SCRUB_WORKER, name: 'scrubChunkTask' }) as Promise<ScrubResult>),
    destroy: () => pool.destroy(),
  };
}
