import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { detectDialect } from '../../src/csv/dialect.js';
import { extractColumn, type ExtractOptions, type ExtractResult } from '../../src/csv/extract.js';
import { pickEmailColumn, readHeader } from '../../src/csv/header.js';
import { writeHugeRecordCsv } from '../fixtures/csv/huge-record.js';

interface Run {
  rows: Array<[string | undefined, number]>;
  result: ExtractResult;
}

const defaults: ExtractOptions = { delimiter: 0x2c, column: 0, maxRecordBytes: 1 << 20, final: true };

function run(input: string | Uint8Array, opts: Partial<ExtractOptions> = {}, start = 0, end?: number): Run {
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  const rows: Run['rows'] = [];
  const result = extractColumn(buf, start, end ?? buf.length, { ...defaults, ...opts }, (v, line) => rows.push([v, line]));
  return { rows, result };
}

const values = (input: string, opts: Partial<ExtractOptions> = {}): Array<string | undefined> =>
  run(input, opts).rows.map(([v]) => v);

describe('extractColumn: records and fields', () => {
  it('delivers the target field of every record with its line', () => {
    const { rows, result } = run('a@x.org,Ann,1\nb@x.org,Bob,2\n', { column: 0 });
    expect(rows).toEqual([['a@x.org', 0], ['b@x.org', 1]]);
    expect(result).toEqual({ consumed: 28, records: 2, lines: 2 });
    expect(values('1,a@x.org,Ann\n2,b@x.org,Bob\n', { column: 1 })).toEqual(['a@x.org', 'b@x.org']);
    expect(values('1,Ann,a@x.org\n2,Bob,b@x.org', { column: 2 })).toEqual(['a@x.org', 'b@x.org']);
  });

  it('ends records at LF or CRLF, and never keeps the CR of a CRLF', () => {
    expect(values('a\r\nb\nc\r\n')).toEqual(['a', 'b', 'c']);
    expect(values('x,a\r\ny,\r\n', { column: 1 })).toEqual(['a', '']);
    expect(values('"a"\r\n"b"\n')).toEqual(['a', 'b']);
    expect(run('a\r\nb\r\n').result).toEqual({ consumed: 6, records: 2, lines: 2 });
  });

  it('ends records at a lone CR too, outside quotes, in any mix with LF and CRLF', () => {
    expect(values('a\rb,c\n')).toEqual(['a', 'b']);
    expect(values('a\r')).toEqual(['a']);
    expect(values('"a\rb"\n')).toEqual(['a\rb']);
    expect(run('a\rb\nc\n').result).toEqual({ consumed: 6, records: 3, lines: 3 });
    const { rows, result } = run('a,1\rb,2\r"c\rd",3\re', {});
    expect(rows).toEqual([['a', 0], ['b', 1], ['c\rd', 2], ['e', 4]]);
    expect(result).toEqual({ consumed: 17, records: 4, lines: 4 });
    expect(values('a\nb\rc\r\nd\n\re')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(values('"a"\r"b"\rc')).toEqual(['a', 'b', 'c']);
  });

  it('reads the mixed list of a scrub that let a suppressed row through as three records', () => {
    const list = 'ok1@fresh.example.com,Ok One\rjane.doe@example.com,Jane\nok2@fresh.example.com,Ok Two\n';
    expect(values(list)).toEqual(['ok1@fresh.example.com', 'jane.doe@example.com', 'ok2@fresh.example.com']);
  });

  it('delivers undefined for a record with fewer fields, and ignores extra fields', () => {
    expect(values('a,b,c\nd\ne,f\ng,h,i,j\n', { column: 2 })).toEqual(['c', undefined, undefined, 'i']);
    expect(values('a,b,\n', { column: 2 })).toEqual(['']);
  });

  it('skips empty lines without counting them as records, but counts their lines', () => {
    const { rows, result } = run('\na\n\r\n\nb\n\n', {});
    expect(rows).toEqual([['a', 1], ['b', 4]]);
    expect(result).toEqual({ consumed: 9, records: 2, lines: 6 });
    expect(values(',,\n""\n  \n', { column: 0 })).toEqual(['', '', '  ']);
    expect(run('\r\r', {}).result).toEqual({ consumed: 2, records: 0, lines: 2 });
    expect(run('\r\n\r\r\n\n', {}).result).toEqual({ consumed: 6, records: 0, lines: 4 });
  });

  it('delivers the last record without a line break when final', () => {
    expect(values('a\nb')).toEqual(['a', 'b']);
    expect(values('a\n"b"')).toEqual(['a', 'b']);
    expect(values('a,')).toEqual(['a']);
    expect(values('a,', { column: 1 })).toEqual(['']);
  });

  it('works with every delimiter', () => {
    for (const d of [',', ';', '\t', '|']) {
      const others = [',', ';', '\t', '|'].filter((x) => x !== d).join('');
      const input = `x${d}"a${d}b"${d}${others}\n`;
      expect(values(input, { delimiter: d.charCodeAt(0), column: 1 })).toEqual([`a${d}b`]);
      expect(values(input, { delimiter: d.charCodeAt(0), column: 2 })).toEqual([others]);
    }
  });
});

describe('extractColumn: quotes', () => {
  it('removes quoting and unescapes "" only in quoted fields', () => {
    expect(values('"a,b","c""d",e\n', { column: 0 })).toEqual(['a,b']);
    expect(values('"a,b","c""d",e\n', { column: 1 })).toEqual(['c"d']);
    expect(values('"""a"""\n')).toEqual(['"a"']);
    expect(values('""""\n')).toEqual(['"']);
    expect(values('"",x\n')).toEqual(['']);
  });

  it('keeps a quote that does not start a field as a literal character', () => {
    expect(values('a"b,c\n')).toEqual(['a"b']);
    expect(values('a""b\n')).toEqual(['a""b']);
    expect(values(' "a",b\n')).toEqual([' "a"']);
    expect(values('x,a"b"c\n', { column: 1 })).toEqual(['a"b"c']);
  });

  it('keeps delimiters and line breaks inside quotes, and counts those lines', () => {
    const { rows, result } = run('"a\nb",1\n"c\r\nd\n",2\ne,3\n');
    expect(rows).toEqual([['a\nb', 0], ['c\r\nd\n', 2], ['e', 5]]);
    expect(result.lines).toBe(6);
    expect(values('1,"x\ny",z\n', { column: 2 })).toEqual(['z']);
  });

  it('reports text after a closing quote, with the records before it delivered', () => {
    const { rows, result } = run('ok\n"a\nb",1\nfine\n"a"b,c\nlater\n', { column: 0 });
    expect(rows).toEqual([['ok', 0], ['a\nb', 1], ['fine', 3]]);
    expect(result.consumed).toBe(16);
    expect(result.records).toBe(3);
    expect(result.lines).toBe(4);
    expect(result.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE', line: 4, record: 3, column: 1 });
    expect(run('x,"a" ,y\n').result.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE', column: 2 });
  });

  it('ends the record at any line break after a closing quote', () => {
    expect(run('"a"\rb\n').result).toMatchObject({ records: 2, lines: 2 });
    expect(values('"a"\r')).toEqual(['a']);
    expect(values('"a"\nb\r')).toEqual(['a', 'b']);
    expect(values('"a"\r\n"b"\r\r\n')).toEqual(['a', 'b']);
  });

  it('reports an unclosed quote when final, at the line where the record starts', () => {
    const { rows, result } = run('a\nb\n"c,\nd\ne\n');
    expect(rows).toEqual([['a', 0], ['b', 1]]);
    expect(result).toMatchObject({ consumed: 4, records: 2, lines: 2 });
    expect(result.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE', line: 2, record: 2, column: 1 });
    expect(run('x,"abc').result.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE', column: 2 });
    expect(run('"a""').result.error).toMatchObject({ code: 'OPTOUT_ERR_CSV_PARSE' });
  });
});

describe('extractColumn: incomplete input (final: false)', () => {
  it('stops before a record the buffer cuts, keeping complete records and empty lines', () => {
    expect(run('a\nb', { final: false })).toEqual({ rows: [['a', 0]], result: { consumed: 2, records: 1, lines: 1 } });
    expect(run('a\n\n"b\nc', { final: false }).result).toEqual({ consumed: 3, records: 1, lines: 2 });
    expect(run('a\n', { final: false }).result).toEqual({ consumed: 2, records: 1, lines: 1 });
  });

  it('waits when the next byte would decide: a quote in quotes, a CR that may start a CRLF', () => {
    expect(run('a\n"b"', { final: false }).result.consumed).toBe(2);
    expect(run('a\n"b""', { final: false }).result.consumed).toBe(2);
    expect(run('a\nb\r', { final: false }).result.consumed).toBe(2);
    expect(run('a\n"b"\r', { final: false }).result.consumed).toBe(2);
    // A CR followed by anything but an LF is a whole line break.
    expect(run('a\rb\r', { final: false }).result).toEqual({ consumed: 2, records: 1, lines: 1 });
    expect(run('a\rb\rc', { final: false }).result).toEqual({ consumed: 4, records: 2, lines: 2 });
    expect(run('"a\r', { final: false }).result).toEqual({ consumed: 0, records: 0, lines: 0 });
  });
});

describe('extractColumn: maxRecordBytes', () => {
  it('allows a record of exactly the limit, line break and CR of CRLF excluded', () => {
    expect(run('12345\r\n67890\n', { maxRecordBytes: 5 }).result).toEqual({ consumed: 13, records: 2, lines: 2 });
    expect(run('"1,3"\n', { maxRecordBytes: 5 }).result.error).toBeUndefined();
  });

  it('reports a longer record, with the records before it delivered', () => {
    const { rows, result } = run('ok\n123456\nnext\n', { maxRecordBytes: 5 });
    expect(rows).toEqual([['ok', 0]]);
    expect(result).toMatchObject({ consumed: 3, records: 1, lines: 1 });
    expect(result.error).toMatchObject({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 1, record: 1 });
    expect(result.error?.column).toBeUndefined();
  });

  it('reports a runaway quote even when not final', () => {
    const r = run(`a\n"${'x'.repeat(100)}`, { maxRecordBytes: 50, final: false });
    expect(r.result.error).toMatchObject({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 1, record: 1 });
    // Not yet over the limit: wait for more bytes.
    expect(run(`a\n"${'x'.repeat(40)}`, { maxRecordBytes: 50, final: false }).result.error).toBeUndefined();
  });

  it('prefers the size error to a later quote error in the same record', () => {
    expect(run('"123456"x\n', { maxRecordBytes: 5 }).result.error?.code).toBe('OPTOUT_ERR_RECORD_TOO_LARGE');
    expect(run('"123"x\n', { maxRecordBytes: 5 }).result.error?.code).toBe('OPTOUT_ERR_CSV_PARSE');
    expect(run('"123456', { maxRecordBytes: 5 }).result.error?.code).toBe('OPTOUT_ERR_RECORD_TOO_LARGE');
  });

  it('rejects the generated huge-record.csv fixture (a record over 1 MiB)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'optout-huge-'));
    try {
      const file = writeHugeRecordCsv(dir);
      const buf = readFileSync(file);
      const headerEnd = buf.indexOf(0x0a) + 1;
      const { rows, result } = run(buf, { maxRecordBytes: 1 << 20, column: 1 }, headerEnd);
      expect(rows.map(([v]) => v)).toEqual(['first@example.com', 'second@example.com']);
      expect(result.error).toMatchObject({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 2, record: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('extractColumn: bytes and offsets', () => {
  it('decodes multi-byte UTF-8 and replaces invalid bytes with U+FFFD', () => {
    expect(values('jösé@exämple.com,€,😀\n"ø,å",x\n')).toEqual(['jösé@exämple.com', 'ø,å']);
    expect(values('€,😀\n', { column: 1 })).toEqual(['😀']);
    expect(run(Buffer.from([0x6a, 0xe9, 0x40, 0x78, 0x0a])).rows).toEqual([['j\uFFFD@x', 0]]);
  });

  it('tells a U+FFFD written as valid UTF-8 from one put in place of bytes that are not UTF-8', () => {
    const flags: boolean[] = [];
    const buf = Buffer.concat([Buffer.from('a\uFFFD,"b\uFFFD"\n"x\uFFFD""\uFFFD",y\n'), Buffer.from([0x6a, 0xe9, 0x2c, 0x78, 0x0a]),
      Buffer.from('"'), Buffer.from([0xff]), Buffer.from('\uFFFD"\nplain\n')]);
    extractColumn(buf, 0, buf.length, defaults, (...args) => flags.push(args[6]));
    expect(flags).toEqual([false, false, true, true, false]);
  });

  it('reports offsets from start and stops at end', () => {
    const buf = Buffer.from('head\na\nb\nc\ntail');
    const { rows, result } = run(buf, {}, 5, 11);
    expect(rows).toEqual([['a', 0], ['b', 1], ['c', 2]]);
    expect(result).toEqual({ consumed: 6, records: 3, lines: 3 });
    expect(run(buf, { final: false }, 5, 10).result).toEqual({ consumed: 4, records: 2, lines: 2 });
  });

  it('reads a plain Uint8Array view with an offset', () => {
    const backing = new Uint8Array(32);
    backing.set(Buffer.from('x\n"a,b",1\nc,2\n'), 4);
    const view = backing.subarray(4, 4 + 14);
    expect(run(view, { column: 0 }).rows).toEqual([['x', 0], ['a,b', 1], ['c', 2]]);
  });

  it('stops after maxRecords records', () => {
    const buf = Buffer.from('\na,b\nc,d\n');
    const rows: Array<string | undefined> = [];
    const r = extractColumn(buf, 0, buf.length, { ...defaults, column: 1 }, (v) => rows.push(v), 1);
    expect(rows).toEqual(['b']);
    expect(r).toEqual({ consumed: 5, records: 1, lines: 2 });
  });
});

/** Each record's bytes and line break, as the offsets passed to onRecord cut them. */
function spans(input: string | Buffer, opts: Partial<ExtractOptions> = {}, start = 0): Array<[string, string]> {
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  const out: Array<[string, string]> = [];
  extractColumn(buf, start, buf.length, { ...defaults, ...opts }, (_v, _line, s, e, n) => {
    out.push([buf.toString('utf8', s, e), buf.toString('utf8', e, n)]);
  });
  return out;
}

describe('extractColumn: record offsets', () => {
  it('gives each record its bytes as written and its own line break', () => {
    expect(spans('a,"b\r\nc"\r\nd,e\nf')).toEqual([['a,"b\r\nc"', '\r\n'], ['d,e', '\n'], ['f', '']]);
    expect(spans('"x ""q"", y",z\n', { column: 1 })).toEqual([['"x ""q"", y",z', '\n']]);
    expect(spans('a\rb,"c"\r\n', { column: 1 })).toEqual([['a', '\r'], ['b,"c"', '\r\n']]);
    expect(spans('a\r"b\nc"\r\nd')).toEqual([['a', '\r'], ['"b\nc"', '\r\n'], ['d', '']]);
    expect(spans('ragged\n"q"', { column: 3 })).toEqual([['ragged', '\n'], ['"q"', '']]);
  });

  it('counts the fields of each record', () => {
    const counts: number[] = [];
    extractColumn(Buffer.from('a\n,\n"x,y",z,\n""\na"b,c\n'), 0, 22, defaults, (...args) => counts.push(args[5]));
    expect(counts).toEqual([1, 2, 3, 1, 2]);
  });

  it('leaves out the empty lines between records, and counts from buf, not from start', () => {
    expect(spans('\na\n\r\n\nb\r\n\n')).toEqual([['a', '\n'], ['b', '\r\n']]);
    const buf = Buffer.from('head\nx,y\n');
    const seen: number[][] = [];
    extractColumn(buf, 5, buf.length, defaults, (_v, _l, s, e, n) => seen.push([s, e, n]));
    expect(seen).toEqual([[5, 8, 9]]);
  });

  it('covers the consumed bytes: records, their line breaks and empty lines, nothing else', () => {
    for (const [input, opts] of TRICKY) {
      const buf = Buffer.from(input);
      let at = 0;
      let gaps = '';
      const r = extractColumn(buf, 0, buf.length, { ...defaults, ...opts }, (_v, _l, s, e, n) => {
        gaps += buf.toString('latin1', at, s);
        expect(e).toBeGreaterThanOrEqual(s);
        expect(n).toBeGreaterThanOrEqual(e);
        at = n;
      });
      if (!r.error) gaps += buf.toString('latin1', at, r.consumed);
      expect(gaps, input).toMatch(/^[\r\n]*$/);
    }
  });
});

/** One pass over the bytes, in absolute terms. */
function once(buf: Buffer, opts: Partial<ExtractOptions>): unknown {
  const r = run(buf, { ...opts, final: true });
  return { rows: r.rows, consumed: r.result.consumed, records: r.result.records, lines: r.result.lines, error: r.result.error };
}

/**
 * The pipeline's way: a first part with final=false, then the carried tail plus the rest with
 * final=true, lines and records shifted by what the first part consumed.
 */
function split(buf: Buffer, cuts: number[], opts: Partial<ExtractOptions>): unknown {
  const rows: Run['rows'] = [];
  let base = 0;
  let lines = 0;
  let records = 0;
  const bounds = [...cuts, buf.length];
  for (let i = 0; i < bounds.length; i++) {
    const final = i === bounds.length - 1;
    const chunk = buf.subarray(base, bounds[i]);
    const part = run(chunk, { ...opts, final });
    rows.push(...part.rows.map(([v, line]): [string | undefined, number] => [v, line + lines]));
    const r = part.result;
    if (r.error) {
      return { rows, consumed: base + r.consumed, records: records + r.records, lines: lines + r.lines,
        error: { ...r.error, line: r.error.line + lines, record: r.error.record + records } };
    }
    base += r.consumed;
    lines += r.lines;
    records += r.records;
  }
  return { rows, consumed: base, records, lines, error: undefined };
}

const TRICKY: Array<[string, Partial<ExtractOptions>]> = [
  ['email,name\r\na@x.org,"Ann\r\nSmith"\r\n\r\n"b@x.org","B ""the"" one"\r\nc@x.org\r\n', {}],
  ['\n\n"a\n\nb",x\n,,\n""\nlast', { column: 1 }],
  ['a"b,"c,d"\n"e""f",g\n h,"i"\n', { column: 1 }],
  ['jösé@x.org;€\n"ø\nå";😀\n', { delimiter: 0x3b, column: 1 }],
  ['a\tb\r"c\rd"\te\r\rf\n\tg\r', { delimiter: 0x09, column: 1 }],
  ['a\rb\r\nc\n\r"d\r"\r\r\n"e"\rf', {}],
  ['a|b\rc\nd|"e\r\nf"|g\n', { delimiter: 0x7c, column: 1 }],
  ['ok,1\n"a"b,2\nnever\n', {}],
  ['ok,1\n"unclosed,2\nmore\n', {}],
  ['ok\n"a"\rb\n', {}],
  ['ok\n"1234\n56789"\nx\n', { maxRecordBytes: 8 }],
  ['ok\n"1234"xyzw\n', { maxRecordBytes: 6 }],
  ['ok\n"1234"x\n', { maxRecordBytes: 6 }],
  ['1234567\r\n12345678\r\n', { maxRecordBytes: 8 }],
  ['"a"\r\n"b"', {}],
];

describe('extractColumn: chunk boundaries', () => {
  it.each(TRICKY.map(([input, opts]) => [JSON.stringify(input), input, opts] as const))(
    'gives the same records, lines and errors for every cut of %s', (_name, input, opts) => {
      const buf = Buffer.from(input);
      const expected = once(buf, opts);
      for (let k = 0; k <= buf.length; k++) {
        expect(split(buf, [k], opts), `cut at ${k}`).toEqual(expected);
      }
      for (let k = 0; k <= buf.length; k += 3) {
        for (let m = k; m <= buf.length; m += 2) expect(split(buf, [k, m], opts), `cuts at ${k}, ${m}`).toEqual(expected);
      }
    });
});

const FIXTURES = fileURLToPath(new URL('../fixtures/csv/', import.meta.url));

/** What the source layer hands over: gunzipped, transcoded to UTF-8, BOM removed. */
function decodedFixture(name: string): Buffer {
  let b = readFileSync(join(FIXTURES, name));
  if (name.endsWith('.gz')) b = gunzipSync(b);
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return b.subarray(3);
  if (b[0] === 0xff && b[1] === 0xfe) return Buffer.from(b.subarray(2).toString('utf16le'));
  if (name.startsWith('latin1')) return Buffer.from(b.toString('latin1'));
  return b;
}

interface FixtureRead {
  delimiter: string;
  column: number;
  cells: Array<string | undefined>;
  /** 1-based file line of each record. */
  lines: number[];
  totalLines: number;
  error?: { code: string; line: number; row: number; column?: number | undefined };
}

function readFixture(name: string): FixtureRead {
  const buf = decodedFixture(name);
  const dialect = detectDialect(buf);
  const header = readHeader(buf, dialect, 1 << 20, true);
  if (header === undefined) throw new Error('no header');
  const column = pickEmailColumn(header.names);
  const cells: FixtureRead['cells'] = [];
  const lines: number[] = [];
  const r = extractColumn(buf, header.byteLength, buf.length,
    { delimiter: dialect.delimiter.charCodeAt(0), column, maxRecordBytes: 1 << 20, final: true },
    (v, line) => {
      cells.push(v);
      lines.push(header.lines + line + 1);
    });
  const out: FixtureRead = { ...dialect, column: column + 1, cells, lines, totalLines: header.lines + r.lines };
  if (r.error) {
    out.error = { code: r.error.code, line: header.lines + r.error.line + 1, row: r.error.record + 1, column: r.error.column };
  }
  return out;
}

describe('fixtures (test/fixtures/csv/README.md)', () => {
  const simple: Array<[string, string, number, number, number]> = [
    // file, delimiter, email column, rows, physical lines
    ['bom.csv', ',', 1, 6, 7],
    ['crlf.csv', ',', 1, 6, 9],
    ['semicolon.csv', ';', 1, 6, 7],
    ['tab.tsv', '\t', 1, 5, 6],
    ['pipe.csv', '|', 1, 5, 6],
    ['latin1.csv', ',', 1, 5, 6],
    ['utf16le.csv', ',', 1, 5, 6],
    ['quoted-newlines.csv', ',', 2, 6, 12],
    ['ragged.csv', ',', 3, 7, 8],
    ['gzip.csv.gz', ',', 1, 5, 6],
    ['mac-cr.csv', ',', 1, 5, 7],
    ['header-epost.csv', ';', 3, 6, 7],
  ];

  it.each(simple)('%s: dialect, email column, rows and lines', (name, delimiter, column, rows, totalLines) => {
    const got = readFixture(name);
    expect(got.delimiter).toBe(delimiter);
    expect(got.column).toBe(column);
    expect(got.cells).toHaveLength(rows);
    expect(got.totalLines).toBe(totalLines);
    expect(got.error).toBeUndefined();
  });

  it('reads the tricky cells as written', () => {
    expect(readFixture('bom.csv').cells[0]).toBe('alice@example.com');
    expect(readFixture('crlf.csv')).toMatchObject({ lines: [2, 3, 5, 7, 8, 9] });
    expect(readFixture('semicolon.csv').cells.slice(2, 5)).toEqual([' per@example.no ', 'kari@example.no', '']);
    expect(readFixture('tab.tsv').cells.slice(1, 3)).toEqual(['bert@example.com', 'cecilia@example.com']);
    expect(readFixture('latin1.csv').cells[1]).toBe('josé@example.com');
    expect(readFixture('utf16le.csv').cells[2]).toBe('nina@example.net');
    expect(readFixture('quoted-newlines.csv')).toMatchObject({
      cells: ['anna.q@example.com', 'bjorn.q@example.com', 'carl.q@example.com', 'dora.q@example.com\n',
        'eve, q@example.com', 'ANNA.Q@example.com'],
      lines: [2, 4, 6, 9, 11, 12],
    });
    expect(readFixture('ragged.csv')).toMatchObject({
      cells: ['alma@example.com', 'bo@example.com', undefined, 'dina@example.com', undefined, '', 'finn@example.com'],
      lines: [2, 3, 4, 5, 6, 7, 8],
    });
    expect(readFixture('mac-cr.csv')).toMatchObject({ lines: [2, 3, 5, 6, 7] });
    expect(readFixture('header-epost.csv').cells[3]).toBe('SIRI@EXAMPLE.NO');
  });

  it('broken-quote.csv: stops at the unclosed quote on line 5 after three rows', () => {
    const got = readFixture('broken-quote.csv');
    expect(got.cells).toEqual(['good1@example.com', 'good2@example.com', 'good3@example.com']);
    expect(got.error).toEqual({ code: 'OPTOUT_ERR_CSV_PARSE', line: 5, row: 4, column: 2 });
  });

  it('broken-quote.csv: the same error when the file comes in small chunks', () => {
    const buf = decodedFixture('broken-quote.csv');
    const dialect = detectDialect(buf);
    const header = readHeader(buf, dialect, 1 << 20, true);
    const data = buf.subarray(header?.byteLength ?? 0);
    for (let cut = 0; cut <= data.length; cut++) {
      expect(split(data, [cut], {}), `cut at ${cut}`).toEqual(once(data, {}));
    }
  });
});
