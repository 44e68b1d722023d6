/**
 * The adversarial CSV fixtures of `test/fixtures/csv/` imported through the CLI into fresh
 * stores. The expected counts and invalid rows are read from the table in that folder's
 * README.md, so the fixtures, their documentation and the CLI are checked against each other.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { errorCodes, fixture, parseJson, removeTempDirs, runCli, tempDir, type CliResult } from '../helpers.js';
import type { ImportReport } from '../../src/report/summary.js';
import type { StoreStats } from '../../src/cli/commands/stats.js';

type Report = ImportReport;

type Stats = StoreStats;

/** One documented invalid row: the physical line, and the cell and reason when the table gives them. */
interface InvalidRow {
  line: number;
  value: string | undefined;
  reason: string;
}

interface Documented {
  file: string;
  delimiter: string;
  eol: string;
  emailColumn: number | undefined;
  rows: number;
  valid: number;
  invalid: number;
  distinct: number;
  invalidRows: InvalidRow[];
}

const DELIMITERS: Record<string, string> = { ',': ',', ';': ';', '|': '|', tab: '\t' };

/** Reads `test/fixtures/csv/README.md`'s table. Rows whose counts are not plain numbers are skipped. */
function parseTable(md: string): Map<string, Documented> {
  const out = new Map<string, Documented>();
  for (const line of md.split('\n')) {
    if (!line.startsWith('| `')) continue;
    // Split on pipes that are not escaped (`\|`).
    const cells = line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
    const [fileCell, , dialectCell, colCell, rowsCell, validCell, invalidCell, distinctCell, invalidRowsCell] = cells;
    const file = /^`([^`]+)`$/.exec(fileCell ?? '')?.[1];
    const nums = [rowsCell, validCell, invalidCell, distinctCell].map((c) => (/^\d+$/.test(c ?? '') ? Number(c) : NaN));
    if (file === undefined || nums.some(Number.isNaN)) continue;
    const dialect = /^`?([^`\s]+)`?\s+(\w+)$/.exec(dialectCell ?? '');
    const invalidRows: InvalidRow[] = [];
    if (invalidRowsCell !== undefined && invalidRowsCell !== 'none') {
      for (const part of invalidRowsCell.split(';')) {
        const m = /^\s*(\d+):\s*(.*?)\s*$/.exec(part);
        if (!m) throw new Error(`README.md: cannot read the invalid row "${part}" of ${file}`);
        const rest = m[2] as string;
        const reason = /\b([A-Z][A-Z_]+)$/.exec(rest)?.[1] ?? (/^missing$/.test(rest) ? 'MISSING_FIELD' : undefined);
        if (reason === undefined) throw new Error(`README.md: no reason in "${part}" of ${file}`);
        const value = /^`([^`]*)`/.exec(rest)?.[1] ?? (/^empty\b/.test(rest) || reason === 'MISSING_FIELD' ? '' : undefined);
        invalidRows.push({ line: Number(m[1]), value, reason });
      }
    }
    out.set(file, {
      file,
      delimiter: DELIMITERS[dialect?.[1] ?? ''] ?? '?',
      eol: dialect?.[2] ?? '?',
      emailColumn: /^\d+$/.test(colCell ?? '') ? Number(colCell) : undefined,
      rows: nums[0] as number,
      valid: nums[1] as number,
      invalid: nums[2] as number,
      distinct: nums[3] as number,
      invalidRows,
    });
  }
  return out;
}

let table: Map<string, Documented>;

const doc = (file: string): Documented => {
  const d = table.get(file);
  if (d === undefined) throw new Error(`${file} is not in test/fixtures/csv/README.md's table`);
  return d;
};

/** The rejects file as records (header dropped), read with csv-parse. */
async function readRejects(path: string): Promise<Array<{ line: number; row: number; value: string; reason: string }>> {
  const text = await readFile(path, 'utf8');
  expect(text.startsWith('line,row,value,reason\n')).toBe(true);
  const records = parse(text, { columns: true }) as Array<Record<string, string>>;
  return records.map((r) => ({ line: Number(r['line']), row: Number(r['row']), value: r['value'] ?? '', reason: r['reason'] ?? '' }));
}

interface Imported {
  res: CliResult;
  report: Report;
  db: string;
  rejects: string;
}

async function importFixture(path: string, ...args: string[]): Promise<Imported> {
  const dir = await tempDir();
  const db = join(dir, 'db');
  const rejects = join(dir, 'rejects.csv');
  const res = await runCli(['--db', db, 'import', path, '--yes', '--json', '--rejects', rejects, ...args]);
  expect(res.code, res.stderr).toBe(0);
  return { res, report: parseJson<Report>(res), db, rejects };
}

async function expectDocumented(file: string, got: Imported, expectRejects = true): Promise<void> {
  const d = doc(file);
  expect({
    rows: got.report.rows, valid: got.report.valid, invalid: got.report.invalid, unique: got.report.unique,
    duplicates: got.report.duplicates, added: got.report.added, alreadySuppressed: got.report.alreadySuppressed,
  }, file).toEqual({
    rows: d.rows, valid: d.valid, invalid: d.invalid, unique: d.distinct,
    duplicates: d.valid - d.distinct, added: d.distinct, alreadySuppressed: 0,
  });
  if (d.delimiter !== '?') expect(got.report.delimiter, file).toBe(d.delimiter);
  if (!expectRejects) return;
  const rejects = await readRejects(got.rejects);
  expect(rejects.map((r) => ({ line: r.line, reason: r.reason })), file)
    .toEqual(d.invalidRows.map((r) => ({ line: r.line, reason: r.reason })));
  rejects.forEach((r, i) => {
    const want = d.invalidRows[i]?.value;
    if (want !== undefined) expect(r.value, `${file} line ${r.line}`).toBe(want);
    expect(r.row, `${file} line ${r.line}`).toBeGreaterThanOrEqual(1);
    expect(r.row, `${file} line ${r.line}`).toBeLessThanOrEqual(d.rows);
    expect(r.row, `${file} line ${r.line}`).toBeLessThan(r.line);
  });
}

const check = async (db: string, email: string): Promise<number | null> => {
  const res = await runCli(['--db', db, 'check', email]);
  expect([0, 1], res.stderr).toContain(res.code);
  return res.code;
};

beforeAll(async () => {
  table = parseTable(await readFile(fixture('README.md'), 'utf8'));
});

afterAll(removeTempDirs);

describe('the fixture table', () => {
  it('documents every committed fixture that these tests import', () => {
    for (const f of ['bom.csv', 'crlf.csv', 'semicolon.csv', 'tab.tsv', 'pipe.csv', 'latin1.csv', 'utf16le.csv',
      'quoted-newlines.csv', 'ragged.csv', 'gzip.csv.gz', 'mac-cr.csv', 'header-epost.csv']) {
      const d = doc(f);
      expect(d.rows, f).toBe(d.valid + d.invalid);
      expect(d.invalidRows, f).toHaveLength(d.invalid);
    }
  });
});

describe.concurrent('each fixture, imported with --yes --json into a fresh store, gives the documented counts', () => {
  for (const file of ['bom.csv', 'crlf.csv', 'semicolon.csv', 'tab.tsv', 'pipe.csv', 'quoted-newlines.csv', 'ragged.csv',
    'mac-cr.csv', 'header-epost.csv']) {
    it(file, async () => {
      await expectDocumented(file, await importFixture(fixture(file)));
    });
  }

  it('bom.csv: the BOM is not part of the first header', async () => {
    const { report } = await importFixture(fixture('bom.csv'));
    expect(report.column).toBe('email');
  });

  it('header-epost.csv: the E-post column is detected', async () => {
    const { report, db } = await importFixture(fixture('header-epost.csv'));
    expect(report.column).toBe('E-post');
    expect(await check(db, 'siri@example.no')).toBe(1);
  });
});

describe('encodings and compression', () => {
  it('latin1.csv with --encoding latin1 gives the documented counts', async () => {
    const got = await importFixture(fixture('latin1.csv'), '--encoding', 'latin1');
    await expectDocumented('latin1.csv', got);
    expect(got.report.invalidUtf8).toBe(0);
    expect(await check(got.db, 'josé@example.com')).toBe(1);
  });

  it('latin1.csv read as UTF-8 reports invalidUtf8 and rejects the cell with INVALID_ENCODING', async () => {
    const d = doc('latin1.csv');
    const got = await importFixture(fixture('latin1.csv'));
    expect(got.report.invalidUtf8).toBeGreaterThan(0);
    expect(got.report.rows).toBe(d.rows);
    expect(got.report.invalid).toBe(d.invalid + got.report.invalidUtf8);
    const rejects = await readRejects(got.rejects);
    const encoding = rejects.filter((r) => r.reason === 'INVALID_ENCODING');
    expect(encoding).toHaveLength(got.report.invalidUtf8);
    // The josé row: the line whose raw bytes hold a non-UTF-8 byte in the email cell.
    const raw = await readFile(fixture('latin1.csv'));
    const lines = raw.toString('latin1').split('\n');
    const joseLine = lines.findIndex((l) => l.startsWith('jos\u00e9@')) + 1;
    expect(joseLine).toBeGreaterThan(1);
    expect(encoding.map((r) => r.line)).toEqual([joseLine]);
    // The documented invalid rows are still there.
    for (const r of d.invalidRows) expect(rejects).toContainEqual(expect.objectContaining({ line: r.line, reason: r.reason }));
    expect(await check(got.db, 'josé@example.com')).toBe(0);
  });

  it('utf16le.csv imports without flags (its BOM says UTF-16LE)', async () => {
    const got = await importFixture(fixture('utf16le.csv'));
    await expectDocumented('utf16le.csv', got);
    expect(got.report.column).toBe('email');
  });

  it('gzip.csv.gz imports, and so do the same bytes under a name without .gz', async () => {
    const gz = await importFixture(fixture('gzip.csv.gz'));
    await expectDocumented('gzip.csv.gz', gz);
    const copy = join(await tempDir(), 'plain-name.csv');
    await copyFile(fixture('gzip.csv.gz'), copy);
    const plain = await importFixture(copy);
    await expectDocumented('gzip.csv.gz', plain);
    expect(await check(plain.db, 'gz3@example.org')).toBe(1);
  });

  it('bytes that start like gzip but are not: exit 2, OPTOUT_ERR_SOURCE', async () => {
    const bytes = await readFile(fixture('gzip.csv.gz'));
    const cut = join(await tempDir(), 'truncated.csv.gz');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const res = await runCli(['--db', join(await tempDir(), 'db'), 'import', cut, '--yes']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit: 2, codes: ['OPTOUT_ERR_SOURCE'] });
  });
});

