import { move, transferableSymbol, valueSymbol } from 'piscina';
import { extractColumn } from '../csv/extract.js';
import { hashKey } from '../filter/hash.js';
import { readCell } from './cell.js';
import type { ScrubResult, ScrubTask } from './scrub-task.js';

/** Records a chunk is first assumed to hold: send lists run at 40 to 100 bytes a row. */
const BYTES_PER_RECORD_GUESS = 32;

function grown(a: Uint32Array<ArrayBuffer>, size: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(Math.max(size, a.length * 2));
  b.set(a);
  return b;
}

/**
 * Worker-pool entry: the per-row work of a scrub. Extracts the email cell of every record,
 * applies the address policy and hashes the key, and hands back where each record's bytes are,
 * so that the main thread decides against the store and copies the rows as written.
 */
export function scrubChunk(task: ScrubTask): ScrubResult {
  const bytes = task.bytes;
  let cap = Math.max(64, Math.ceil(bytes.length / BYTES_PER_RECORD_GUESS));
  let spans = new Uint32Array(cap * 3);
  let keyEnds = new Uint32Array(cap);
  let fields = new Uint32Array(cap);
  let hashes = new Uint32Array(cap * 2);
  const h = new Uint32Array(3);
  const reasons: string[] = [];
  // Joined once at the end: a string built with += is a rope, which posting flattens at a
  // measured 5 ms a chunk, ten times the cost of the join.
  const keys: string[] = [];
  let keysLength = 0;
  let n = 0;
  let invalidUtf8 = 0;

  // The task carries the extractor's options.
  const result = extractColumn(bytes, 0, bytes.length, task, (value, _line, start, end, next, count, undecodable) => {
    if (n === cap) {
      cap *= 2;
      spans = grown(spans, cap * 3);
      keyEnds = grown(keyEnds, cap);
      fields = grown(fields, cap);
      hashes = grown(hashes, cap * 2);
    }
    spans[n * 3] = start;
    spans[n * 3 + 1] = end;
    spans[n * 3 + 2] = next;
    fields[n] = count;
    const cell = readCell(value, undecodable, task.substitutes);
    if (cell.valid) {
      keys.push(cell.key);
      keysLength += cell.key.length;
      hashKey(cell.key, h, 0);
      hashes[n * 2] = h[0] as number;
      hashes[n * 2 + 1] = h[1] as number;
    } else {
      if (cell.reason === 'INVALID_ENCODING') invalidUtf8++;
      reasons.push(cell.reason);
    }
    keyEnds[n] = keysLength;
    n++;
  });

  const out: ScrubResult = {
    consumed: result.consumed,
    records: result.records,
    lines: result.lines,
    // Copies of the used part: posting a view would clone its whole buffer.
    spans: spans.slice(0, n * 3),
    fields: fields.slice(0, n),
    keys: keys.join(''),
    keyEnds: keyEnds.slice(0, n),
    hashes: hashes.slice(0, n * 2),
    reasons,
    invalidUtf8,
  };
  if (result.error) out.error = result.error;
  return out;
}

/**
 * The pool's entry: {@link scrubChunk}, with its typed arrays handed over to the main thread
 * rather than copied (each has a buffer of its own).
 */
export function scrubChunkTask(task: ScrubTask): unknown {
  const r = scrubChunk(task);
  return move({
    get [transferableSymbol]() {
      return [r.spans.buffer, r.fields.buffer, r.keyEnds.buffer, r.hashes.buffer];
    },
    get [valueSymbol]() {
      return r;
    },
  });
}
