import { move, transferableSymbol, valueSymbol } from 'piscina';
import { extractColumn, type ExtractResult } from '../csv/extract.js';
import { cellText, readNdjson } from '../source/ndjson.js';
import { hashKey } from '../filter/hash.js';
import { reasonCode, reasonOfCell } from '../csv/reasons.js';
import { SUPPRESSION_REASONS } from '../store/jobs.js';
import { readCell } from './cell.js';
import {
  MAX_REJECT_VALUE_CHARS, SKIP_REASON, bucketOf, type BucketBytes, type ChunkReject, type ChunkResult, type ChunkTask,
} from './chunk-task.js';

// The pool's other entry lives in its own module; the threads load this one.
export { DEDUP_LIMITS, dedupBucket, dedupBucketMoved, type DedupLimits } from './bucket-dedup.js';

/**
 * Worker-pool entry: parse one chunk, pick the email column, apply the address policy and
 * sort every valid row into its spool bucket. All per-row work happens here, off the main thread.
 */
export default function processChunk(task: ChunkTask): ChunkResult {
  const buckets = bucketLines(2 ** task.bucketBits);
  const rejects: ChunkReject[] = [];
  const h = new Uint32Array(3);
  let valid = 0;
  let invalidUtf8 = 0;
  let record = 0;

  const reject = (value: string, line: number, reason: string): void => {
    rejects.push({
      line,
      record,
      value: capped(value),
      reason,
    });
  };

  const skippedRejects: ChunkReject[] = [];
  const reasons = new Array<number>(SUPPRESSION_REASONS.length + 1).fill(0);
  /** One row: its email cell, whether a filter skips it, its own reason's code (0 for none). */
  const row = (value: string | undefined, line: number, undecodable: boolean, skipped: boolean, code: number): void => {
    if (skipped) {
      skippedRejects.push({ line, record, value: capped(value ?? ''), reason: SKIP_REASON });
      record++;
      return;
    }
    const n = readCell(value, undecodable, task.substitutes);
    if (n.valid) {
      hashKey(n.key, h, 0);
      const b = bucketOf(h[0] as number, task.bucketBits);
      if (code === 0) {
        buckets.add(b, n.address === n.key ? n.key : n.key + '\t' + n.address);
      } else {
        buckets.add(b, n.key + '\t' + (n.address === n.key ? '' : n.address) + '\t' + code);
        reasons[code] = (reasons[code] as number) + 1;
      }
      valid++;
    } else {
      if (n.reason === 'INVALID_ENCODING') invalidUtf8++;
      reject(value ?? '', line, n.reason);
    }
    record++;
  };

  let result: ExtractResult;
  const keys = task.recordKeys;
  if (keys !== undefined) {
    result = readNdjsonRows(task, keys, row);
  } else {
    const bytes = task.bytes;
    const skip = skippedRows(task);
    const own = rowReasons(task);
    result = extractColumn(bytes, 0, bytes.length, {
      delimiter: task.delimiter,
      column: task.column,
      maxRecordBytes: task.maxRecordBytes,
      final: task.final,
    }, (value, line, _start, _end, _next, _fields, undecodable) => {
      row(value, line, undecodable, skip?.[record] === 1, own === undefined ? 0 : own[record] as number);
    });
  }

  const out: ChunkResult = {
    consumed: result.consumed,
    records: result.records,
    lines: result.lines,
    valid,
    buckets: buckets.finish(),
    reasons,
    rejects: skippedRejects.length === 0 ? rejects : rejects.concat(skippedRejects).sort((a, b) => a.record - b.record),
    skipped: skippedRejects.length,
    invalidUtf8,
  };
  if (result.error) out.error = result.error;
  return out;
}

/**
 * {@link processChunk} as the worker pool runs it: the bucket bytes are moved to the main thread,
 * not copied.
 */
export function processChunkMoved(task: ChunkTask): unknown {
  const r = processChunk(task);
  return move({ [transferableSymbol]: [r.buckets.bytes.buffer, r.buckets.ends.buffer], [valueSymbol]: r } as never);
}

/**
 * A chunk's lines, written as UTF-8 into one growing buffer per bucket as the rows come, then
 * joined into one buffer of their own ({@link BucketBytes}). Strings joined a row at a time lived
 * as long as the chunk, and copying them from one young generation to the next took about a
 * third of a worker's time on a chunk (measured: 47 ms a 4 MiB chunk against 76 ms).
 */
class BucketLines {
  readonly #bufs: Array<Buffer | undefined>;
  readonly #lengths: Uint32Array;

  constructor(buckets: number) {
    this.#bufs = new Array<Buffer | undefined>(buckets);
    this.#lengths = new Uint32Array(buckets);
  }

  get buckets(): number {
    return this.#lengths.length;
  }

  /** Empties every bucket, keeping its buffer. */
  clear(): void {
    this.#lengths.fill(0);
  }