describe('broken input', () => {
  it('broken-quote.csv: exit 2 with OPTOUT_ERR_CSV_PARSE and the line; earlier rows stay suppressed; the job failed', async () => {
    const text = await readFile(fixture('broken-quote.csv'), 'utf8');
    const lines = text.split('\n');
    // The broken record: the first line with an odd number of quotes.
    const brokenLine = lines.findIndex((l) => (l.match(/"/g) ?? []).length % 2 === 1) + 1;
    expect(brokenLine).toBeGreaterThan(2);
    const before = lines.slice(1, brokenLine - 1).map((l) => l.split(',')[0] as string);
    const after = lines.slice(brokenLine - 1).filter((l) => l !== '').map((l) => l.split(',')[0] as string);

    const db = join(await tempDir(), 'db');
    const res = await runCli(['--db', db, 'import', fixture('broken-quote.csv'), '--yes', '--json']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit: 2, codes: ['OPTOUT_ERR_CSV_PARSE'] });
    expect(res.stderr).toMatch(new RegExp(`\\bline ${brokenLine}\\b`));

    for (const email of before) expect(await check(db, email), email).toBe(1);
    for (const email of after) expect(await check(db, email), email).toBe(0);

    const statsRes = await runCli(['--db', db, 'stats', '--json']);
    expect(statsRes.code, statsRes.stderr).toBe(0);
    const stats = parseJson<Stats>(statsRes);
    expect(stats.entries).toBe(before.length);
    expect(stats.jobs).toHaveLength(1);
    expect(stats.jobs[0]?.state).toBe('failed');
    // The failed job's counts cover what it wrote.
    expect(stats.jobs[0]).toMatchObject({ rows: before.length, added: before.length });
  });

  /** A few good rows, one record with a quoted field of 1.2 MiB, a few more good rows. */
  async function hugeRecordFile(): Promise<{ path: string; line: number; before: string[] }> {
    const before = ['huge-a@example.com', 'huge-b@example.com', 'huge-c@example.com'];
    let text = 'email,name,note\n';
    for (const e of before) text += `${e},Name,short\n`;
    const line = before.length + 2;
    text += `huge-d@example.com,Huge,"${'y'.repeat(Math.round(1.2 * 1024 * 1024))}"\n`;
    text += 'huge-e@example.com,Name,short\nhuge-f@example.com,Name,short\n';
    const path = join(await tempDir(), 'huge.csv');
    await writeFile(path, text);
    return { path, line, before };
  }

  it('a record over 1 MiB: exit 2 with OPTOUT_ERR_RECORD_TOO_LARGE and its line', async () => {
    const { path, line } = await hugeRecordFile();
    const db = join(await tempDir(), 'db');
    const res = await runCli(['--db', db, 'import', path, '--yes', '--json']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit: 2, codes: ['OPTOUT_ERR_RECORD_TOO_LARGE'] });
    expect(res.stderr).toMatch(new RegExp(`\\bline ${line}\\b`));
    expect(await check(db, 'huge-e@example.com')).toBe(0);
  });

  it('the same record is accepted when --max-record-bytes allows it', async () => {
    const { path } = await hugeRecordFile();
    const got = await importFixture(path, '--max-record-bytes', String(2 * 1024 * 1024));
    expect(got.report).toMatchObject({ rows: 6, valid: 6, added: 6 });
  });

  it('--max-record-bytes below a normal record: the same error, with that record\'s line', async () => {
    const text = 'email,name,note\nshort@example.com,S,x\n' +
      `long@example.com,${'L'.repeat(40)},${'n'.repeat(40)}\nlater@example.com,S,x\n`;
    const path = join(await tempDir(), 'long.csv');
    await writeFile(path, text);
    const res = await runCli(['--db', join(await tempDir(), 'db'), 'import', path, '--yes', '--json', '--max-record-bytes', '64']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit: 2, codes: ['OPTOUT_ERR_RECORD_TOO_LARGE'] });
    expect(res.stderr).toMatch(/\bline 3\b/);
  });

  it('ragged.csv: rows without an email cell are MISSING_FIELD rejects', async () => {
    const d = doc('ragged.csv');
    const got = await importFixture(fixture('ragged.csv'));
    const rejects = await readRejects(got.rejects);
    const missing = rejects.filter((r) => r.reason === 'MISSING_FIELD');
    expect(missing.map((r) => r.line)).toEqual(d.invalidRows.filter((r) => r.reason === 'MISSING_FIELD').map((r) => r.line));
    expect(missing.length).toBeGreaterThan(0);
    // No blank lines or quotes in this file: record n is on line n + 1.
    for (const r of rejects) expect(r.row).toBe(r.line - 1);
  });

  it('quoted newlines: a reject\'s line is the physical line where its record starts', async () => {
    const got = await importFixture(fixture('quoted-newlines.csv'));
    const rejects = await readRejects(got.rejects);
    // The oracle: csv-parse's record start lines.
    const text = await readFile(fixture('quoted-newlines.csv'), 'utf8');
    const records = parse(text, { info: true, from_line: 2 }) as unknown as Array<{ record: string[]; info: { lines: number } }>;
    expect(rejects.length).toBeGreaterThan(0);
    for (const r of rejects) {
      const rec = records[r.row - 1];
      expect(rec?.record[1]?.trim(), `row ${r.row}`).toBe(r.value.trim());
      // csv-parse reports the line the record ends on; count the line breaks inside it back.
      const breaks = (rec?.record.join(',').match(/\n/g) ?? []).length;
      expect(r.line, `row ${r.row}`).toBe((rec?.info.lines ?? NaN) - breaks);
    }
  });
});

