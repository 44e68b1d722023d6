import { getManyValues, isMany, none } from 'stream-chain/defs.js';
import Assembler from 'stream-json/assembler.js';
import { jsonParser, type parser } from 'stream-json/parser.js';
import { OptoutError, describeValue } from '../errors.js';
import { peek, prepend } from './decode.js';
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

type Row = Record<string, unknown>;

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
  const s = typeof value === 'string' ? value : value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function isRecord(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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
    if (text.trim() === '') return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_JSON_PARSE', `Broken NDJSON at line ${line}: ${(cause as Error).message}`, { cause, location: { line } });
    }
    if (!isRecord(value)) {
      throw new OptoutError('OPTOUT_ERR_JSON_PARSE', `NDJSON line ${line} is not an object: ${describeValue(value)}`, { location: { line } });
    }
    return value;
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

/** The source as CSV bytes, and the format it was written in (`format` given, or sniffed). */
export async function asCsv(bytes: AsyncIterable<Buffer>, format: SourceFormat | undefined): Promise<{ format: SourceFormat; bytes: AsyncIterable<Buffer> }> {
  const it = bytes[Symbol.asyncIterator]();
  const head = await peek(it, SNIFF_BYTES);
  const found = format ?? sniffFormat(head);
  const all = prepend(head, it);
  if (found === 'csv') return { format: found, bytes: all };
  return { format: found, bytes: asCsvLines(spreadSesEvents(found === 'json' ? jsonRows(all) : ndjsonRows(all))) };
}
