import { detectDialect, type Dialect } from '../csv/dialect.js';
import { readHeader, readRecords } from '../csv/header.js';
import { OptoutError } from '../errors.js';

export interface HeaderRecord {
  names: string[];
  dialect: Dialect;
  /** Bytes up to the first data byte (empty lines before the header, the header record, its line break): where the data starts. */
  byteLength: number;
  /** The header record as read, its line break included (empty lines before it left out). */
  bytes: Buffer;
  /** Physical lines up to the data (empty lines before the header included). */
  lines: number;
  /** Bytes before the header record: empty lines and an Excel `sep=` line. */
  skippedBytes: number;
  /** Physical lines before the header record. */
  skippedLines: number;
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
  /** The data after the header record. Read this or {@link chunksWithHeader}, not both. */
  chunks: AsyncGenerator<Chunk>;
  /** The data from the header record on, for a file whose first record is data (no header). */
  chunksWithHeader: AsyncGenerator<Chunk>;
  /**
   * Up to `max` records after the header, as fields, for column detection: read ahead (at most
   * {@link SAMPLE_BYTES}) before any chunk is read, and kept for the chunks.
   */
  sample(max: number): Promise<string[][]>;
}

/** The most bytes {@link SplitSource.sample} reads ahead. */
export const SAMPLE_BYTES = 4 * 1024 * 1024;

/** Excel's first line naming the delimiter: `sep=;`. */
const SEP_LINE = /^sep=(.)(?:\r\n|\n|\r)/i;
const SEP_DELIMITERS = [',', ';', '\t', '|'];

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
 *
 * Reading the header takes time and memory linear in the bytes before the data: empty lines
 * before the header are dropped as they arrive (a file may open with a gigabyte of them), and a
 * header record that is not complete yet is parsed again only once its buffer has doubled.
 */
