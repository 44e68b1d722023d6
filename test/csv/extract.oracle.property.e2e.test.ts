/**
 * extractColumn against csv-parse 7 and Python's csv module on random CSV.
 *
 * The dialect (src/csv/extract.ts) is csv-parse with CSV_PARSE_DIALECT below, except for text
 * after a closing quote: csv-parse with `relax_quotes` glues it into the value, extractColumn
 * reports it, as csv-parse does without `relax_quotes`. So the oracle is two csv-parse runs:
 *
 * - A, relaxed: the values of every record (collected with `on_record`, so that the records
 *   before an unclosed quote are kept when it throws CSV_QUOTE_NOT_CLOSED);
 * - B, strict but skipping broken records: its first CSV_INVALID_CLOSING_QUOTE says where
 *   extractColumn must stop. Up to that point B reads the bytes exactly as A does (a quote
 *   inside an unquoted field fails the record with INVALID_OPENING_QUOTE, and is then kept as a
 *   literal, as in A). A `cast` hook counts the records B has started, skipped ones included.
 *
 * NUL is left out of the alphabet: csv-parse takes a NUL after a closing quote as the end of
 * the input (`!nextChr`), a quirk extractColumn does not copy.
 *
 * Python's csv module (what a person checking a scrub's output would reach for, and the reading
 * Excel shares) is the second oracle for line breaks: wherever extractColumn reads the input
 * without an error, Python reads the same records with the same values. Python is lenient where
 * extractColumn reports an error (text after a closing quote, an unclosed quote), so broken
 * inputs are compared with csv-parse alone.
 */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { extractColumn, type ExtractError, type ExtractOptions } from '../../src/csv/extract.js';

const csvParseDialect = (delimiter: string) => ({
  delimiter,
  record_delimiter: ['\r\n', '\n', '\r'],
  relax_column_count: true,
  skip_empty_lines: true,
});

interface Outcome {
  values: Array<string | undefined>;
  /** Index of the record extractColumn must stop at, or undefined when the input is good. */
  errorRecord: number | undefined;
}

function oracle(buf: Buffer, delimiter: string, column: number): Outcome {
  const values: Array<string | undefined> = [];
  let unclosed = false;
  try {
    parse(buf, {
      ...csvParseDialect(delimiter),
      relax_quotes: true,
      on_record: (record: string[]) => {
        values.push(record[column]);
        return record;
      },
    });
  } catch (err) {
    expect((err as { code?: string }).code).toBe('CSV_QUOTE_NOT_CLOSED');
    unclosed = true;
  }

  let started = 0;
  let badClosing: number | undefined;
  parse(buf, {
    ...csvParseDialect(delimiter),
    relax_quotes: false,
    skip_records_with_error: true,
    cast: (value: string, context: { index: number }) => {
      if (context.index === 0) started++;
      return value;
    },
    on_skip: (err: { code?: string; index?: number } | undefined) => {
      if (badClosing === undefined && err?.code === 'CSV_INVALID_CLOSING_QUOTE') {
        // In the record's first field the record has not been counted yet.
        badClosing = started - ((err.index ?? 0) > 0 ? 1 : 0);
      }
    },
  });
  if (badClosing !== undefined) return { values: values.slice(0, badClosing), errorRecord: badClosing };
  return { values, errorRecord: unclosed ? values.length : undefined };
}

interface Ours {
  values: Array<string | undefined>;
  lines: number[];
  /** Each record's [start, end, next) offsets. */
  spans: Array<[number, number, number]>;
  fields: number[];
  consumed: number;
  records: number;
  totalLines: number;
  error: ExtractError | undefined;
}

function ours(buf: Buffer, opts: ExtractOptions): Ours {
  const values: Ours['values'] = [];
  const lines: number[] = [];
  const spans: Ours['spans'] = [];
  const fields: number[] = [];
  const r = extractColumn(buf, 0, buf.length, opts, (v, line, start, end, next, count) => {
    values.push(v);
    lines.push(line);
    spans.push([start, end, next]);
    fields.push(count);
  });
  return { values, lines, spans, fields, consumed: r.consumed, records: r.records, totalLines: r.lines, error: r.error };
}

