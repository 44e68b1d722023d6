/**
 * NDJSON read as rows, the pure core shared by the main thread (the first record, the sample for
 * column detection) and the workers (every line of a chunk). A record is one line: a chunk cut
 * after a line feed holds whole records, so the workers parse them where CSV is parsed, and the
 * main thread only cuts the bytes.
 *
 * The rows are those of the CSV that a list of records stands for: the first record's keys are
 * the header; a cell is a value's text (nested values as JSON text, a missing key or null
 * empty); an SES event is spread to a row per recipient (ses-events.ts).
 */
import { isUtf8 } from 'node:buffer';
import { describeValue } from '../errors.js';
import type { ExtractError, ExtractResult } from '../csv/extract.js';
import { sesEventRows } from './ses-events.js';

export type Row = Record<string, unknown>;

export function isRecord(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value as the text of its cell. */
export function cellText(value: unknown): string {
  return typeof value === 'string' ? value : value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Why a line holds no record: JSON.parse's message, or what it holds instead. */
export class BrokenLine {
  constructor(readonly why: string) {}
}

/** The record a line holds, undefined for an empty line (white space only), or why it holds none. */
export function parseRecordLine(text: string): Row | undefined | BrokenLine {
  // Most lines open with their brace: the test for an empty line is then one comparison.
  if (text.charCodeAt(0) !== 0x7b && text.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    return new BrokenLine((cause as Error).message);
  }
  return isRecord(value) ? value : new BrokenLine(`the line is not an object: ${describeValue(value)}`);
}

/** The rows of one record: an SES event's recipients, or the record itself. */
export function forEachRow(record: Row, onRow: (row: Row) => void): number {
  const spread = sesEventRows(record);
  if (spread === undefined) {
    onRow(record);
    return 1;
  }
  for (const row of spread) onRow(row);
  return spread.length;
}

export interface NdjsonReadOptions {
  maxRecordBytes: number;
  /** No more bytes follow: a last line without a line feed is a record, not one cut off. */
  final: boolean;
}

const LF = 0x0a;

type FastBuffer = Buffer & { utf8Slice?(start: number, end: number): string };
const utf8: (b: FastBuffer, s: number, e: number) => string = typeof (Buffer.prototype as FastBuffer).utf8Slice === 'function'
  ? (b, s, e) => (b.utf8Slice as (s: number, e: number) => string)(s, e)
  : (b, s, e) => b.toString('utf8', s, e);

/**
 * Delivers the rows of every record in `buf` (whole lines, each up to its line feed; a CR before
 * it is white space to JSON) to `onRow`, in order: `line` is the 0-based line of its record,
 * counted from the start of `buf`; `undecodable` says the record's line holds bytes that are not
 * UTF-8 (decoded as U+FFFD). Stops at a line that is not a JSON object (`OPTOUT_ERR_JSON_PARSE`)
 * or longer than `maxRecordBytes` (`OPTOUT_ERR_RECORD_TOO_LARGE`): the result says where, as
 * extractColumn's does, and its `records` counts rows.
 */
export function readNdjson(buf: Uint8Array, opts: NdjsonReadOptions, onRow: (row: Row, line: number, undecodable: boolean) => void): ExtractResult {
  const b = (Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)) as FastBuffer;
  const end = b.length;
  // Only a chunk with a bad sequence somewhere needs each line tested.
  const clean = isUtf8(b);
  const max = opts.maxRecordBytes;
  let pos = 0;
  let lines = 0;
  let records = 0;
  const stop = (code: ExtractError['code'], detail: string): ExtractResult =>
    ({ consumed: pos, records, lines, error: { code, line: lines, record: records, detail } });
  while (pos < end) {
    let next = b.indexOf(LF, pos);
    if (next < 0) {
      if (end - pos > max) return stop('OPTOUT_ERR_RECORD_TOO_LARGE', tooLarge(max));
      if (!opts.final) break;
      next = end;
    }
    const lineEnd = next > pos && b[next - 1] === 0x0d ? next - 1 : next;
    if (lineEnd - pos > max) return stop('OPTOUT_ERR_RECORD_TOO_LARGE', tooLarge(max));
    const parsed = parseRecordLine(utf8(b, pos, next));
    if (parsed !== undefined) {
      if (parsed instanceof BrokenLine) return stop('OPTOUT_ERR_JSON_PARSE', parsed.why);
      const undecodable = !clean && !isUtf8(b.subarray(pos, next));
      const line = lines;
      records += forEachRow(parsed, (row) => onRow(row, line, undecodable));
    }
    // A last line without its line feed is no line break.
    if (next < end) lines++;
    pos = next + 1;
  }
  return { consumed: Math.min(pos, end), records, lines };
}

function tooLarge(max: number): string {
  return `The record is larger than ${max} bytes (maxRecordBytes)`;
}
