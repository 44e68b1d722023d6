import { describe, expect, it } from 'vitest';
import { detectDialect } from '../../src/csv/dialect.js';
import { OptoutError } from '../../src/errors.js';

const head = (s: string): Buffer => Buffer.from(s);

describe('detectDialect: delimiter', () => {
  it('takes the most frequent candidate on the header line', () => {
    expect(detectDialect(head('email,name,city\na,b,c\n')).delimiter).toBe(',');
    expect(detectDialect(head('email;name;city\n')).delimiter).toBe(';');
    expect(detectDialect(head('email\tname\tcity\n')).delimiter).toBe('\t');
    expect(detectDialect(head('email|name|city\n')).delimiter).toBe('|');
    expect(detectDialect(head('a,b;c;d\n')).delimiter).toBe(';');
  });

  it('looks at the header line only', () => {
    expect(detectDialect(head('email;name\na,b,c,d,e,f\n')).delimiter).toBe(';');
  });

  it('ignores delimiters inside quoted header fields', () => {
    expect(detectDialect(head('"Name, full";"E-mail, work";x\n')).delimiter).toBe(';');
    expect(detectDialect(head('"a;b;c;d",e,f\n')).delimiter).toBe(',');
    expect(detectDialect(head('"a ""x;y;z"" b",e,f\n')).delimiter).toBe(',');
  });

  it('breaks ties in the order , ; tab |', () => {
    expect(detectDialect(head('a,b;c\n')).delimiter).toBe(',');
    expect(detectDialect(head('a|b\tc\n')).delimiter).toBe('\t');
    expect(detectDialect(head('a|b;c\n')).delimiter).toBe(';');
  });

  it('falls back to , for a one-column file, and for an empty head', () => {
    expect(detectDialect(head('email\na@x.org\n'))).toEqual({ delimiter: ',' });
    expect(detectDialect(head(''))).toEqual({ delimiter: ',' });
    expect(detectDialect(head('email\ra@x.org\r'))).toEqual({ delimiter: ',' });
  });

  it('accepts an override', () => {
    expect(detectDialect(head('a,b;c\n'), ';')).toEqual({ delimiter: ';' });
    expect(detectDialect(head('a,b\r'), '|')).toEqual({ delimiter: '|' });
    for (const tab of ['tab', 'TAB', '\\t', '\t']) expect(detectDialect(head('a,b\n'), tab).delimiter).toBe('\t');
    expect(detectDialect(head('a;b\n'), ',').delimiter).toBe(',');
  });

  it('rejects any other override with OPTOUT_ERR_INVALID_OPTION', () => {
    for (const bad of ['', ':', ',,', 'comma', ' ', '\n', '"']) {
      let caught: unknown;
      try {
        detectDialect(head('a,b\n'), bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(OptoutError);
      expect((caught as OptoutError).code).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect((caught as OptoutError).message).toContain('Expected `delimiter` to be one of `,` `;` `|` `tab`, got');
    }
  });
});

describe('detectDialect: the header line', () => {
  it('ends at LF, CRLF or a lone CR outside quotes', () => {
    expect(detectDialect(head('a;b\nc,d,e\n')).delimiter).toBe(';');
    expect(detectDialect(head('a;b\r\nc,d,e\r\n')).delimiter).toBe(';');
    expect(detectDialect(head('a;b\rc,d,e\r')).delimiter).toBe(';');
    expect(detectDialect(head('"a\r,\n,b";c\rd,e,f\n')).delimiter).toBe(';');
  });

  it('is the first line that is not empty, as the header reader skips empty lines', () => {
    expect(detectDialect(head('\nemail;name\na@x.org;A\n')).delimiter).toBe(';');
    expect(detectDialect(head('\r\n\r\remail\tname\r\n')).delimiter).toBe('\t');
    expect(detectDialect(head('\n\n\n')).delimiter).toBe(',');
  });
});