export async function splitSource(bytes: AsyncIterable<Buffer>, options: SplitOptions): Promise<SplitSource> {
  const it = bytes[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let ended = false;
  /** Appends parts to `buf` until `enough(length, part)` or the end, with one copy. */
  const readMore = async (enough: (length: number, part: Buffer) => boolean): Promise<void> => {
    const parts = [buf];
    let length = buf.length;
    while (!ended) {
      const next = await it.next();
      if (next.done) {
        ended = true;
        break;
      }
      parts.push(next.value);
      length += next.value.length;
      if (enough(length, next.value)) break;
    }
    buf = parts.length === 2 && buf.length === 0 ? parts[1] as Buffer : Buffer.concat(parts, length);
  };

  let blankBytes = 0;
  let blankLines = 0;
  const dropEmptyLines = (): void => {
    let p = 0;
    for (;;) {
      const c = buf[p];
      if (c === LF) p++;
      // A CR as the last byte before more input may be the first half of a CRLF.
      else if (c === CR && (p + 1 < buf.length || ended)) p += buf[p + 1] === LF ? 2 : 1;
      else break;
      blankLines++;
    }
    blankBytes += p;
    buf = buf.subarray(p);
  };
  dropEmptyLines();
  while (!ended && (buf.length === 0 || buf[0] === CR)) {
    await readMore(() => true);
    dropEmptyLines();
  }

  // The dialect is read off the whole header line, so wait for its first line break.
  const wholeFirstLine = async (): Promise<void> => {
    if (!ended && !hasLineBreak(buf) && buf.length < options.maxRecordBytes) {
      await readMore((length, part) => hasLineBreak(part) || length >= options.maxRecordBytes);
    }
  };
  await wholeFirstLine();
  let delimiter = options.delimiter;
  const sep = SEP_LINE.exec(buf.subarray(0, 8).toString('latin1'));
  if (sep !== null) {
    const named = sep[1] as string;
    if (!SEP_DELIMITERS.includes(named)) {
      throw new OptoutError('OPTOUT_ERR_CSV_PARSE', `Line ${blankLines + 1} is \`sep=${named}\`: only , ; | and tab are ` +
        'supported as delimiters', { location: { line: blankLines + 1 } });
    }
    delimiter ??= named;
    blankBytes += sep[0].length;
    blankLines++;
    buf = buf.subarray(sep[0].length);
    dropEmptyLines();
    while (!ended && (buf.length === 0 || buf[0] === CR)) {
      await readMore(() => true);
      dropEmptyLines();
    }
    await wholeFirstLine();
  }
  const dialect = detectDialect(buf, delimiter);
  let parsed = readHeader(buf, dialect, options.maxRecordBytes, ended);
  while (parsed === undefined) {
    const want = Math.max(2 * buf.length, 64 * 1024);
    await readMore((length) => length >= want);
    parsed = readHeader(buf, dialect, options.maxRecordBytes, ended);
  }
  const headerBytes = parsed.byteLength;
  const header: HeaderRecord = {
    names: parsed.names, dialect, byteLength: blankBytes + headerBytes,
    bytes: Buffer.from(buf.subarray(0, headerBytes)), lines: blankLines + parsed.lines,
    skippedBytes: blankBytes, skippedLines: blankLines,
  };
  let sampled: string[][] | undefined;
  const sample = async (max: number): Promise<string[][]> => {
    if (sampled === undefined) {
      let breaks = countLineBreaks(buf, headerBytes);
      const enough = (length: number): boolean => breaks > max || length >= headerBytes + SAMPLE_BYTES;
      if (!enough(buf.length)) {
        await readMore((length, part) => {
          breaks += countLineBreaks(part, 0);
          return enough(length);
        });
      }
      sampled = readRecords(buf.subarray(headerBytes), dialect, options.maxRecordBytes, ended, max);
    }
    return sampled;
  };
  // Lazily, so that they cut what the sample read ahead too.
  const from = async function* (at: number, offset: number): AsyncGenerator<Chunk> {
    yield* cutChunks(buf.subarray(at), offset, it, ended, options);
  };
  return { header, chunks: from(headerBytes, header.byteLength), chunksWithHeader: from(0, blankBytes), sample };
}

function countLineBreaks(b: Buffer, from: number): number {
  let n = 0;
  for (let p = b.indexOf(LF, from); p >= 0; p = b.indexOf(LF, p + 1)) n++;
  // Old Mac files end lines with a lone CR.
  if (n === 0) for (let p = b.indexOf(CR, from); p >= 0; p = b.indexOf(CR, p + 1)) n++;
  return n;
}

function hasLineBreak(b: Buffer): boolean {
  return b.indexOf(LF) >= 0 || b.indexOf(CR) >= 0;
}

/** Offset just past the last line break of `b` that is certainly whole (a CR as the last byte may be half a CRLF), or 0. */
function afterLastLineBreak(b: Buffer): number {
  const lf = b.lastIndexOf(LF);
  const cr = b.lastIndexOf(CR, b.length - 2);
  return Math.max(lf, cr) + 1;
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

/** Offset just past the last line feed of `b`, or 0: where lines of JSON may be cut (a CR is white space in them). */
function afterLastLineFeed(b: Buffer): number {
  return b.lastIndexOf(LF) + 1;
}

/**
 * Cuts a stream of NDJSON into chunks that end right after a line feed: `first`, the bytes read
 * so far from the stream's start, then the rest of `it`. A line longer than a chunk is carried
 * to the next, up to `maxRecordBytes`.
 */
export function cutLineChunks(first: Buffer, it: AsyncIterator<Buffer>, ended: boolean, options: SplitOptions): AsyncGenerator<Chunk> {
  return cutChunks(first, 0, it, ended, options, afterLastLineFeed);
}

async function* cutChunks(first: Buffer, firstOffset: number, it: AsyncIterator<Buffer>, alreadyEnded: boolean,
  options: SplitOptions, cutAt: (b: Buffer) => number = afterLastLineBreak): AsyncGenerator<Chunk> {
  const chunkBytes = options.chunkBytes ?? 1024 * 1024;
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
    const cut = cutAt(whole);
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
