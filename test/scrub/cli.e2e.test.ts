/**
 * `optout scrub` end to end: the built CLI on real files and a real store, asserting exit codes,
 * error codes, the JSON report and the files it leaves.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LevelStore } from '../../src/store/level/level-store.js';
import { ROOT, SAMPLE, errorCodes, parseJson, removeTempDirs, runCli, tempDir, type CliResult } from '../helpers.js';
import type { ScrubReport } from '../../src/scrub/report.js';

let db: string;
let list: string;

const LIST = 'Email,Name\r\n' +
  'jane.doe@example.com,Jane\r\n' +
  'new.person@example.com,"New, Person"\r\n' +
  'FIRST.LAST+promo@googlemail.com,First\r\n' +
  'not-an-email,Broken\r\n' +
  'new.person@example.com,Again\r\n';

const cli = (...args: string[]): Promise<CliResult> => runCli(['--db', db, ...args]);

function expectError(res: CliResult, exit: number, code: string): void {
  expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit, codes: [code] });
}

beforeAll(async () => {
  const dir = await tempDir('optout-scrub-cli-');
  db = join(dir, 'db');
  const res = await runCli(['--db', db, 'import', SAMPLE, '--yes']);
  expect(res.code, res.stderr).toBe(0);
  list = join(dir, 'send.csv');
  await writeFile(list, LIST);
});

afterAll(removeTempDirs);

// One store for every test, and a scrub holds its store: the tests run one at a time.
describe('optout scrub', () => {
  it('gives the README example: its summary counts and both files as shown', async () => {
    const dir = await tempDir();
    const store = join(dir, 'db');
    expect((await runCli(['--db', store, 'import', SAMPLE, '--yes'])).code).toBe(0);
    const res = await runCli(['--db', store, 'scrub', join(ROOT, 'data', 'sample-send-list.csv'), '--out', 'eligible.csv', '--removed', 'removed.csv'], { cwd: dir });
    expect(res.code, res.stderr).toBe(0);
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const example = readme.slice(readme.indexOf('$ npx optout scrub data/sample-send-list.csv'));
    /** The lines a `$ command` of the example printed, up to the next command or the end of the block. */
    const printed = (command: string): string => {
      const after = example.slice(example.indexOf(`$ ${command}\n`) + command.length + 3);
      return after.slice(0, after.search(/^(\$ |```)/m));
    };
    const summary = printed('npx optout scrub data/sample-send-list.csv --out eligible.csv --removed removed.csv');
    expect(res.stdout.replace(/^ {2}time .*\n/m, '')).toBe(summary.replace(/^ {2}time .*\n/m, ''));
    expect(await readFile(join(dir, 'eligible.csv'), 'utf8')).toBe(printed('cat eligible.csv'));
    expect(await readFile(join(dir, 'removed.csv'), 'utf8')).toBe(printed('cat removed.csv'));
  });

  it('--json prints one report, exit 0, and writes both files', async () => {
    const dir = await tempDir();
    const out = join(dir, 'eligible.csv');
    const removed = join(dir, 'removed.csv');
    const res = await cli('scrub', list, '--out', out, '--removed', removed, '--json');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toBe('');
    const report = parseJson<ScrubReport>(res);
    expect(report).toMatchObject({
      rows: 5, eligible: 2, suppressed: 2, invalid: 1, legalBasis: 0, column: 'Email', delimiter: ',', out, removed,
      unit: '*', type: 'marketing', source: 'send.csv',
    });
    expect(report.rowsPerSecond).toBeGreaterThan(0);
    expect(await readFile(out, 'utf8')).toBe('Email,Name\r\nnew.person@example.com,"New, Person"\r\nnew.person@example.com,Again\r\n');
    expect(await readFile(removed, 'utf8')).toBe('Email,Name,optout_reason,optout_detail\r\n' +
      'jane.doe@example.com,Jane,suppressed,*\r\n' +
      'FIRST.LAST+promo@googlemail.com,First,suppressed,*\r\n' +
      'not-an-email,Broken,invalid_address,NO_AT_SIGN\r\n');
  });

  it('prints a readable summary without --json', async () => {
    const dir = await tempDir();
    const res = await cli('scrub', list, '--out', join(dir, 'e.csv'), '--unit', 'emea', '--type', 'sequence');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Scrubbed send\.csv against unit emea and account-wide suppressions \(sequence\)$/m);
    for (const [label, n] of [['rows', 5], ['suppressed', 2], ['invalid', 1]] as const) {
      expect(res.stdout).toMatch(new RegExp(`^\\s+${label}\\s+${n}$`, 'm'));
    }
    expect(res.stdout).toMatch(/^\s+eligible\s+2 -> .*e\.csv$/m);
  });

  it('one-to-one with --legal-basis lets suppressed rows through and says so', async () => {
    const dir = await tempDir();
    const out = join(dir, 'e.csv');
    const res = await cli('scrub', list, '--out', out, '--type', 'one-to-one', '--legal-basis', 'open support ticket', '--json');
    expect(res.code, res.stderr).toBe(0);
    expect(parseJson<ScrubReport>(res)).toMatchObject({ rows: 5, eligible: 4, suppressed: 0, invalid: 1, legalBasis: 2 });
  });

  it('reads - as stdin', async () => {
    const dir = await tempDir();
    const out = join(dir, 'e.csv');
    const res = await runCli(['--db', db, 'scrub', '-', '--out', out, '--json'], { input: LIST });
    expect(res.code, res.stderr).toBe(0);
    expect(parseJson<ScrubReport>(res)).toMatchObject({ source: 'stdin', rows: 5, eligible: 2 });
  });

  it('a broken CSV: exit 2, OPTOUT_ERR_CSV_PARSE with the line, no output file', async () => {
    const dir = await tempDir();
    const broken = join(dir, 'broken.csv');
    await writeFile(broken, 'email\nok@example.com\n"unclosed@example.com\nmore@example.com\n');
    const out = join(dir, 'e.csv');
    const res = await cli('scrub', broken, '--out', out, '--removed', join(dir, 'r.csv'));
    expectError(res, 2, 'OPTOUT_ERR_CSV_PARSE');
    expect(res.stderr).toMatch(/line 3/);
    expect(readdirSync(dir)).toEqual(['broken.csv']);
  });

  it('usage errors exit 2: no --out, a bad --type, a missing file, no email column', async () => {
    const dir = await tempDir();
    const out = join(dir, 'e.csv');
    expect((await cli('scrub', list)).code).toBe(2);
    expectError(await cli('scrub', list, '--out', out, '--type', 'bulk'), 2, 'OPTOUT_ERR_INVALID_OPTION');
    expectError(await cli('scrub', list, '--out', out, '--threads', '0'), 2, 'OPTOUT_ERR_INVALID_OPTION');
    expectError(await cli('scrub', join(dir, 'missing.csv'), '--out', out), 2, 'OPTOUT_ERR_SOURCE');
    expectError(await cli('scrub', list, '--out', out, '--column', 'Phone'), 2, 'OPTOUT_ERR_COLUMN_NOT_FOUND');
    expectError(await runCli(['--db', join(dir, 'no-store'), 'scrub', list, '--out', out]), 2, 'OPTOUT_ERR_INVALID_OPTION');
    expect(existsSync(join(dir, 'no-store'))).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it('a store held by another process: exit 2, OPTOUT_ERR_STORE_LOCKED', async () => {
    const dir = await tempDir();
    const holder = await LevelStore.open(db, { purpose: 'test holding the store' });
    let res: CliResult;
    try {
      res = await cli('scrub', list, '--out', join(dir, 'e.csv'));
    } finally {
      await holder.close();
    }
    expectError(res, 2, 'OPTOUT_ERR_STORE_LOCKED');
    expect(readdirSync(dir)).toEqual([]);
  });
});
