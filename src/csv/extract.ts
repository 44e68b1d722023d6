/**
 * The CSV hot path: pulls one column out of raw UTF-8 bytes without building records.
 *
 * ## Dialect
 *
 * RFC 4180 with the leniencies real exports need. Bytes, not characters, are scanned: the
 * delimiter, `"`, CR and LF are ASCII and never occur inside a UTF-8 multi-byte sequence.
 *
 * - **Records** end at a line break outside quotes: LF, CRLF or a lone CR, each one break, in
 *   any mix within one file (the rule of Python's csv module and of Excel). Files that were
 *   edited on several systems mix them, and a record glued to the previous one at a lone CR
 *   would be an address that is neither imported nor scrubbed: one rule, everywhere, is the only
 *   safe reading. Outside quotes, the CR of a CRLF is never part of a value. The last record may
 *   lack a line break.
 * - **Fields** are separated by the one-byte delimiter. A record with fewer fields than the
 *   target column is delivered with `undefined` (ragged rows allowed, in both directions).
 * - **Quotes**: a `"` opens a quoted field only as the field's first byte. Inside, `""` is a
 *   literal quote, and delimiters, CR and LF are content. A `"` anywhere else in an unquoted field
 *   is a literal character (`a"b` and `a""b` are taken as they are).
 * - **After a closing quote** only the delimiter, a line break or the end of input may follow.
 *   Anything else (`"a"b`, `"a" ,`) is OPTOUT_ERR_CSV_PARSE: the writer did not escape a quote,
 *   and guessing where the field ends would silently shift the columns (csv-parse's lenient
 *   reading of `"Smith, "Jr", Bob",x@y.org` has three fields, ` Bob"` second, where the email was
 *   meant to be).
 * - **Empty lines** (a line with no byte at all before its line break) are skipped and are not
 *   records. `,,` is a record of three empty fields, `""` one of one empty field, and a line of
 *   spaces a record with one field of spaces.
 * - **Unclosed quote**: when `final`, input that ends inside a quoted field is
 *   OPTOUT_ERR_CSV_PARSE, reported at the line where the record starts.
 * - **Record size**: a record whose bytes (from its first byte up to its line break, quotes and
 *   delimiters included) exceed `maxRecordBytes` is OPTOUT_ERR_RECORD_TOO_LARGE. It is reported
 *   as soon as maxRecordBytes + 1 bytes of it are certain, also when not `final`, so that a
 *   runaway quote cannot make the caller buffer without end, and before any later error in the
 *   same record, so that the outcome does not depend on where the input was cut.
 * - **Incomplete input**: when not `final` and the buffer ends inside a record, or where the next
 *   byte would decide (a `"` inside quotes, a CR that may be the first half of a CRLF),
 *   processing stops before that record: `consumed` is its offset from `start`, and the caller
 *   passes the tail again with more bytes. Complete empty lines before it are consumed.
 *
 * This is the dialect of csv-parse 7 with `{ delimiter, record_delimiter: ['\r\n', '\n', '\r'],
 * relax_quotes: true, relax_column_count: true, skip_empty_lines: true }`, with two differences.
 * Text after a closing quote: csv-parse with `relax_quotes` accepts it and glues `"` + content +
 * `"` + text into one value (`"a""b"x` gives `"a"b"x`, a quote lost); this reports it, as
 * csv-parse does without `relax_quotes` (CSV_INVALID_CLOSING_QUOTE), which in turn would reject
 * the literal quotes of `a"b`. And a NUL byte after a closing quote, which csv-parse takes as the
 * end of the input. An unclosed quote is an error in both (CSV_QUOTE_NOT_CLOSED).
 * test/csv/extract.oracle.property.test.ts checks the agreement on random input, with csv-parse
 * and with Python's csv module.
 *
 * Line numbers count physical line breaks (LF, CRLF and lone CR alike, inside quoted fields too),
 * so that they match what an editor shows.
 */
import { isUtf8 } from 'node:buffer';

export interface ExtractOptions {
  /** The delimiter as a byte (e.g. `0x2c` for `,`). */
  delimiter: number;
  /** 0-based index of the field to deliver. */
  column: number;
  /** Largest record, in bytes, line break excluded. */
  maxRecordBytes: number;
  /** No more bytes follow `end`: a record cut off by `end` is the last one, not incomplete. */
  final: boolean;
}

export interface ExtractError {
  /** `OPTOUT_ERR_JSON_PARSE` only from NDJSON lines (source/ndjson.ts). */
  code: 'OPTOUT_ERR_CSV_PARSE' | 'OPTOUT_ERR_RECORD_TOO_LARGE' | 'OPTOUT_ERR_JSON_PARSE';
  /** 0-based physical line offset, from `start`, of the broken record's first line. */
  line: number;
  /** 0-based index of the broken record among the records from `start`. */
  record: number;
  /** 1-based field where the quote problem is (absent for a record that is too large). */
  column?: number;
  detail: string;
}

