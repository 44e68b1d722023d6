import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectDialect, type Dialect } from '../../src/csv/dialect.js';
import { extractColumn } from '../../src/csv/extract.js';
import { EMAIL_HEADER_NAMES, matchEmailHeader, pickEmailColumn, readHeader } from '../../src/csv/header.js';
import { OptoutError, type OptoutErrorCode } from '../../src/errors.js';

const comma: Dialect = { delimiter: ',' };
const MAX = 1 << 20;

function thrown(fn: () => unknown): OptoutError {
  try {
    fn();
  } catch (err) {
    if (err instanceof OptoutError) return err;
    throw err;
  }
  throw new Error('expected an OptoutError');
}

function expectCode(fn: () => unknown, code: OptoutErrorCode): OptoutError {
  const err = thrown(fn);
  expect(err.code).toBe(code);
  return err;
}

describe('readHeader', () => {
  it('returns the names, the bytes up to the data and the lines spanned', () => {
    expect(readHeader(Buffer.from('email,name\na,b\n'), comma, MAX, false))
      .toEqual({ names: ['email', 'name'], byteLength: 11, lines: 1 });
    expect(readHeader(Buffer.from('email,name\r\na,b\r\n'), comma, MAX, false))
      .toEqual({ names: ['email', 'name'], byteLength: 12, lines: 1 });
  });

  it('unquotes names that hold delimiters, escaped quotes and line breaks', () => {
    const buf = Buffer.from('"E-mail, work","say ""hi""","two\nlines",,last\nx\n');
    expect(readHeader(buf, comma, MAX, false)).toEqual({
      names: ['E-mail, work', 'say "hi"', 'two\nlines', '', 'last'], byteLength: 46, lines: 2,
    });
  });

  it('keeps names as written (the BOM is stripped upstream; matching trims)', () => {
    expect(readHeader(Buffer.from(' Email ;x\n'), { delimiter: ';' }, MAX, true)?.names).toEqual([' Email ', 'x']);
  });

  it('skips empty lines before the header and counts them', () => {
    expect(readHeader(Buffer.from('\n\r\nemail\na\n'), comma, MAX, false)).toEqual({ names: ['email'], byteLength: 9, lines: 3 });
  });

  it('ends at any line break, and reads every delimiter', () => {
    expect(readHeader(Buffer.from('a\tb\rc\td\r'), { delimiter: '\t' }, MAX, false))
      .toEqual({ names: ['a', 'b'], byteLength: 4, lines: 1 });
    expect(readHeader(Buffer.from('a,b\r\nc\r'), comma, MAX, false)).toEqual({ names: ['a', 'b'], byteLength: 5, lines: 1 });
    expect(readHeader(Buffer.from('\r"a\rb",c\rd\n'), comma, MAX, false)).toEqual({ names: ['a\rb', 'c'], byteLength: 9, lines: 3 });
    expect(readHeader(Buffer.from('a|"b|c"\n'), { delimiter: '|' }, MAX, false)?.names).toEqual(['a', 'b|c']);
  });

  it('returns undefined until the whole record is there', () => {
    expect(readHeader(Buffer.from('email,na'), comma, MAX, false)).toBeUndefined();
    expect(readHeader(Buffer.from('"email\n,name'), comma, MAX, false)).toBeUndefined();
    expect(readHeader(Buffer.from('email\r'), comma, MAX, false)).toBeUndefined();
    expect(readHeader(Buffer.from(''), comma, MAX, false)).toBeUndefined();
    expect(readHeader(Buffer.from('\n\n'), comma, MAX, false)).toBeUndefined();
  });

  it('takes a header without a line break at the end of the input', () => {
    expect(readHeader(Buffer.from('email,name'), comma, MAX, true)).toEqual({ names: ['email', 'name'], byteLength: 10, lines: 1 });
    expect(readHeader(Buffer.from('"a\nb"'), comma, MAX, true)).toEqual({ names: ['a\nb'], byteLength: 5, lines: 2 });
  });

  it('splits a very wide header in linear time', () => {
    const started = performance.now();
    const header = readHeader(Buffer.from(','.repeat(200_000) + '\nx\n'), comma, MAX, false);
    expect(header?.names).toHaveLength(200_001);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('rejects an empty file', () => {
    for (const input of ['', '\n', '\r\n\n']) {
      const err = expectCode(() => readHeader(Buffer.from(input), comma, MAX, true), 'OPTOUT_ERR_CSV_PARSE');
      expect(err.message).toBe('The file is empty: expected a header row');
      expect(err.location).toEqual({ line: 1 });
    }
  });

  it('rejects a broken quote with its line', () => {
    const err = expectCode(() => readHeader(Buffer.from('\n"email,name\n'), comma, MAX, true), 'OPTOUT_ERR_CSV_PARSE');
    expect(err.location).toEqual({ line: 2, column: 1 });
    expectCode(() => readHeader(Buffer.from('email,"name"x\n'), comma, MAX, false), 'OPTOUT_ERR_CSV_PARSE');
  });

  it('rejects a header over maxRecordBytes, also before the input ends', () => {
    const err = expectCode(() => readHeader(Buffer.from('"' + 'x'.repeat(100)), comma, 50, false), 'OPTOUT_ERR_RECORD_TOO_LARGE');
    expect(err.location).toEqual({ line: 1 });
  });
});

describe('readHeader agrees with extractColumn', () => {
  const piece = fc.constantFrom('a', 'é', '😀', ' ', ',', ';', '"', '""', '\r', '\n', '\r\n');
  const cell = fc.oneof(
    fc.array(piece, { maxLength: 4 }).map((a) => a.join('')),
    fc.array(piece, { maxLength: 4 }).map((a) => `"${a.join('').replaceAll('"', '""')}"`),
  );
  const input = fc.record({
    lead: fc.constantFrom('', '\n', '\r\n\n', '\r'),
    cells: fc.array(cell, { minLength: 1, maxLength: 5 }),
    tail: fc.constantFrom('', '\n', '\r\n', '\r', '\nx,y\n'),
    delimiter: fc.constantFrom(',', ';'),
    final: fc.boolean(),
  });

  it('on every name and on the bytes, and fails on the same inputs', () => {
    fc.assert(fc.property(input, (c) => {
      const buf = Buffer.from(c.lead + c.cells.join(c.delimiter) + c.tail);
      const dialect: Dialect = { delimiter: c.delimiter };
      const opts = { delimiter: c.delimiter.charCodeAt(0), column: 0, maxRecordBytes: MAX, final: c.final };
      const first = extractColumn(buf, 0, buf.length, opts, () => undefined, 1);
      let header: ReturnType<typeof readHeader>;
      try {
        header = readHeader(buf, dialect, MAX, c.final);
      } catch (err) {
        expect(first.error?.code ?? (first.records === 0 ? 'OPTOUT_ERR_CSV_PARSE' : 'none')).toBe((err as OptoutError).code);
        return;
      }
      expect(first.error).toBeUndefined();
      if (first.records === 0) {
        expect(header).toBeUndefined();
        return;
      }
      expect(header?.byteLength).toBe(first.consumed);
      const expected: Array<string | undefined> = [];
      for (let i = 0; i === 0 || expected[i - 1] !== undefined; i++) {
        extractColumn(buf, 0, first.consumed, { ...opts, column: i, final: true }, (v) => expected.push(v), 1);
      }
      expect(header?.names).toEqual(expected.slice(0, -1));
    }), { numRuns: 1500 });
  });
});

describe('pickEmailColumn: auto-detection', () => {
  it('finds the one header that is an email column name', () => {
    expect(pickEmailColumn(['id', 'email', 'name'])).toBe(1);
    expect(pickEmailColumn(['Name', 'E-mail'])).toBe(1);
    expect(pickEmailColumn([' EMAIL '])).toBe(0);
    expect(pickEmailColumn(['Fornavn', 'E-post'])).toBe(1);
    expect(pickEmailColumn(['E-mail Address', 'x'])).toBe(0);
    expect(pickEmailColumn(['x', 'email_address'])).toBe(1);
    expect(pickEmailColumn(['x', 'E-post adresse'])).toBe(1);
    expect(pickEmailColumn(['nom', 'Courriel'])).toBe(1);
    expect(pickEmailColumn(['nombre', 'correo_electronico'])).toBe(1);
    expect(pickEmailColumn(['nombre', 'Correo'])).toBe(1);
    expect(pickEmailColumn(['Mail'])).toBe(0);
    expect(pickEmailColumn(['\uFEFFemail', 'name'])).toBe(0);
  });

  it('finds the names real exports use, in the major European languages', () => {
    const names = ['address', 'recipient', 'E-Mail-Adresse', 'Adresse e-mail', 'E-postadress', 'E-mailadres', 'Indirizzo email',
      'Primary Email', 'Work Email', 'Correo electrónico', 'Dirección de correo electrónico', 'Endereço de e-mail',
      'Sähköpostiosoite', 'Adres e-mail', 'E-mailová adresa', 'E-mail cím', 'Adresă de email', 'E-posta adresi', 'Email_Address'];
    for (const name of names) expect(pickEmailColumn(['id', name, 'name']), name).toBe(1);
  });

  it('takes the first tier that matches: a plain email name before a qualified one, a primary before the others', () => {
    expect(pickEmailColumn(['Work Email', 'Email', 'Personal Email'])).toBe(1);
    expect(pickEmailColumn(['Work Email', 'Primary Email'])).toBe(1);
    expect(pickEmailColumn(['Address', 'Work Email'])).toBe(1);
    expect(matchEmailHeader(['Address', 'Name'])).toEqual({ index: 0, weak: true });
    expect(matchEmailHeader(['Email', 'Address'])).toEqual({ index: 0, weak: false });
    expectCode(() => pickEmailColumn(['Work Email', 'Personal Email']), 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
  });

  it('does not match names that only contain an email word', () => {
    expectCode(() => pickEmailColumn(['email_opt_in', 'emails', 'mailing', 'email status', 'addresses']), 'OPTOUT_ERR_NO_EMAIL_COLUMN');
  });

  it('lists the headers with 1-based numbers and asks for --column', () => {
    const err = expectCode(() => pickEmailColumn(['id', 'name', 'phone']), 'OPTOUT_ERR_NO_EMAIL_COLUMN');
    expect(err.message).toContain('1 `id`, 2 `name`, 3 `phone`');
    expect(err.message).toContain('--column');
  });

  it('refuses to choose between several email columns', () => {
    const err = expectCode(() => pickEmailColumn(['id', 'Email', 'name', 'E-mail']), 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
    expect(err.message).toContain('2 `Email`, 4 `E-mail`');
    expect(err.message).toContain('--column');
    expectCode(() => pickEmailColumn(['email', 'email']), 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
  });

  it('exports the names it matches, in tier order, each once', () => {
    expect(EMAIL_HEADER_NAMES.slice(0, 3)).toEqual(['email', 'mail', 'emailaddress']);
    expect(new Set(EMAIL_HEADER_NAMES).size).toBe(EMAIL_HEADER_NAMES.length);
    for (const name of EMAIL_HEADER_NAMES) expect(name).toMatch(/^[^\s_A-Z-]+$/u);
  });
});

describe('pickEmailColumn: --column', () => {
  const names = ['id', 'Email', 'work email', 'EMAIL'];

  it('takes digits as a 1-based index', () => {
    expect(pickEmailColumn(names, '1')).toBe(0);
    expect(pickEmailColumn(names, '3')).toBe(2);
    expect(pickEmailColumn(names, '04')).toBe(3);
  });

  it('rejects an index out of range, listing the headers', () => {
    for (const bad of ['0', '5', '99']) {
      const err = expectCode(() => pickEmailColumn(names, bad), 'OPTOUT_ERR_COLUMN_NOT_FOUND');
      expect(err.message).toContain('1 `id`, 2 `Email`, 3 `work email`, 4 `EMAIL`');
      expect(err.message).toContain('--column');
    }
  });

  it('matches a name exactly first, then trimmed and case-insensitively', () => {
    expect(pickEmailColumn(names, 'Email')).toBe(1);
    expect(pickEmailColumn(names, 'EMAIL')).toBe(3);
    expect(pickEmailColumn(names, ' Work Email ')).toBe(2);
    expect(pickEmailColumn(names, 'ID')).toBe(0);
  });

  it('refuses a name that matches several headers only case-insensitively', () => {
    expectCode(() => pickEmailColumn(names, 'email'), 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
  });

  it('rejects a name not in the header, listing the headers', () => {
    const err = expectCode(() => pickEmailColumn(names, 'e-post'), 'OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect(err.message).toContain('1 `id`, 2 `Email`, 3 `work email`, 4 `EMAIL`');
    expect(err.message).toContain('--column');
    expectCode(() => pickEmailColumn(names, '-1'), 'OPTOUT_ERR_COLUMN_NOT_FOUND');
    expectCode(() => pickEmailColumn(names, ''), 'OPTOUT_ERR_COLUMN_NOT_FOUND');
  });
});

describe('header fixtures', () => {
  const namesOf = (file: string): string[] => {
    const buf = readFileSync(new URL(`../fixtures/csv/${file}`, import.meta.url));
    return readHeader(buf, detectDialect(buf), MAX, true)?.names ?? [];
  };

  it('header-epost.csv: finds the Norwegian E-post column', () => {
    const names = namesOf('header-epost.csv');
    expect(names).toEqual(['Fornavn', 'Etternavn', 'E-post', 'Telefon']);
    expect(pickEmailColumn(names)).toBe(2);
  });

  it('two-email-columns.csv: ambiguous until --column picks one', () => {
    const names = namesOf('two-email-columns.csv');
    expectCode(() => pickEmailColumn(names), 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
    expect(pickEmailColumn(names, 'email')).toBe(1);
    expect(pickEmailColumn(names, 'E-mail')).toBe(3);
    expect(pickEmailColumn(names, '4')).toBe(3);
  });

  it('no-email-column.csv: no email column', () => {
    expectCode(() => pickEmailColumn(namesOf('no-email-column.csv')), 'OPTOUT_ERR_NO_EMAIL_COLUMN');
  });
});