/** First part with final=false, then the carried tail and the rest with final=true. */
function split(buf: Buffer, cut: number, opts: ExtractOptions): Ours {
  const first = ours(buf.subarray(0, cut), { ...opts, final: false });
  if (first.error) return first;
  const second = ours(buf.subarray(first.consumed), { ...opts, final: true });
  return {
    values: [...first.values, ...second.values],
    lines: [...first.lines, ...second.lines.map((l) => l + first.totalLines)],
    spans: [...first.spans, ...second.spans.map(([s, e, n]): [number, number, number] => [s + first.consumed, e + first.consumed, n + first.consumed])],
    fields: [...first.fields, ...second.fields],
    consumed: first.consumed + second.consumed,
    records: first.records + second.records,
    totalLines: first.totalLines + second.totalLines,
    error: second.error && { ...second.error, line: second.error.line + first.totalLines, record: second.error.record + first.records },
  };
}

const DELIMITERS = [',', ';', '\t', '|'];
const PLAIN = ['a', 'Z', '0', '@', '.', ' ', 'é', '€', '😀', 'ø', '\u00a0', '\u2028'];
const SPECIAL = [...DELIMITERS, '"', '\r', '\n'];

const plain = fc.array(fc.constantFrom(...PLAIN), { maxLength: 5 }).map((a) => a.join(''));
const messy = fc.array(fc.constantFrom(...PLAIN, ...SPECIAL, ...SPECIAL), { maxLength: 6 }).map((a) => a.join(''));
const cell = fc.oneof(
  { weight: 3, arbitrary: plain },
  // Well-formed quoted fields: delimiters, quotes and line breaks inside.
  { weight: 3, arbitrary: messy.map((s) => `"${s.replaceAll('"', '""')}"`) },
  // Raw bytes: stray quotes, text after closing quotes, unclosed quotes, lone CRs.
  { weight: 2, arbitrary: messy },
);

const BREAKS = ['\n', '\r\n', '\r'] as const;

const csvCase = fc.record({
  delimiter: fc.constantFrom(...DELIMITERS),
  // One line break for the whole file, or a mix, as in files edited on several systems.
  eol: fc.constantFrom<'lf' | 'crlf' | 'cr' | 'mixed'>('lf', 'crlf', 'cr', 'mixed'),
  rows: fc.array(fc.record({ cells: fc.array(cell, { maxLength: 5 }), br: fc.constantFrom(...BREAKS) }), { maxLength: 8 }),
  trailingBreak: fc.boolean(),
  column: fc.nat(4),
  cut: fc.nat(),
}).map((c) => {
  const text = c.rows.map((row, i) => {
    const last = i === c.rows.length - 1;
    const br = c.eol === 'mixed' ? row.br : c.eol === 'cr' ? '\r' : c.eol === 'lf' ? '\n' : '\r\n';
    return row.cells.join(c.delimiter) + (last && !c.trailingBreak ? '' : br);
  }).join('');
  const buf = Buffer.from(text);
  return { ...c, text, buf, cut: buf.length === 0 ? 0 : c.cut % (buf.length + 1) };
});

const optsFor = (c: { delimiter: string; column: number }): ExtractOptions =>
  ({ delimiter: c.delimiter.charCodeAt(0), column: c.column, maxRecordBytes: 1 << 30, final: true });

/** Line breaks in `buf[0, end)`: every LF, and every CR that no LF follows. */
const countLineBreaks = (buf: Buffer, end: number): number => {
  let n = 0;
  for (let i = 0; i < end; i++) if (buf[i] === 0x0a || (buf[i] === 0x0d && buf[i + 1] !== 0x0a)) n++;
  return n;
};

/**
 * Every record of every input as Python's csv module reads it (empty lines give no record, as
 * with DictReader), in one run of python3 for all inputs.
 */
function pythonRecords(inputs: Array<{ text: string; delimiter: string }>): string[][][] {
  const script = [
    'import csv, io, json, sys',
    'out = []',
    'for case in json.load(sys.stdin):',
    '    reader = csv.reader(io.StringIO(case["text"], newline=""), delimiter=case["delimiter"])',
    '    out.append([row for row in reader if row])',
    'json.dump(out, sys.stdout)',
  ].join('\n');
  const stdout = execFileSync('python3', ['-c', script], { input: JSON.stringify(inputs), maxBuffer: 1 << 28 });
  return JSON.parse(stdout.toString('utf8')) as string[][][];
}

