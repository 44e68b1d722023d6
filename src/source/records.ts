import { getManyValues, isMany, none } from 'stream-chain/defs.js';
import Assembler from 'stream-json/assembler.js';
import { jsonParser, type parser } from 'stream-json/parser.js';
import { OptoutError, describeValue } from '../errors.js';
import { cutLineChunks, SAMPLE_BYTES, type SplitOptions, type SplitSource } from './chunks.js';
import { peek, prepend } from './decode.js';
import { BrokenLine, cellText, forEachRow, isRecord, parseRecordLine, type Row } from './ndjson.js';
import { spreadSesEvents } from './ses-events.js';

/** How a source's records are written. */
export type SourceFormat = 'csv' | 'json' | 'ndjson';

export const SOURCE_FORMATS: readonly SourceFormat[] = ['csv', 'json', 'ndjson'];

export function normalizeFormat(value: unknown): SourceFormat | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (SOURCE_FORMATS as readonly string[]).includes(value.toLowerCase())) {
    return value.toLowerCase() as SourceFormat;
  }
  throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`format\` to be one of ${SOURCE_FORMATS.join(', ')}, got ${describeValue(value)}`);
}

/** CSV text is handed on in pieces of about this size. */
const PIECE_CHARS = 256 * 1024;

/**
 * Records as CSV: a header of the first record's keys, then one line per record in that column
 * order (a key the first record lacks is dropped, a missing one is an empty cell). The CSV
 * pipeline then reads JSON exactly as it reads CSV: the same email column detection, the same
 * export signatures, chunks, checkpoints and rejects (whose `line` is the record's number + 1).
 */
async function* asCsvLines(batches: AsyncIterable<Row[]>): AsyncGenerator<Buffer> {
  let keys: string[] | undefined;
  let text = '';
  for await (const rows of batches) {
    for (const row of rows) {
      if (keys === undefined) {
        keys = Object.keys(row);
        text += keys.map(cell).join(',') + '\n';
      }
      // A loop rather than map and join: this runs once a record on the main thread.
      for (let i = 0; i < keys.length; i++) text += (i === 0 ? '' : ',') + cell(row[keys[i] as string]);
      text += '\n';
    }
    if (text.length >= PIECE_CHARS) {
      yield Buffer.from(text, 'utf8');
      text = '';
    }
  }
  if (text.length > 0) yield Buffer.from(text, 'utf8');
}