describe('column choice on the fixtures', () => {
  it('two-email-columns.csv: ambiguous without --column; --column by name or index picks one', async () => {
    const db = join(await tempDir(), 'db');
    const res = await runCli(['--db', db, 'import', fixture('two-email-columns.csv'), '--yes']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr)
      .toEqual({ exit: 2, codes: ['OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN'] });
    expect(res.stderr).toContain('email');
    expect(res.stderr).toContain('E-mail');

    const text = await readFile(fixture('two-email-columns.csv'), 'utf8');
    const records = parse(text, { columns: true }) as Array<Record<string, string>>;
    for (const [column, header] of [['email', 'email'], ['2', 'email'], ['E-mail', 'E-mail'], ['4', 'E-mail']] as const) {
      const cells = records.map((r) => r[header] ?? '');
      const nonEmpty = cells.filter((c) => c.trim() !== '');
      const got = await importFixture(fixture('two-email-columns.csv'), '--column', column);
      expect(got.report, `--column ${column}`).toMatchObject({
        column: header, rows: records.length, valid: nonEmpty.length, invalid: cells.length - nonEmpty.length,
        unique: new Set(nonEmpty.map((c) => c.trim().toLowerCase())).size,
      });
    }
  });

  it('no-email-column.csv: exit 2 with OPTOUT_ERR_NO_EMAIL_COLUMN listing the headers', async () => {
    const res = await runCli(['--db', join(await tempDir(), 'db'), 'import', fixture('no-email-column.csv'), '--yes']);
    expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit: 2, codes: ['OPTOUT_ERR_NO_EMAIL_COLUMN'] });
    const header = (await readFile(fixture('no-email-column.csv'), 'utf8')).split('\n')[0] ?? '';
    for (const h of header.split(',')) expect(res.stderr).toContain(h);
  });
});
