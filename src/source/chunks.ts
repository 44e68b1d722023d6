import { detectDialect, type Dialect } from '../csv/dialect.js';
import { readHeader } from '../csv/header.js';

export interface HeaderRecord {
  names: string[];
  dialect: Dialect;
  /** Bytes of the header record, line ending included: where the data starts. */
  byteLength: number;
  /** Those bytes, as read (empty lines before the header included). */
  bytes: Buffer;
  /** Physical lines the header spans. */
  lines: number;
}

export interface Chunk {
  bytes: Buffer;
  /** Offset of `bytes[0]` in the decoded stream. */
  offset: number;
  /** The source ends with this chunk. */
  final: boolean;
}

export interface SplitSource {
  header: HeaderRecord;
  chunks: AsyncGenerator<Chunk>;
}

export interface SplitOptions {
  delimiter?: string | undefined;
  maxRecordBytes: number;
  /** @default 1 MiB */
  chunkBytes?: number;
  /** Skip the data before this decoded offset (a resumed import). */
  startOffset?: number;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * Reads the header record, then cuts the rest of the stream into chunks that end right after a
 * line break. A cut can still fall inside a quoted field with a newline; the worker then stops
 * at that record and the scan loop carries the tail over (see pipeline/scan.ts).
 */
export async function splitSource(bytes: AsyncIterable<Buffer>, options: SplitOptions): Promise<SplitSource> {
  const it = bytes[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let ended = false;
  const pull = async (): Promise<boolean> => {
    const next = await it.next();
    if (next.done) {
      ended = true;
      return false;
    }
    buf = buf.length === 0 ? next.value : Buffer.concat([buf, next.value]);
    return true;
  };

  // The dialect is read off the whole header line, so wait for its first line break.
  while (!ended && buf.indexOf(LF) < 0 && buf.indexOf(CR) < 0 && buf.length < options.maxRecordBytes) await pull();
  const dialect = detectDialect(buf, options.delimiter);
  let parsed = readHeader(buf, dialect, options.maxRecordBytes, ended);
  while (parsed === undefined) {
    await pull();
    parsed = readHeader(buf, dialect, options.maxRecordBytes, ended);
  }
  const header: HeaderRecord = {
    names: parsed.names, dialect, byteLength: parsed.byteLength, bytes: Buffer.from(buf.subarray(0, parsed.byteLength)), lines: parsed.lines,
  };
  const rest = buf.subarray(parsed.byteLength);
  const chunks = cutChunks(rest, header.byteLength, it, ended, dialect, options);
  return { header, chunks };
}

/**
 * Chunks live in shared memory: a worker reads them without the copy that posting a plain
 * buffer makes, and the main thread keeps them in case a chunk must run again with a tail.
 */
export function concatShared(parts: readonly Buffer[], length = parts.reduce((n, p) => n + p.length, 0)): Buffer {
  const first = parts[0];
  if (parts.length === 1 && first !== undefined && first.buffer instanceof SharedArrayBuffer) return first;
  const out = Buffer.from(new SharedArrayBuffer(length));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function* cutChunks(first: Buffer, firstOffset: number, it: AsyncIterator<Buffer>, alreadyEnded: boolean,
  dialect: Dialect, options: SplitOptions): AsyncGenerator<Chunk> {
  const chunkBytes = options.chunkBytes ?? 1024 * 1024;
  const eolByte = dialect.eol === 'cr' ? CR : LF;
  let offset = firstOffset;
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let ended = alreadyEnded;
  let skip = Math.max(0, (options.startOffset ?? firstOffset) - firstOffset);

  const add = (b: Buffer): void => {
    if (skip > 0) {
      const drop = Math.min(skip, b.length);
      skip -= drop;
      offset += drop;
      b = b.subarray(drop);
    }
    if (b.length > 0) {
      pending.push(b);
      pendingLen += b.length;
    }
  };
  add(first);

  let want = chunkBytes;
  for (;;) {
    while (!ended && pendingLen < want) {
      const next = await it.next();
      if (next.done) ended = true;
      else add(next.value);
    }
    if (ended) break;
    const whole = concatShared(pending, pendingLen);
    const cut = whole.lastIndexOf(eolByte) + 1;
    // No line break at all: keep reading, but only up to the record limit, so that the worker
    // can report the oversized record instead of this loop buffering without end.
    const end = cut > 0 ? cut : whole.length > options.maxRecordBytes + chunkBytes ? whole.length : 0;
    if (end === 0) {
      pending = [whole];
      want = pendingLen + chunkBytes;
      continue;
    }
    want = chunkBytes;
    yield { bytes: whole.subarray(0, end), offset, final: false };
    offset += end;
    const tail = whole.subarray(end);
    pending = tail.length > 0 ? [tail] : [];
    pendingLen = tail.length;
  }
  const last = concatShared(pending, pendingLen);
  yield { bytes: last, offset, final: true };
}