const NEEDS_QUOTES = /[",\r\n]/;

function cell(value: unknown): string {
  const s = cellText(value);
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The error for line `line` of an NDJSON source, which holds no record. */
function brokenLine(line: number, broken: BrokenLine): OptoutError {
  return new OptoutError('OPTOUT_ERR_JSON_PARSE', `Broken NDJSON at line ${line}: ${broken.why}`, { location: { line } });
}

/**
 * NDJSON: one record a line; empty lines are passed over. The records of each piece of the file
 * come as one batch: a step of an async generator per record would cost more than its parsing.
 */
async function* ndjsonRows(bytes: AsyncIterable<Buffer>): AsyncGenerator<Row[]> {
  let carry = '';
  let line = 0;
  const parse = (text: string): Row | undefined => {
    line++;
    const parsed = parseRecordLine(text);
    if (parsed instanceof BrokenLine) throw brokenLine(line, parsed);
    return parsed;
  };
  const decoder = new TextDecoder();
  for await (const chunk of bytes) {
    const lines = (carry + decoder.decode(chunk, { stream: true })).split('\n');
    carry = lines.pop() as string;
    const rows: Row[] = [];
    for (const text of lines) {
      const row = parse(text);
      if (row !== undefined) rows.push(row);
    }
    yield rows;
  }
  const row = parse(carry + decoder.decode());
  if (row !== undefined) yield [row];
}

/**
 * JSON: the records of the first array of objects, the top-level value itself or one held in an
 * object at any depth (the SES `SuppressedDestinationSummaries`, Postmark's `Suppressions`).
 * Anything else in that array, or a second array of records, stops the import: what is not read
 * could be an opt-out. Streamed: only one record is assembled at a time, whatever the file's size. The
 * tokenizer is called directly, a chunk at a time: through its Node stream adapter, one token
 * at a time, it read a third as many records per second.
 */
async function* jsonRows(bytes: AsyncIterable<Buffer>): AsyncGenerator<Row[]> {
  // A stream-chain stage: text in, tokens out; `none` flushes the end. Its type names text only.
  const tokenize = jsonParser({ packValues: true, streamValues: false }) as unknown as (input: string | typeof none) => unknown;
  const decoder = new TextDecoder();
  // Containers open around the current token: true for an array.
  const stack: boolean[] = [];
  let target = -1;
  let asm: Assembler | undefined;
  let records = 0;
  const notOneList = (why: string): OptoutError => new OptoutError('OPTOUT_ERR_JSON_PARSE', `The JSON is not one list of records: ${why}`);
  const rowsOf = (text: string | typeof none): Row[] => {
    let out: unknown;
    try {
      out = tokenize(text);
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_JSON_PARSE', `Broken JSON: ${(cause as Error).message}`, { cause });
    }
    const rows: Row[] = [];
    if (!isMany(out)) return rows;
    for (const token of getManyValues(out) as parser.Token[]) {
      if (asm !== undefined) {
        asm.consume(token);
        if (asm.done) {
          rows.push(asm.current as Row);
          asm = undefined;
        }
        continue;
      }
      const inTarget = target === stack.length;
      switch (token.name) {
        case 'startObject':
          if (stack.at(-1) === true) {
            // A second array of records: which one is the list is anybody's guess, and reading
            // one would silently drop the other's opt-outs.
            if (target === -2) throw notOneList('it holds several arrays of records');
            target = stack.length;
            records++;
            asm = new Assembler();
            asm.consume(token);
            continue;
          }
          stack.push(false);
          break;
        case 'startArray':
          if (inTarget) throw notOneList(`record ${records + 1} of its array is an array, not an object`);
          stack.push(true);
          break;
        case 'endObject':
        case 'endArray':
          if (inTarget) target = -2;
          stack.pop();
          break;
        case 'stringValue':
        case 'numberValue':
        case 'nullValue':
        case 'trueValue':
        case 'falseValue':
          if (inTarget) throw notOneList(`record ${records + 1} of its array is ${describeValue(token.value)}, not an object`);
          break;
        default:
          break;
      }
    }
    return rows;
  };
  for await (const chunk of bytes) yield rowsOf(decoder.decode(chunk, { stream: true }));
  yield rowsOf(decoder.decode());
  yield rowsOf(none);
  if (target === -1) {
    throw new OptoutError('OPTOUT_ERR_JSON_PARSE', 'The JSON holds no array of records (objects)');
  }
}

/** How much of a file the format is judged on: the first line of an NDJSON file must fit. */
const SNIFF_BYTES = 64 * 1024;

/**
 * The format by content: `[` first is JSON; `{` first is NDJSON when the first line is a whole
 * record holding no array of records, else JSON (a pretty-printed or one-line document);
 * anything else is CSV.
 */
export function sniffFormat(head: Buffer): SourceFormat {
  const text = head.toString('utf8');
  const start = text.search(/\S/u);
  if (start < 0) return 'csv';
  if (text[start] === '[') return 'json';
  if (text[start] !== '{') return 'csv';
  const end = text.indexOf('\n', start);
  try {
    const first: unknown = JSON.parse(end < 0 ? text.slice(start) : text.slice(start, end));
    const holdsRecords = isRecord(first) && Object.values(first).some((v) => Array.isArray(v) && v.some(isRecord));
    return holdsRecords ? 'json' : 'ndjson';
  } catch {
    return 'json';
  }
}

/**
 * The source's format (`format` given, or sniffed) and its bytes: CSV as it is, JSON as CSV
 * text (see asCsvLines), NDJSON as it is: {@link splitNdjson} cuts its lines for the workers.
 */
export async function openRecords(bytes: AsyncIterable<Buffer>, format: SourceFormat | undefined): Promise<{ format: SourceFormat; bytes: AsyncIterable<Buffer> }> {
  const it = bytes[Symbol.asyncIterator]();
  const head = await peek(it, SNIFF_BYTES);
  const found = format ?? sniffFormat(head);
  const all = prepend(head, it);
  return { format: found, bytes: found === 'json' ? asCsvLines(spreadSesEvents(jsonRows(all))) : all };
}

/** NDJSON as CSV text, for a reading the workers do not do from its lines (see {@link NdjsonSplit.csv}). */
export function ndjsonAsCsv(bytes: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  return asCsvLines(spreadSesEvents(ndjsonRows(bytes)));
}

/** An NDJSON source cut into chunks of whole lines, which the workers read as rows (source/ndjson.ts). */
export interface NdjsonSplit extends SplitSource {
  /**
   * The same source as CSV text, from its first byte: what reads its first record as data, not
   * as the header (`--no-header`, a key that is an address), or a source whose first record has
   * no keys. Only before any chunk is read.
   */
  csv(): AsyncIterable<Buffer>;
}

const LF = 0x0a;

/**
 * Reads an NDJSON source up to its first record, whose keys (those of its first row: an SES
 * event's are the spread rows') are the header's names, and cuts it into chunks of whole lines
 * from its first byte on: every record is data. The sample for column detection is the first
 * rows, as cells.
 *
 * @throws OptoutError OPTOUT_ERR_JSON_PARSE for a line before the first record that is not one,
 *   OPTOUT_ERR_RECORD_TOO_LARGE for a first record over `maxRecordBytes`.
 */
export async function splitNdjson(bytes: AsyncIterable<Buffer>, options: SplitOptions): Promise<NdjsonSplit> {
  const it = bytes[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let ended = false;
  const readMore = async (enough: (length: number) => boolean): Promise<void> => {
    const parts = [buf];
    let length = buf.length;
    while (!ended && !enough(length)) {
      const next = await it.next();
      if (next.done) ended = true;
      else {
        parts.push(next.value);
        length += next.value.length;
      }
    }
    buf = Buffer.concat(parts, length);
  };

  let names: string[] = [];
  /** Where the first record's line starts: the sample's first row. */
  let firstAt = 0;
  let pos = 0;
  let line = 0;
  for (;;) {
    const end = buf.indexOf(LF, pos);
    if (end < 0 && !ended) {
      if (buf.length - pos > options.maxRecordBytes) {
        throw new OptoutError('OPTOUT_ERR_RECORD_TOO_LARGE', `Record too large at line ${line + 1}: the record is larger than ` +
          `${options.maxRecordBytes} bytes (maxRecordBytes)`, { location: { line: line + 1 } });
      }
      const want = Math.min(buf.length + 64 * 1024, pos + options.maxRecordBytes + 1);
      await readMore((length) => length >= want);
      continue;
    }
    if (pos >= buf.length) break;
    const lineEnd = end < 0 ? buf.length : end;
    line++;
    const parsed = parseRecordLine(buf.toString('utf8', pos, lineEnd));
    if (parsed instanceof BrokenLine) throw brokenLine(line, parsed);
    if (parsed !== undefined) {
      firstAt = pos;
      forEachRow(parsed, (row) => {
        if (names.length === 0) names = Object.keys(row);
      });
      break;
    }
    pos = lineEnd + 1;
  }
  let sampled: string[][] | undefined;
  const sample = async (max: number): Promise<string[][]> => {
    if (sampled !== undefined) return sampled;
    const rows: string[][] = [];
    const take = (row: Row): void => {
      if (rows.length < max) rows.push(names.map((k) => cellText(row[k])));
    };
    let at = firstAt;
    while (rows.length < max) {
      const end = buf.indexOf(LF, at);
      if (end < 0 && !ended && buf.length - firstAt < SAMPLE_BYTES) {
        const want = buf.length + 256 * 1024;
        await readMore((length) => length >= want);
        continue;
      }
      if (at >= buf.length || (end < 0 && !ended)) break;
      const lineEnd = end < 0 ? buf.length : end;
      const parsed = parseRecordLine(buf.toString('utf8', at, lineEnd));
      // A broken record ends the sample quietly: the import reports it where it is.
      if (parsed instanceof BrokenLine) break;
      if (parsed !== undefined) forEachRow(parsed, take);
      at = lineEnd + 1;
    }
    sampled = rows;
    return sampled;
  };
  const chunks = (async function* () {
    yield* cutLineChunks(buf, it, ended, options);
  })();
  return {
    header: { names, dialect: { delimiter: ',' }, byteLength: 0, bytes: Buffer.alloc(0), lines: 0, skippedBytes: 0, skippedLines: 0 },
    chunks, chunksWithHeader: chunks, sample,
    csv: () => ndjsonAsCsv(prepend(buf, it)),
  };
}
