import { closeSync, mkdirSync, openSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Flush a bucket's buffer once it holds this much text. */
const FLUSH_CHARS = 64 * 1024;

/**
 * The spool: every valid row's key, appended to one of 2^bits files by hash. All copies of a
 * key land in the same file, so the files can be deduplicated one at a time, exactly, with
 * memory bounded by one file (see worker.ts `dedupBucket`), and the whole import never holds a
 * set of the file's keys. Files are plain text (`key` or `key\taddress` per line).
 */
export class BucketSpool {
  readonly dir: string;
  readonly bits: number;
  readonly #buffers: string[];

  constructor(dir: string, bits: number) {
    this.dir = dir;
    this.bits = bits;
    this.#buffers = new Array<string>(this.buckets).fill('');
    mkdirSync(dir, { recursive: true });
  }

  get buckets(): number {
    return 2 ** this.bits;
  }

  path(bucket: number): string {
    return join(this.dir, `b${bucket.toString(16).padStart(4, '0')}`);
  }

  /** Appends one chunk's rows, already grouped by bucket. */
  append(groups: readonly string[]): void {
    for (let b = 0; b < groups.length; b++) {
      const text = groups[b] as string;
      if (text.length === 0) continue;
      const buffered = (this.#buffers[b] as string) + text;
      if (buffered.length >= FLUSH_CHARS) {
        this.#write(b, buffered);
        this.#buffers[b] = '';
      } else {
        this.#buffers[b] = buffered;
      }
    }
  }

  /** Writes every buffer out; returns each file's length, for a checkpoint. */
  flush(): number[] {
    const lengths: number[] = [];
    for (let b = 0; b < this.buckets; b++) {
      const text = this.#buffers[b] as string;
      if (text.length > 0) this.#write(b, text);
      this.#buffers[b] = '';
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

  #write(b: number, text: string): void {
    const fd = openSync(this.path(b), 'a');
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }
}

/** Buckets for an expected number of keys: about 32k keys a bucket, 16 to 1024 buckets. */
export function bucketBitsFor(expectedKeys: number): number {
  let bits = 4;
  while (bits < 10 && 2 ** bits * 32_768 < expectedKeys) bits++;
  return bits;
}
