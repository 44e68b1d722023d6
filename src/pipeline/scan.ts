import { OptoutError } from '../errors.js';
import type { ChunkPool } from '../workers/pool.js';
import type { ExtractError } from '../csv/extract.js';
import type { ChunkProgress, ChunkResult, ChunkTask } from '../workers/chunk-task.js';
import { concatShared, type Chunk } from '../source/chunks.js';

export interface ScanParams {
  delimiter: number;
  column: number;
  maxRecordBytes: number;
  bucketBits: number;
  substitutes: boolean;
  filters?: ChunkTask['filters'];
  reasonColumn?: ChunkTask['reasonColumn'];
  recordKeys?: ChunkTask['recordKeys'];
}

export type { ChunkProgress };

/** A chunk's result placed in the file: absolute offsets, the line and row it starts at. */
export interface Scanned<R extends ChunkProgress> {
  result: R;
  /** The bytes the task read (a chunk, or a carried tail and the next chunk): offsets in `result` point here. */
  bytes: Buffer;
  /** Decoded offset just past the last complete record of this chunk. */
  endOffset: number;
  /** 1-based physical line where the chunk starts. */
  baseLine: number;
  /** Data records before this chunk. */
  baseRow: number;
}

export type ScannedChunk = Scanned<ChunkResult>;

export interface ScanStart {
  line: number;
  row: number;
}

interface InFlight<R> {
  chunk: Chunk;
  promise: Promise<R>;
}

/** {@link scanWith} with the import's task: a chunk's valid keys by spool bucket, and its rejects. */
export function scanChunks(chunks: AsyncIterable<Chunk>, pool: ChunkPool, params: ScanParams,
  start: ScanStart): AsyncGenerator<ScannedChunk> {
  const scan = scanWith(chunks, pool.threads, (bytes, final) => pool.run({ ...params, bytes, final }), start);
  return params.recordKeys === undefined ? scan : numberedAsCsv(scan);
}

/**
 * NDJSON rows are rejected under the line the CSV of the same records gives them: the row's
 * number + 1 (the header first), whatever empty lines the file holds. Lines still count the
 * file's own for everything else (checkpoints, a broken line's error).
 */
async function* numberedAsCsv(scan: AsyncGenerator<ScannedChunk>): AsyncGenerator<ScannedChunk> {
  for await (const s of scan) {
    for (const r of s.result.rejects) r.line = s.baseRow + r.record + 2 - s.baseLine;
    yield s;
  }
}

const ERROR_TITLES: Readonly<Record<ExtractError['code'], string>> = {
  OPTOUT_ERR_CSV_PARSE: 'Broken CSV', OPTOUT_ERR_RECORD_TOO_LARGE: 'Record too large', OPTOUT_ERR_JSON_PARSE: 'Broken NDJSON',
};

/**
 * Runs chunks through the worker pool, several at a time, and yields their results in input
 * order. At most threads² tasks are in the pool (piscina's `maxQueue: 'auto'` rule), so reading
 * pauses whenever parsing or the consumer lags.
 *
 * A chunk is dispatched before the previous one is known to end on a record boundary; when a
 * worker reports that it stopped early (a quoted newline spanned the cut), the next chunk's
 * speculative result is dropped and it is run again with the tail prepended.
 */
export async function* scanWith<R extends ChunkProgress>(chunks: AsyncIterable<Chunk>, threads: number,
  run: (bytes: Buffer, final: boolean) => Promise<R>, start: ScanStart): AsyncGenerator<Scanned<R>> {
  const maxInFlight = Math.max(2, threads * threads);
  const inFlight: Array<InFlight<R>> = [];
  let line = start.line;
  let row = start.row;

  const dispatch = (chunk: Chunk): InFlight<R> => {
    const promise = run(chunk.bytes, chunk.final);
    // A speculative result may be dropped unread; its failure must not go unhandled.
    promise.catch(() => undefined);
    return { chunk, promise };
  };

  async function* settleHead(): AsyncGenerator<Scanned<R>> {
    const head = inFlight.shift() as InFlight<R>;
    const result = await head.promise;
    const scanned: Scanned<R> = {
      result, bytes: head.chunk.bytes, endOffset: head.chunk.offset + result.consumed, baseLine: line, baseRow: row,
    };
    line += result.lines;
    row += result.records;
    yield scanned;
    if (result.error) {
      const e = result.error;
      const where = { line: scanned.baseLine + e.line, row: scanned.baseRow + e.record + 1, ...(e.column === undefined ? {} : { column: e.column }) };
      throw new OptoutError(e.code, `${ERROR_TITLES[e.code]} at line ${where.line} ` +
        `(row ${where.row}${e.column === undefined ? '' : `, column ${e.column}`}): ${e.detail}`, { location: where });
    }
    if (result.consumed < head.chunk.bytes.length) {
      const next = inFlight[0];
      if (head.chunk.final || next === undefined) {
        throw new OptoutError('OPTOUT_ERR_CSV_PARSE', `Broken CSV at line ${line}: the input ends inside a record`, { location: { line } });
      }
      const tail = head.chunk.bytes.subarray(result.consumed);
      // The dropped task keeps its place in the pool's queue until it settles: dispatching
      // beside it would put one task more than the bound in the pool, past piscina's maxQueue.
      await settled(next.promise);
      inFlight[0] = dispatch({ bytes: concatShared([tail, next.chunk.bytes]), offset: scanned.endOffset, final: next.chunk.final });
    }
  }

  try {
    for await (const chunk of chunks) {
      inFlight.push(dispatch(chunk));
      while (inFlight.length >= maxInFlight) yield* settleHead();
    }
    while (inFlight.length > 0) yield* settleHead();
  } finally {
    // Stopped early (a broken record, a consumer that gave up): the next phase gets an idle pool.
    await Promise.all(inFlight.map((f) => settled(f.promise)));
  }
}

const settled = (p: Promise<unknown>): Promise<void> => p.then(() => undefined, () => undefined);