export interface ExtractResult {
  /** Bytes after `start` taken by complete records (and empty lines): `start + consumed` is where to resume. */
  consumed: number;
  /** Records delivered to `onRecord`. */
  records: number;
  /** Physical line breaks inside the consumed bytes. */
  lines: number;
  /** Set when a record is broken; processing stopped at its start (`consumed` points there). */
  error?: ExtractError;
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

// Buffer's own slice decoders skip toString's argument checks, which matter at this call rate
// (about 40 ns a call); fall back to toString should a runtime lack them.
type FastBuffer = Buffer & { utf8Slice?(start: number, end: number): string; latin1Slice?(start: number, end: number): string };
const proto = Buffer.prototype as FastBuffer;
const utf8: (b: FastBuffer, s: number, e: number) => string = typeof proto.utf8Slice === 'function'
  ? (b, s, e) => (b.utf8Slice as (s: number, e: number) => string)(s, e)
  : (b, s, e) => b.toString('utf8', s, e);
const latin1: (b: FastBuffer, s: number, e: number) => string = typeof proto.latin1Slice === 'function'
  ? (b, s, e) => (b.latin1Slice as (s: number, e: number) => string)(s, e)
  : (b, s, e) => b.toString('latin1', s, e);

// Outcome of scanning one record.
const COMPLETE = 0;
const INCOMPLETE = 1;
const BAD_CLOSING_QUOTE = 2;
const UNCLOSED_QUOTE = 3;

/**
 * Delivers field `opts.column` of every record in `buf[start, end)` to `onRecord`, in order.
 *
 * `onRecord(value, line, recordStart, recordEnd, recordNext, fields)`: `value` is the field
 * decoded as UTF-8 (invalid sequences become U+FFFD) with the quoting removed, or `undefined`
 * when the record has fewer fields; `undecodable` tells a U+FFFD put there for bytes that were
 * not UTF-8 from one written as valid UTF-8, which is a character like any other; `line` is the 0-based physical line offset of the record's
 * first line, counted from `start`. The record's bytes are `buf[recordStart, recordEnd)`, its
 * line break (LF, CRLF or CR; none for a last record without one) `buf[recordEnd, recordNext)`:
 * offsets into `buf`, so that a caller can copy whole records as written. `fields` is the
 * record's number of fields.
 *
 * Errors are returned, not thrown, so that the result can cross a worker boundary; records
 * before the broken one have been delivered and counted.
 *
 * @param maxRecords stop after this many records (readHeader reads one).
 * @default maxRecords Infinity
 */
export function extractColumn(buf: Uint8Array, start: number, end: number, opts: ExtractOptions,
  onRecord: (value: string | undefined, line: number, recordStart: number, recordEnd: number, recordNext: number, fields: number,
    undecodable: boolean) => void,
  maxRecords = Infinity): ExtractResult {
  const b = (Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)) as FastBuffer;
  const d = opts.delimiter;
  const col = opts.column;
  const max = opts.maxRecordBytes;
  const final = opts.final;
  let pos = start;
  let lines = 0;
  let records = 0;

