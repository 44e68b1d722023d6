/**
 * The CSV writer of the export and the rejects file: quoting read back by csv-parse, formula
 * cells neutralised, control characters made visible. The rejects file gets both treatments: its
 * cells come from lists nobody vetted.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { csvCell } from '../../src/report/csv-cell.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

const readBack = (cell: string): string => (parse(`${cell}\n`, { relax_column_count: true }) as string[][])[0]?.[0] ?? '';

describe('csvCell', () => {
  it('reads back as the value with csv-parse, whatever the value', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (value) => {
      fc.pre(value !== '');
      expect(readBack(csvCell(value))).toBe(value);
    }), { numRuns: 2000 });
  });

  it('prefixes formula cells with a quote mark when spreadsheet-safe, and leaves others alone', () => {
    for (const v of ['=HYPERLINK("http://x.example","click")', '+1+1', '-2+3', '@SUM(1,2)', '\tx', '\rx']) {
      expect(readBack(csvCell(v, { spreadsheetSafe: true }))).toBe("'" + v);
      expect(readBack(csvCell(v))).toBe(v);
    }
    for (const v of ['a=b', 'jane@example.com', 'x+1', ' =lead']) expect(readBack(csvCell(v, { spreadsheetSafe: true }))).toBe(v);
  });

  it('shows control characters as \\xNN when asked, and keeps tab, CR and LF inside the quotes', () => {
    expect(csvCell('a\u0000b\u001b[31mc\u007f', { escapeControls: true })).toBe('a\\x00b\\x1b[31mc\\x7f');
    expect(readBack(csvCell('a\tb\r\nc', { escapeControls: true }))).toBe('a\tb\r\nc');
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (value) => {
      // eslint-disable-next-line no-control-regex
      expect(csvCell(value, { escapeControls: true, spreadsheetSafe: true })).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/);
    }), { numRuns: 1000 });
  });
});

describe('the rejects file', () => {
  it('neutralises formula cells and escapes control characters of rejected rows', async () => {
    const dir = await tempDir();
    const list = join(dir, 'partner.csv');
    const cells = ['=HYPERLINK("http://evil.example","x")', '+1+1', '@SUM(1,2)', '\tlead', '\rcr', 'nul\u0000byte', '-3'];
    await writeFile(list, 'email\nok@example.com\n' + cells.map((c) => `"${c.replaceAll('"', '""')}"`).join('\n') + '\n');
    const rejects = join(dir, 'rejects.csv');
    const report = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'db'), rejects, confirm: { mode: 'yes' }, threads: 1 });
    expect(report).toMatchObject({ rows: 8, valid: 1, invalid: 7 });
    const rows = parse(await readFile(rejects, 'utf8'), { columns: true }) as Array<{ value: string }>;
    expect(rows.map((r) => r.value)).toEqual([
      `'=HYPERLINK("http://evil.example","x")`, "'+1+1", "'@SUM(1,2)", "'\tlead", "'\rcr", 'nul\\x00byte', "'-3",
    ]);
  });
});