describe('extractColumn agrees with csv-parse', () => {
  it('on every value, and fails on the same inputs at the same record', () => {
    let failures = 0;
    let runs = 0;
    fc.assert(fc.property(csvCase, (c) => {
      runs++;
      const expected = oracle(c.buf, c.delimiter, c.column);
      const got = ours(c.buf, optsFor(c));
      expect(got.values).toEqual(expected.values);
      expect(got.records).toBe(expected.values.length);
      if (expected.errorRecord === undefined) {
        expect(got.error).toBeUndefined();
        expect(got.consumed).toBe(c.buf.length);
      } else {
        failures++;
        expect(got.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE', record: expected.errorRecord });
      }
      // Lines: every line break byte before the stop point, records in order.
      expect(got.totalLines).toBe(countLineBreaks(c.buf, got.consumed));
      for (let i = 1; i < got.lines.length; i++) expect(got.lines[i]).toBeGreaterThan(got.lines[i - 1] as number);
      if (got.error) expect(got.error.line).toBe(got.totalLines);
    }), { numRuns: 2000 });
    // Both halves must be exercised: broken inputs, and good ones with many records.
    expect(failures).toBeGreaterThan(runs / 10);
    expect(failures).toBeLessThan(runs / 2);
  });

  it('cuts out records that csv-parse reads alone as the same record, with as many fields', () => {
    fc.assert(fc.property(csvCase, (c) => {
      const got = ours(c.buf, optsFor(c));
      let at = 0;
      got.spans.forEach(([start, end, next], i) => {
        // Between records: nothing but the line breaks of skipped empty lines.
        expect(c.buf.toString('latin1', at, start)).toMatch(/^[\r\n]*$/);
        expect(c.buf.toString('latin1', end, next)).toMatch(/^(\r\n|\n|\r)?$/);
        const alone = parse(c.buf.subarray(start, end), { ...csvParseDialect(c.delimiter), relax_quotes: true }) as string[][];
        expect(alone).toHaveLength(1);
        expect(alone[0]?.[c.column]).toBe(got.values[i]);
        expect(alone[0]).toHaveLength(got.fields[i] as number);
        at = next;
      });
    }), { numRuns: 2000 });
  });

  it('gives the same result wherever the input is cut', () => {
    fc.assert(fc.property(csvCase, (c) => {
      const opts = optsFor(c);
      expect(split(c.buf, c.cut, opts)).toEqual(ours(c.buf, opts));
    }), { numRuns: 2000 });
  });

  it('matches csv-parse on hand-picked cases', () => {
    const cases: Array<[string, string]> = [
      ['a"b,"c""d"\n"e\r\nf",g\r\n\r\n,,\n""\n', ','],
      ['"x";y\r"z\rw";v\r\n', ';'],
      ['a\tb\r\n"c"\td\n', '\t'],
      ['ok|1\n"bad"x|2\n', '|'],
      ['ok,1\n"open,2\n', ','],
      ['"a"\r', ','],
      ['"a"\n', ','],
      ['email,name\nok1@fresh.example.com,Ok One\rjane.doe@example.com,Jane\nok2@fresh.example.com,Ok Two\n', ','],
    ];
    for (const [text, delimiter] of cases) {
      for (const column of [0, 1, 2]) {
        const buf = Buffer.from(text);
        const expected = oracle(buf, delimiter, column);
        const got = ours(buf, optsFor({ delimiter, column }));
        expect(got.values, text).toEqual(expected.values);
        expect(got.error?.record, text).toBe(expected.errorRecord);
      }
    }
  });
});

describe('extractColumn agrees with Python\'s csv module', () => {
  it('on every record, value and field count of every input it reads without an error', () => {
    const cases = fc.sample(csvCase, { numRuns: 3000, seed: 20261207 });
    const python = pythonRecords(cases.map((c) => ({ text: c.text, delimiter: c.delimiter })));
    let compared = 0;
    cases.forEach((c, i) => {
      const got = ours(c.buf, optsFor(c));
      if (got.error) return;
      compared++;
      const rows = python[i] as string[][];
      expect(rows.map((row) => row[c.column]), JSON.stringify(c.text)).toEqual(got.values);
      expect(rows.map((row) => row.length), JSON.stringify(c.text)).toEqual(got.fields);
    });
    // Most generated inputs are good ones: the comparison must have run on them.
    expect(compared).toBeGreaterThan(cases.length / 2);
  });
});
