import { OptoutError, describeValue } from '../errors.js';
import processChunk, { dedupBucket } from './import-worker.js';
import type { ChunkPool } from './pool.js';
import { scrubChunk } from './scrub-worker.js';

export interface InlinePoolOptions {
  /**
   * The thread count the pool reports. Callers size their work in flight by it (threads² chunks,
   * twice as many buckets), so a larger number puts more tasks in the queue; they still run one
   * at a time, on the calling thread.
   * @default 1
   */
  threads?: number;
}

/**
 * What a worker receives for the task's bytes: chunk bytes live in a SharedArrayBuffer, which a
 * worker sees as a view of the same memory; any other buffer reaches it as a copy.
 */
function asPosted(bytes: Uint8Array): Uint8Array {
  return bytes.buffer instanceof SharedArrayBuffer
    ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
    : new Uint8Array(bytes);
}

/**
 * A {@link ChunkPool} that runs the worker tasks (`processChunk`, `dedupBucket`, `scrubChunk`)
 * on the calling thread, each in a later turn of the event loop and one at a time, in the order
 * they were submitted. Results have the worker pool's shapes and its failures its error code
 * (`OPTOUT_ERR_WORKER`). For tests, and for embedders that run in a single thread; imports and
 * scrubs take it through their `pool` option, and the caller destroys it.
 */
export function createInlinePool(options: InlinePoolOptions = {}): ChunkPool {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`threads\` to be an integer from 1 and up, got ${describeValue(threads)}`);
  }
  let destroyed = false;
  let queue: Promise<unknown> = Promise.resolve();
  const submit = <T>(work: () => T): Promise<T> => {
    const task = queue.then(() => new Promise<T>((resolve, reject) => {
      setImmediate(() => {
        try {
          if (destroyed) throw new Error('The pool is destroyed');
          resolve(work());
        } catch (cause) {
          reject(new OptoutError('OPTOUT_ERR_WORKER', `A parsing worker failed: ${(cause as Error).message}`, { cause }));
        }
      });
    }));
    queue = task.catch(() => undefined);
    return task;
  };
  return {
    threads,
    run: (task) => submit(() => processChunk({ ...task, bytes: asPosted(task.bytes) })),
    dedupBucket: (task) => submit(() => dedupBucket(task)),
    scrub: (task) => submit(() => scrubChunk({ ...task, bytes: asPosted(task.bytes) })),
    destroy: async () => {
      destroyed = true;
      await queue;
    },
  };
}
