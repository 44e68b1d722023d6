import { closeSync, mkdirSync, openSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BucketBytes } from '../workers/chunk-task.js';

/** Write a bucket's buffer out once it holds this many bytes. */
const FLUSH_BYTES = 64 * 1024;

/**
 * The spool: every valid row's key, appended to one of 2^bits files by hash. All copies of a
 * key land in the same file, so the files can be deduplicated one at a time, exactly, with
 * memory bounded by one file (see worker.ts `dedupBucket`), and the whole import never holds a
 * set of the file's keys. Files are plain text (`key` or `key\taddress` per line, UTF-8).
 */
export class BucketSpool {
  readonly dir: string;
  readonly bits: number;
  /** Per bucket, the bytes not yet written (allocated at its first line). */
  readonly #buffers: Array<Buffer | undefined>;
  readonly #held: Uint32Array;

  constructor(dir: string, bits: number) {
    this.dir = dir;
    this.bits = bits;
    this.#buffers = new Array<Buffer | undefined>(this.buckets);
    this.#held = new Uint32Array(this.buckets);
    mkdirSync(dir, { recursive: true });
  }

  get buckets(): number {
    return 2 ** this.bits;
  }

  path(bucket: number): string {
    return join(this.dir, `b${bucket.toString(16).padStart(4, '0')}`);
  }

  /** Appends one chunk's rows, already grouped by bucket. */
  append(groups: BucketBytes): void {
    const { bytes, ends } = groups;
    for (let b = 0, start = 0; b < ends.length; start = ends[b] as number, b++) {
      const end = ends[b] as number;
      if (end === start) continue;
      const held = this.#held[b] as number;
      if (held + end - start <= FLUSH_BYTES) {
        const buf = (this.#buffers[b] ??= Buffer.allocUnsafeSlow(FLUSH_BYTES));
        buf.set(bytes.subarray(start, end), held);
        this.#held[b] = held + end - start;
      } else {
        // Over the threshold: what is held, then this chunk's run, in one file append.
        this.#write(b, bytes.subarray(start, end));
      }
    }
  }

  /** Writes every buffer out; returns each file's length, for a checkpoint. */
  flush(): number[] {
    const lengths: number[] = [];
    for (let b = 0; b < this.buckets; b++) {
      if (this.#held[b] !== 0) this.#write(b);
      lengths.push(this.#length(b));
    }
    return lengths;
  }

  /**
   * Cuts every file back to a checkpoint's lengths (a resumed import); a bucket the checkpoint
   * does not list (none, before the first checkpoint) is cut to empty.
   */
  truncateTo(lengths: readonly number[]): void {
    for (let b = 0; b < this.buckets; b++) {
      const len = lengths[b] ?? 0;
      if (this.#length(b) > len) truncateSync(this.path(b), len);
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  #length(b: number): number {
    try {
      return statSync(this.path(b)).size;
    } catch {
      return 0;
    }
  }

  /** Appends bucket `b`'s held bytes, then `more`, to its file; nothing is held afterwards. */
  #write(b: number, more?: Uint8Array): void {
    const fd = openSync(this.path(b), 'a');
    try {
      const held = this.#held[b] as number;
      const buf = this.#buffers[b];
      if (held > 0 && buf !== undefined) writeAll(fd, buf.subarray(0, held));
      if (more !== undefined) writeAll(fd, more);
    } finally {
      closeSync(fd);
    }
    this.#held[b] = 0;
  }
}

/** writeSync until every byte is written: a file write may take fewer than asked. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** Buckets for an expected number of keys: about 32k keys a bucket, 16 to 1024 buckets. */
export function bucketBitsFor(expectedKeys: number): number {
  let bits = 4;
  while (bits < 10 && 2 ** bits * 32_768 < expectedKeys) bits++;
  return bits;
}