  /** Appends `line` and a line break to bucket `b`. */
  add(b: number, line: string): void {
    let buf = this.#bufs[b];
    let at = this.#lengths[b] as number;
    // 3 bytes a UTF-16 unit at most, and the line break.
    const most = at + 3 * line.length + 1;
    if (buf === undefined || most > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(1024, 2 * most));
      buf?.copy(bigger, 0, 0, at);
      this.#bufs[b] = buf = bigger;
    }
    at = writeUtf8(buf, at, line);
    buf[at++] = 0x0a;
    this.#lengths[b] = at;
  }

  finish(): BucketBytes {
    const lengths = this.#lengths;
    const ends = new Uint32Array(lengths.length);
    let total = 0;
    for (let b = 0; b < lengths.length; b++) {
      total += lengths[b] as number;
      ends[b] = total;
    }
    // Of its own (never Buffer's shared pool): it is moved to another thread.
    const bytes = Buffer.allocUnsafeSlow(total);
    for (let b = 0; b < lengths.length; b++) this.#bufs[b]?.copy(bytes, b === 0 ? 0 : ends[b - 1], 0, lengths[b]);
    return { bytes, ends };
  }
}

/**
 * The last chunk's bucket buffers, kept for this thread's next chunk (each thread runs one task
 * at a time, and `finish` copies the lines out). Buffers grown afresh for every chunk cost their
 * growth and the page faults of new memory: ~4% of a chunk's time (the 118 chunks of a 2M-row
 * list, 12 rounds alternating).
 */
let lastLines: BucketLines | undefined;

function bucketLines(buckets: number): BucketLines {
  if (lastLines?.buckets === buckets) lastLines.clear();
  else lastLines = new BucketLines(buckets);
  return lastLines;
}

function capped(value: string): string {
  return value.length > MAX_REJECT_VALUE_CHARS ? value.slice(0, MAX_REJECT_VALUE_CHARS) + '…' : value;
}

/**
 * The rows of a chunk of NDJSON, each record parsed once: a row's email cell, whether a filter
 * skips it and its own reason come from the same parse.
 */
function readNdjsonRows(task: ChunkTask, keys: readonly string[], row: (value: string | undefined, line: number, undecodable: boolean,
  skipped: boolean, code: number) => void): ExtractResult {
  const emailKey = keys[task.column] as string;
  const filters = (task.filters ?? []).map((f) => ({ key: keys[f.column] as string, values: f.values, keep: f.keep }));
  const reasonKey = task.reasonColumn === undefined ? undefined : keys[task.reasonColumn];
  return readNdjson(task.bytes, task, (record, line, undecodable) => {
    let skipped = false;
    for (const f of filters) {
      if (f.values.includes(cellText(record[f.key]).trim().toLowerCase()) !== f.keep) skipped = true;
    }
    const code = reasonKey === undefined ? 0 : reasonCode(reasonOfCell(cellText(record[reasonKey])));
    const value = cellText(record[emailKey]);
    // The line's bad bytes may lie in another value: only a U+FFFD in this one can stand for them.
    row(value, line, undecodable && value.includes('\uFFFD'), skipped, code);
  });
}

/**
 * Per record of the chunk, 1 when a filter skips it. A second pass of the extractor per filter
 * column: records end at the same places whatever the column, and the passes run only for
 * files that have filters.
 */
function skippedRows(task: ChunkTask): Uint8Array | undefined {
  const filters = task.filters ?? [];
  if (filters.length === 0) return undefined;
  let marks: Uint8Array | undefined;
  for (const f of filters) {
    const column = cellsOf(task, f.column, (value) => {
      const listed = value !== undefined && f.values.includes(value.trim().toLowerCase());
      return listed !== f.keep ? 1 : 0;
    });
    if (marks === undefined) marks = column;
    else for (let i = 0; i < marks.length; i++) marks[i] = (marks[i] as number) | (column[i] as number);
  }
  return marks;
}

/** Per record of the chunk, the reason code of its own reason (0 for none), when the file has a reason column. */
function rowReasons(task: ChunkTask): Uint8Array | undefined {
  if (task.reasonColumn === undefined) return undefined;
  return cellsOf(task, task.reasonColumn, (value) => reasonCode(reasonOfCell(value)));
}

/** One small number per record of the chunk, from its cell in `column`. */
function cellsOf(task: ChunkTask, column: number, mark: (value: string | undefined) => number): Uint8Array {
  const marks: number[] = [];
  extractColumn(task.bytes, 0, task.bytes.length, {
    delimiter: task.delimiter, column, maxRecordBytes: task.maxRecordBytes, final: task.final,
  }, (value) => {
    marks.push(mark(value));
  });
  return Uint8Array.from(marks);
}

/**
 * Writes `text` as UTF-8 at `at` (the caller made room: 3 bytes a UTF-16 unit); returns the end.
 * ASCII byte by byte, the rest through Buffer.write: for short lines the loop is the faster (with
 * Buffer.write for every key, a 42,000-line bucket's dedup took 48-56 ms against 37-45).
 */
function writeUtf8(buf: Buffer, at: number, text: string): number {
  let i = 0;
  const len = text.length;
  for (; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) break;
    buf[at++] = c;
  }
  return i < len ? at + buf.write(i === 0 ? text : text.slice(i), at, 'utf8') : at;
}
