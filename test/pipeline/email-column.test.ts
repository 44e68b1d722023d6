import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport, suppressed } from '../inline.js';

afterAll(removeTempDirs);

async function importBytes(content: string | Buffer, options: { column?: string; header?: boolean; encoding?: string; rejects?: boolean } = {}) {
  const dir = await tempDir('optout-email-column-');
  const path = join(dir, 'list.csv');
  writeFileSync(path, content);
  const db = join(dir, 'db');
  const rejects = join(dir, 'rejects.csv');
  const { rejects: withRejects, ...rest } = options;
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, ...rest, ...(withRejects ? { rejects } : {}) });
  return { report, db, rejects };
}

describe('the email column and the header row, with zero flags', () => {
  it('a headerless list (the SES bulk-import CSV, address,reason) keeps its first line as data', async () => {
    const lines = ['first@example.com,BOUNCE', 'second@example.com,COMPLAINT', 'third@example.com,BOUNCE',
      ...Array.from({ length: 9 }, (_, i) => `more${i}@example.com,BOUNCE`), 'not-an-address,BOUNCE'];
    const { report, db } = await importBytes(lines.join('\n') + '\n', { rejects: true });
    expect(report).toMatchObject({ header: 'none', column: '1', rows: 13, valid: 12, invalid: 1, added: 12 });
    expect(await suppressed(db, ['first@example.com', 'second@example.com', 'third@example.com']))
      .toEqual(['first@example.com', 'second@example.com', 'third@example.com']);
  });

  it('a headerless one-column list of one address', async () => {
    const { report, db } = await importBytes('only@example.com');
    expect(report).toMatchObject({ header: 'none', rows: 1, added: 1 });
    expect(await suppressed(db, ['only@example.com'])).toEqual(['only@example.com']);
  });

  it('rejects of a headerless list name the file lines as an editor shows them', async () => {
    const more = Array.from({ length: 10 }, (_, i) => `m${i}@example.com;z`).join('\n');
    const { report, rejects } = await importBytes(`\n\na@example.com;x\nbroken;y\n${more}\n`, { rejects: true });
    expect(report).toMatchObject({ header: 'none', delimiter: ';', rows: 12, invalid: 1 });
    expect(readFileSync(rejects, 'utf8')).toContain('4,2,broken,');
  });

  it('a header no list names, found by its cells: the one column of addresses', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => `${i},Name ${i},c${i}@example.org,2026-01-0${i % 9 + 1}`);
    rows[5] = '5,Name 5,not an address,2026-01-01';
    const { report } = await importBytes(['id,Customer,Contact Point,Signed Up', ...rows].join('\n'));
    expect(report).toMatchObject({ header: 'row', column: 'Contact Point', rows: 40, valid: 39, invalid: 1 });
  });

  it('a column under 90% addresses is not the email column; two columns of addresses are ambiguous', async () => {
    const under = Array.from({ length: 20 }, (_, i) => `${i},${i < 3 ? 'x' : `c${i}`}@example.org`.replace(/^(\d+),x@/, '$1,x-'));
    expect(await failureCode(() => importBytes(['id,contact', ...under].join('\n')))).toBe('OPTOUT_ERR_NO_EMAIL_COLUMN');
    const two = Array.from({ length: 5 }, (_, i) => `a${i}@example.org,b${i}@example.org`);
    expect(await failureCode(() => importBytes(['from,cc', ...two].join('\n')))).toBe('OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
    expect(await failureCode(() => importBytes(two.join('\n')))).toBe('OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
    expect(await failureCode(() => importBytes('id,name\n1,Ann\n'))).toBe('OPTOUT_ERR_NO_EMAIL_COLUMN');
  });

  it('a weak header name (Mailgun\'s address) is the email column only when its cells are addresses', async () => {
    const mailgun = await importBytes('address,code,error,created_at\nx@example.com,550,No such user,2026-01-01\n');
    expect(mailgun.report).toMatchObject({ header: 'row', column: 'address', rows: 1, valid: 1 });
    const postal = await importBytes('name,address,contact\nAnn,1 Main St,ann@example.com\nBob,2 High St,bob@example.com\n');
    expect(postal.report).toMatchObject({ header: 'row', column: 'contact', rows: 2, valid: 2 });
  });

  it('--no-header imports the first line; --header keeps an address-looking first line as the header', async () => {
    const text = 'head@example.com\nrow1@example.com\nrow2@example.com\n';
    const forcedHeader = await importBytes(text, { header: true });
    expect(forcedHeader.report).toMatchObject({ header: 'row', column: 'head@example.com', rows: 2 });
    expect(await suppressed(forcedHeader.db, ['head@example.com'])).toEqual([]);
    const none = await importBytes('email\nrow1@example.com\n', { header: false, column: '1' });
    expect(none.report).toMatchObject({ header: 'none', column: '1', rows: 2, valid: 1, invalid: 1 });
    const detected = await importBytes(`Email\n${Array.from({ length: 10 }, (_, i) => `r${i}@example.com`).join('\n')}`, { header: false });
    expect(detected.report).toMatchObject({ header: 'none', column: '1', rows: 11, valid: 10, invalid: 1 });
    expect(await failureCode(() => importBytes(text, { header: false, column: 'email' }))).toBe('OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect((await importBytes('n,a@example.com\n', { header: false, column: '2' })).report).toMatchObject({ header: 'none', rows: 1, valid: 1 });
  });

  it('--column by number on a headerless file imports the first line', async () => {
    const { report } = await importBytes('BOUNCE,a@example.com\nBOUNCE,b@example.com\n', { column: '2' });
    expect(report).toMatchObject({ header: 'none', column: '2', rows: 2, valid: 2 });
  });

  it('an Excel sep= first line names the delimiter and is not the header', async () => {
    const { report } = await importBytes('sep=;\r\nName;E-Mail-Adresse\r\nAnn;ann@example.de\r\nBob;bob@example.de\r\n');
    expect(report).toMatchObject({ header: 'row', column: 'E-Mail-Adresse', delimiter: ';', rows: 2, valid: 2 });
    expect(await failureCode(() => importBytes('sep=#\nemail\na@example.com\n'))).toBe('OPTOUT_ERR_CSV_PARSE');
  });

  it('an empty first line before a ; or tab header', async () => {
    for (const [d, name] of [[';', 'Adresse e-mail'], ['\t', 'Indirizzo email']] as const) {
      const { report } = await importBytes(`\r\nNom${d}${name}\r\nA${d}a@example.fr\r\nB${d}b@example.fr\r\n`);
      expect(report).toMatchObject({ header: 'row', column: name, delimiter: d, rows: 2, valid: 2 });
    }
  });

  it('UTF-16BE with a byte-order mark, and --encoding utf16be without one', async () => {
    const text = 'E-postadress,Namn\nåsa@exempel.se,Åsa\nola@exempel.se,Ola\n';
    const be = (s: string): Buffer => Buffer.from(s, 'utf16le').swap16();
    const withBom = await importBytes(Buffer.concat([Buffer.from([0xfe, 0xff]), be(text)]));
    expect(withBom.report).toMatchObject({ column: 'E-postadress', rows: 2, valid: 2 });
    expect(await suppressed(withBom.db, ['åsa@exempel.se'])).toEqual(['åsa@exempel.se']);
    const named = await importBytes(be(text), { encoding: 'UTF-16BE' });
    expect(named.report).toMatchObject({ column: 'E-postadress', rows: 2, valid: 2 });
  });
});