  while (pos < end && records < maxRecords) {
    const s = pos;
    let p = s;
    let field = 0;
    // Line breaks inside quoted fields of this record: committed only if the record completes.
    let inner = 0;
    let vs = -1;
    let ve = -1;
    let vesc = false;
    let vascii = false;
    let recEnd = end;
    let next = end;
    let status = COMPLETE;
    let errAt = 0;

    fields: for (;;) {
      if (p < end && b[p] === QUOTE) {
        const fs = p + 1;
        let esc = false;
        let bits = 0;
        p = fs;
        for (;;) {
          while (p < end) {
            const c = b[p] as number;
            if (c === QUOTE) break;
            // A CRLF is one line; the LF counts it.
            if (c === LF || (c === CR && (p + 1 >= end || b[p + 1] !== LF))) inner++;
            bits |= c;
            p++;
          }
          if (p >= end) {
            status = final ? UNCLOSED_QUOTE : INCOMPLETE;
            break fields;
          }
          const q = p++;
          if (p >= end) {
            // `""` or a closing quote: only the next byte can tell.
            if (!final) status = INCOMPLETE;
            else if (field === col) {
              vs = fs;
              ve = q;
              vesc = esc;
              vascii = bits < 0x80;
            }
            break fields;
          }
          const c = b[p] as number;
          if (c === QUOTE) {
            esc = true;
            p++;
            continue;
          }
          if (field === col) {
            vs = fs;
            ve = q;
            vesc = esc;
            vascii = bits < 0x80;
          }
          if (c === d) {
            p++;
            field++;
            continue fields;
          }
          if (c === LF || c === CR) {
            const n = afterBreak(b, p, end, final);
            if (n < 0) status = INCOMPLETE;
            else {
              recEnd = p;
              next = n;
            }
          } else {
            status = BAD_CLOSING_QUOTE;
            errAt = p;
          }
          break fields;
        }
      } else {
        const fs = p;
        if (field === col) {
          // Only the target field is tested for ASCII: it can then be decoded as latin1, which is
          // much cheaper than UTF-8 decoding for the short strings read here.
          let bits = 0;
          while (p < end) {
            const c = b[p] as number;
            if (c === d || (c <= CR && (c === LF || c === CR))) break;
            bits |= c;
            p++;
          }
          vascii = bits < 0x80;
        } else {
          while (p < end) {
            const c = b[p] as number;
            if (c === d || (c <= CR && (c === LF || c === CR))) break;
            p++;
          }
        }
        if (p >= end) {
          if (!final) status = INCOMPLETE;
          else if (field === col) {
            vs = fs;
            ve = end;
          }
          break;
        }
        if (b[p] === d) {
          if (field === col) {
            vs = fs;
            ve = p;
          }
          p++;
          field++;
          continue;
        }
        if (field === col) {
          vs = fs;
          ve = p;
        }
        const n = afterBreak(b, p, end, final);
        if (n < 0) status = INCOMPLETE;
        else {
          recEnd = p;
          next = n;
        }
        break;
      }
    }

    if (status !== COMPLETE) {
      if (status === INCOMPLETE) {
        // A trailing CR may be the first half of a CRLF, not record content.
        const certain = end - s - (b[end - 1] === CR ? 1 : 0);
        if (certain > max) return tooLarge(s - start, lines, records, max);
        return { consumed: s - start, records, lines };
      }
      const at = status === BAD_CLOSING_QUOTE ? errAt : end;
      if (at - s > max) return tooLarge(s - start, lines, records, max);
      const detail = status === BAD_CLOSING_QUOTE
        ? `Invalid closing quote in field ${field + 1}: expected a delimiter or a line break after it, got ${showByte(b, errAt)}`
        : `Unclosed quote in field ${field + 1}: the input ends inside a quoted field`;
      return {
        consumed: s - start, records, lines,
        error: { code: 'OPTOUT_ERR_CSV_PARSE', line: lines, record: records, column: field + 1, detail },
      };
    }
    if (recEnd - s > max) return tooLarge(s - start, lines, records, max);
    if (recEnd === s && field === 0) {
      // An empty line (recEnd === s is impossible for a record that opens with a quote).
      lines++;
      pos = next;
      continue;
    }
    let value: string | undefined;
    let undecodable = false;
    if (vs >= 0) {
      value = vs === ve ? '' : vascii ? latin1(b, vs, ve) : utf8(b, vs, ve);
      // Only a cell that holds U+FFFD can hide bytes that did not decode: the bytes tell which.
      if (!vascii && value.includes('\uFFFD')) undecodable = !isUtf8(b.subarray(vs, ve));
      if (vesc) value = value.replaceAll('""', '"');
    }
    onRecord(value, lines, s, recEnd, next, field + 1, undecodable);
    records++;
    lines += inner + (next > recEnd ? 1 : 0);
    pos = next;
  }
  return { consumed: pos - start, records, lines };
}

/**
 * Where the next record starts after the line break at `p` (an LF, or a CR that a CRLF's LF may
 * follow), or -1 when only the byte after `end` can tell: a CR that ends input that is not final.
 */
function afterBreak(b: Uint8Array, p: number, end: number, final: boolean): number {
  if (b[p] === LF) return p + 1;
  if (p + 1 < end) return b[p + 1] === LF ? p + 2 : p + 1;
  return final ? end : -1;
}

function tooLarge(consumed: number, lines: number, records: number, max: number): ExtractResult {
  return {
    consumed, records, lines,
    error: {
      code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: lines, record: records,
      detail: `The record is larger than ${max} bytes (maxRecordBytes); an unclosed quote can cause this`,
    },
  };
}

function showByte(b: Uint8Array, at: number): string {
  const c = b[at];
  if (c === undefined) return 'the end of input';
  if (c >= 0x20 && c < 0x7f) return `\`${String.fromCharCode(c)}\``;
  return `byte 0x${c.toString(16).padStart(2, '0')}`;
}
