import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { OptoutError } from '../errors.js';
import type { ChunkResult, ChunkTask } from './chunk-task.js';

export interface ChunkPool {
  readonly threads: number;
  run(task: ChunkTask): Promise<ChunkResult>;
  destroy(): Promise<void>;
}

/**
 * The worker pool that parses and normalizes chunks. One thread per core: the main thread's
 * share of an import (filter, store batches) is small next to parsing, and LevelDB's own
 * background threads take the rest.
 */
export function createChunkPool(threads = availableParallelism()): ChunkPool {
  const pool = new Piscina<ChunkTask, ChunkResult>({
    filename: new URL('./worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    // The scan loop bounds the tasks in flight itself (see pipeline/scan.ts).
    maxQueue: 'auto',
    idleTimeout: 30_000,
  });
  return {
    threads,
    async run(task) {
      try {
        return await pool.run(task);
      } catch (cause) {
        throw new OptoutError('OPTOUT_ERR_WORKER', `A parsing worker failed: ${(cause as Error).message}`, { cause });
      }
    },
    destroy: () => pool.destroy(),
  };
}
