/**
 * `optout import` end to end: the built CLI on real files in temporary folders, with a real
 * LevelDB store, asserting exit codes, error codes, the JSON report and the store's content.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SAMPLE, dumpStore, errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir, waitForFile, type CliResult,
} from '../helpers.js';
import type { ImportReport } from '../../src/report/summary.js';
import type { StoreStats } from '../../src/cli/commands/stats.js';

type Report = ImportReport;

type Stats = StoreStats;

const COUNT_FIELDS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;
const counts = (r: Report): Record<string, number> => Object.fromEntries(COUNT_FIELDS.map((k) => [k, r[k]]));

/** The README's sample: the expected counts of an import into an empty store. */
const SAMPLE_COUNTS = { rows: 13, valid: 9, invalid: 4, duplicates: 2, unique: 7, added: 7, alreadySuppressed: 0 };

function expectIdentities(r: Report): void {
  expect(r.rows).toBe(r.valid + r.invalid);
  expect(r.valid).toBe(r.unique + r.duplicates);
  expect(r.unique).toBe(r.added + r.alreadySuppressed);
}

function expectError(res: CliResult, exit: number, code: string): void {
  expect({ exit: res.code, codes: errorCodes(res.stderr) }, res.stderr).toEqual({ exit, codes: [code] });
}

const cli = (db: string, ...args: string[]): Promise<CliResult> => runCli(['--db', db, ...args]);
const check = async (db: string, email: string, ...args: string[]): Promise<number | null> => {
  const res = await cli(db, 'check', email, ...args);
  expect([0, 1], res.stderr).toContain(res.code);
  return res.code;
};
const stats = async (db: string): Promise<Stats> => {
  const res = await cli(db, 'stats', '--json');
  expect(res.code, res.stderr).toBe(0);
  return parseJson<Stats>(res);
};
const importJson = async (db: string, source: string, ...args: string[]): Promise<{ res: CliResult; report: Report }> => {
  const res = await cli(db, 'import', source, '--json', ...args);
  return { res, report: parseJson<Report>(res) };
};

/** Writes a CSV file in a fresh temp folder and returns its path. */
async function csvFile(content: string | Buffer, name = 'list.csv'): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, content);
  return path;
}

/** `n` distinct addresses, one per row, under an `email` header. */
function listOf(n: number, prefix: string): string {
  let s = 'email,name\n';
  for (let i = 0; i < n; i++) s += `${prefix}${i}@example.com,Person ${i}\n`;
  return s;
}

let seeded: string; // a store that already holds the sample import (job 1); copied, never used directly

/** A copy of the seeded store, to be changed (or proved unchanged) by one test. */
async function seededCopy(): Promise<string> {
  const db = join(await tempDir(), 'db');
  await cp(seeded, db, { recursive: true });
  return db;
}

const freshDb = async (): Promise<string> => join(await tempDir(), 'db');

beforeAll(async () => {
  seeded = await freshDb();
  const { res, report } = await importJson(seeded, SAMPLE, '--yes');
  expect(res.code, res.stderr).toBe(0);
  expect(report.added).toBe(7);
});

afterAll(removeTempDirs);

describe.concurrent('import: the README sample', () => {
  it('--yes --json reports the documented counts, a job and a confirmation', async () => {
    const db = await freshDb();
    const { res, report } = await importJson(db, SAMPLE, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(counts(report)).toEqual(SAMPLE_COUNTS);
    expectIdentities(report);
    expect(report.jobId).toBe('1');
    expect(report.confirmed).toBe(true);
    expect(report.dryRun).toBe(false);
    expect(report.resumed).toBe(false);
    expect(report).toMatchObject({ source: 'sample-optouts.csv', scope: '*', reason: 'unsubscribed', column: 'Email', delimiter: ',' });
    expect(report.bytes).toBe((await readFile(SAMPLE)).length);
    // Nothing but the report on stdout, nothing at all on stderr (stderr is not a terminal).
    expect(res.stdout.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toBe('');
    const s = await stats(db);
    expect(s.entries).toBe(7);
    expect(s.scopes).toEqual({ '*': 7 });
  });

  it('prints the human summary without --json', async () => {
    const db = await freshDb();
    const res = await cli(db, 'import', SAMPLE, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Imported sample-optouts\.csv -> account-wide, reason unsubscribed, job 1/m);
    expect(res.stdout).toMatch(/^\s+email column\s+Email \(delimiter ,\)$/m);
    for (const [label, n] of [['rows', 13], ['valid', 9], ['invalid', 4], ['duplicates', 2], ['unique', 7],
      ['already suppressed', 0], ['added', 7]] as const) {
      expect(res.stdout).toMatch(new RegExp(`^\\s+${label}\\s+${n}$`, 'm'));
    }
  });

  it('re-importing adds 0 and reports every unique address as already suppressed', async () => {
    const db = await seededCopy();
    const { res, report } = await importJson(db, SAMPLE, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(counts(report)).toEqual({ ...SAMPLE_COUNTS, added: 0, alreadySuppressed: 7 });
    expect(report.jobId).toBe('2');
    const s = await stats(db);
    expect(s.entries).toBe(7);
    expect(s.jobs.map((j) => [j.id, j.state, j['added'], j['alreadySuppressed']])).toEqual([
      ['1', 'completed', 7, 0],
      ['2', 'completed', 0, 7],
    ]);
  });

  it('--rejects writes line,row,value,reason for the four invalid rows', async () => {
    const dir = await tempDir();
    const rejects = join(dir, 'rejects.csv');
    const { res, report } = await importJson(join(dir, 'db'), SAMPLE, '--yes', '--rejects', rejects);
    expect(res.code, res.stderr).toBe(0);
    expect(report.rejectsFile).toBe(rejects);
    expect(await readFile(rejects, 'utf8')).toBe(
      'line,row,value,reason\n' +
      '10,9,not-an-email,NO_AT_SIGN\n' +
      '11,10,someone@localhost,DOMAIN_NO_DOT\n' +
      '12,11,,EMPTY\n' +
      '13,12,"Doe, Jane",INVALID_CHARACTER\n');
  });

  it('suppresses every valid row and only those', async () => {
    const db = await seededCopy();
    for (const email of ['jane.doe@example.com', 'john.smith@example.org', 'ana.lima@example.net', 'firstlast@gmail.com',
      "O'Brien@example.ie", 'müller@xn--bcher-kva.de', 'sales@acme-widgets.co.uk']) {
      expect(await check(db, email), email).toBe(1);
    }
    expect(await check(db, 'someone.else@example.com')).toBe(0);
  });
});

describe.concurrent('import: confirmation', () => {
  it('--dry-run writes nothing into a store that already holds an import', async () => {
    const db = await seededCopy();
    const other = await csvFile(listOf(5, 'dry'));
    const before = await dumpStore(db);
    expect(before.length).toBeGreaterThan(0);
    const { res, report } = await importJson(db, other, '--dry-run');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ rows: 5, unique: 5, added: 5, dryRun: true, confirmed: false, jobId: null });
    expect(await dumpStore(db)).toEqual(before);
    expect(await check(db, 'dry0@example.com')).toBe(0);
  });

  it('--dry-run on a folder that does not exist creates nothing, not even the folder', async () => {
    const db = await freshDb();
    const { res, report } = await importJson(db, SAMPLE, '--dry-run');
    expect(res.code, res.stderr).toBe(0);
    expect(counts(report)).toEqual(SAMPLE_COUNTS);
    expect(report.dryRun).toBe(true);
    expect(existsSync(db)).toBe(false);
  });

  it('without --yes, --confirm or --dry-run and no terminal: exit 3, the report on stdout, nothing written', async () => {
    const db = await seededCopy();
    const other = await csvFile(listOf(4, 'ask'));
    const before = await dumpStore(db);
    const { res, report } = await importJson(db, other);
    expect(res.code, res.stderr).toBe(3);
    expect(report).toMatchObject({ rows: 4, unique: 4, confirmed: false, jobId: null, dryRun: false });
    expect(await dumpStore(db)).toEqual(before);

    const human = await cli(db, 'import', other);
    expect(human.code, human.stderr).toBe(3);
    expect(human.stdout).toMatch(/^\s+unique\s+4$/m);
    expect(await dumpStore(db)).toEqual(before);

    const fresh = await freshDb();
    expect((await importJson(fresh, SAMPLE)).res.code).toBe(3);
    const s = await stats(fresh);
    expect([s.entries, s.jobs]).toEqual([0, []]);
  });

  it('--confirm with the wrong count: exit 3 and the store is byte-identical', async () => {
    const db = await seededCopy();
    const other = await csvFile(listOf(6, 'wrong'));
    const before = await dumpStore(db);
    for (const given of ['5', '7', '0', '60']) {
      const { res, report } = await importJson(db, other, '--confirm', given);
      expect(res.code, `--confirm ${given}: ${res.stderr}`).toBe(3);
      expect(report).toMatchObject({ unique: 6, confirmed: false, jobId: null, expectedCount: Number(given) });
    }
    expect(await dumpStore(db)).toEqual(before);
    expect(await check(db, 'wrong0@example.com')).toBe(0);
  });

  it('--confirm with the unique count imports', async () => {
    const db = await freshDb();
    const { res, report } = await importJson(db, SAMPLE, '--confirm', '7');
    expect(res.code, res.stderr).toBe(0);
    expect(counts(report)).toEqual(SAMPLE_COUNTS);
    expect(report).toMatchObject({ confirmed: true, jobId: '1', expectedCount: null });
    expect(await check(db, 'jane.doe@example.com')).toBe(1);
    expect((await stats(db)).entries).toBe(7);
  });

  it('--confirm accepts a count written with thousands separators', async () => {
    const list = await csvFile(listOf(1234, 'sep'));
    for (const given of ['1,234', '1 234', '1_234']) {
      const db = await freshDb();
      const { res, report } = await importJson(db, list, '--confirm', given);
      expect(res.code, `--confirm ${given}: ${res.stderr}`).toBe(0);
      expect(report).toMatchObject({ unique: 1234, added: 1234, confirmed: true });
    }
    // A separated count that is not the unique count is a mismatch (exit 3), not a bad option.
    const db = await freshDb();
    const { res, report } = await importJson(db, list, '--confirm', '1,235');
    expect(res.code, res.stderr).toBe(3);
    expect(report.expectedCount).toBe(1235);
  });

  it('two of --dry-run, --confirm and --yes together: exit 2, nothing written', async () => {
    const db = await seededCopy();
    const other = await csvFile(listOf(3, 'both'));
    const before = await dumpStore(db);
    for (const flags of [['--yes', '--dry-run'], ['--yes', '--confirm', '3'], ['--dry-run', '--confirm', '3'],
      ['--yes', '--dry-run', '--confirm', '3']]) {
      const res = await cli(db, 'import', other, ...flags);
      expectError(res, 2, 'OPTOUT_ERR_INVALID_OPTION');
    }
    expect(await dumpStore(db)).toEqual(before);
  });

  it('--confirm that is not a number: exit 2', async () => {
    const db = await freshDb();
    for (const given of ['seven', '-7', '7.5']) {
      const res = await cli(db, 'import', SAMPLE, '--confirm', given);
      expectError(res, 2, 'OPTOUT_ERR_INVALID_OPTION');
    }
  });
});

describe.concurrent('import: business units', () => {
  it('--reason-column gives each row its own reason; a recognised export keeps its own reason without --reason', async () => {
    const db = await freshDb();
    const list = await csvFile('email,why\nrc1@example.com,hard_bounce\nrc2@example.com,Spam\nrc3@example.com,\n');
    const { res, report } = await importJson(db, list, '--yes', '--reason-column', 'why');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ reason: 'unsubscribed', reasonColumn: 'why', reasons: { bounced: 1, complaint: 1, unsubscribed: 1 } });
    const shown = await cli(db, 'show', 'rc2@example.com', '--json');
    expect(shown.stdout).toContain('"reason":"complaint"');
    const exported = await cli(db, 'export', '--reason', 'bounced');
    expect(exported.stdout.trim().split('\n').slice(1).map((l) => l.split(',')[0])).toEqual(['rc1@example.com']);
    const cleaned = await csvFile('Email Address,First Name,CLEAN_TIME\ngone@example.com,Gone,2026-01-01\n', 'cleaned.csv');
    expect((await importJson(db, cleaned, '--yes')).report).toMatchObject({ format: 'mailchimp-cleaned', reason: 'bounced' });
  });

  it('a unit import suppresses in that unit only', async () => {
    const db = await freshDb();
    const { res, report } = await importJson(db, SAMPLE, '--yes', '--unit', 'A');
    expect(res.code, res.stderr).toBe(0);
    expect(report.scope).toBe('A');
    expect(await check(db, 'jane.doe@example.com', '--unit', 'A')).toBe(1);
    expect(await check(db, 'jane.doe@example.com', '--unit', 'B')).toBe(0);
    expect(await check(db, 'jane.doe@example.com')).toBe(0);
    expect((await stats(db)).scopes).toEqual({ A: 7 });
  });

  it('an account-wide import is suppressed with any unit', async () => {
    const db = await seededCopy();
    for (const unit of ['A', 'B', 'some_unit-9']) {
      expect(await check(db, 'jane.doe@example.com', '--unit', unit), unit).toBe(1);
    }
    expect(await check(db, 'jane.doe@example.com')).toBe(1);
  });

  it('a key imported into a unit and then account-wide is added in both scopes', async () => {
    const db = await freshDb();
    const first = await importJson(db, SAMPLE, '--yes', '--unit', 'A');
    expect(first.res.code, first.res.stderr).toBe(0);
    expect(first.report).toMatchObject({ added: 7, alreadySuppressed: 0 });
    const second = await importJson(db, SAMPLE, '--yes');
    expect(second.res.code, second.res.stderr).toBe(0);
    expect(counts(second.report)).toEqual(SAMPLE_COUNTS);
    const s = await stats(db);
    expect(s.scopes).toEqual({ '*': 7, A: 7 });
    expect(s.entries).toBe(14);
    // And the other way round: account-wide first, then a unit.
    const third = await importJson(db, SAMPLE, '--yes', '--unit', 'B');
    expect(third.report).toMatchObject({ added: 7, alreadySuppressed: 0 });
    expect((await stats(db)).scopes).toEqual({ '*': 7, A: 7, B: 7 });
  });
});

describe.concurrent('import: the key rules', () => {
  it('an opt-out of first.last+promo@gmail.com suppresses FirstLast@googlemail.com', async () => {
    const db = await freshDb();
    const list = await csvFile('email\nfirst.last+promo@gmail.com\n');
    const { res, report } = await importJson(db, list, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(report.added).toBe(1);
    expect(await check(db, 'FirstLast@googlemail.com')).toBe(1);
    expect(await check(db, 'f.i.r.s.t.l.a.s.t+other@gmail.com')).toBe(1);
    expect(await check(db, 'firstlast@example.com')).toBe(0);
  });

  it('variants of one mailbox in one file count as duplicates', async () => {
    const db = await freshDb();
    const list = await csvFile('email\nfirst.last+promo@gmail.com\nFirstLast@googlemail.com\n firstlast@GMAIL.com \n' +
      'jane+news@x.org\njane@x.org\n');
    const { res, report } = await importJson(db, list, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ rows: 5, valid: 5, unique: 2, duplicates: 3, added: 2 });
  });
});

describe.concurrent('import: the email column', () => {
  it('detects a Norwegian E-post header (semicolons)', async () => {
    const db = await freshDb();
    const list = await csvFile('Navn;E-post;Dato\nOla Nordmann;ola@example.no;2026-01-01\nKari;kari@example.no;2026-01-02\n');
    const { res, report } = await importJson(db, list, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ column: 'E-post', delimiter: ';', rows: 2, added: 2 });
    expect(await check(db, 'ola@example.no')).toBe(1);
  });

  it('detects an "E-mail Address" header', async () => {
    const db = await freshDb();
    const list = await csvFile('First Name,E-mail Address,Company\nAnn,ann@example.com,Acme\nBob,bob@example.com,Acme\n');
    const { res, report } = await importJson(db, list, '--yes');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ column: 'E-mail Address', rows: 2, added: 2 });
    expect(await check(db, 'bob@example.com')).toBe(1);
  });

  const twoColumns = 'id,primary,secondary\n1,p1@example.com,s1@example.com\n2,p2@example.com,s2@example.com\n';

  it('with zero flags: a header no list names is found by its addresses, a headerless list keeps its first line', async () => {
    const db = await freshDb();
    const named = await importJson(db, await csvFile('Customer,Contact Point\nAnn,ann@example.com\nBob,bob@example.com\n'), '--yes');
    expect(named.res.code, named.res.stderr).toBe(0);
    expect(named.report).toMatchObject({ column: 'Contact Point', header: 'row', rows: 2, added: 2 });
    const ses = await importJson(db, await csvFile('first@example.com,BOUNCE\nsecond@example.com,COMPLAINT\n'), '--yes');
    expect(ses.res.code, ses.res.stderr).toBe(0);
    expect(ses.report).toMatchObject({ column: '1', header: 'none', rows: 2, added: 2 });
    expect(await check(db, 'first@example.com')).toBe(1);
  });

  it('provider exports with zero flags: --json gives format, header and skipped', async () => {
    const db = await freshDb();
    const hubspot = await csvFile('Record ID,Email,Unsubscribed from all email\n1,in@example.com,true\n2,out@example.com,false\n');
    const h = await importJson(db, hubspot, '--yes');
    expect(h.res.code, h.res.stderr).toBe(0);
    expect(h.report).toMatchObject({ format: 'hubspot-contacts', header: 'row', rows: 2, valid: 1, skipped: 1, added: 1 });
    const ses = await csvFile(JSON.stringify({ SuppressedDestinationSummaries: [
      { EmailAddress: 'ses@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-05T10:00:00Z' }] }, null, 2));
    const j = await importJson(db, ses, '--yes');
    expect(j.res.code, j.res.stderr).toBe(0);
    expect(j.report).toMatchObject({ format: 'ses-json', header: 'row', rows: 1, skipped: 0, added: 1 });
    expect(await check(db, 'in@example.com')).toBe(1);
    expect(await check(db, 'out@example.com')).toBe(0);
    expect(await check(db, 'ses@example.com')).toBe(1);
  });

  it('--column by header name', async () => {
    const db = await freshDb();
    const list = await csvFile(twoColumns);
    const { res, report } = await importJson(db, list, '--yes', '--column', 'secondary');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ column: 'secondary', added: 2 });
    expect(await check(db, 's1@example.com')).toBe(1);
    expect(await check(db, 'p1@example.com')).toBe(0);
  });

  it('--column by 1-based index', async () => {
    const db = await freshDb();
    const list = await csvFile(twoColumns);
    const { res, report } = await importJson(db, list, '--yes', '--column', '2');
    expect(res.code, res.stderr).toBe(0);
    expect(report).toMatchObject({ column: 'primary', added: 2 });
    expect(await check(db, 'p2@example.com')).toBe(1);
    expect(await check(db, 's2@example.com')).toBe(0);
  });

  it('two email-like headers: exit 2 naming both, nothing written', async () => {
    const db = await seededCopy();
    const before = await dumpStore(db);
    const list = await csvFile('Name,Email,E-Mail\nAnn,ann@example.com,ann2@example.com\n');
    const res = await cli(db, 'import', list, '--yes');
    expectError(res, 2, 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN');
    expect(res.stderr).toContain('Email');
    expect(res.stderr).toContain('E-Mail');
    expect(await dumpStore(db)).toEqual(before);
  });

  it('no email-like header and no column of addresses: exit 2 listing the headers', async () => {
    const db = await seededCopy();
    const before = await dumpStore(db);
    const list = await csvFile('Customer,Contact Point,Signed Up\nAnn,+47 900 00 001,2026\n');
    const res = await cli(db, 'import', list, '--yes');
    expectError(res, 2, 'OPTOUT_ERR_NO_EMAIL_COLUMN');
    for (const h of ['Customer', 'Contact Point', 'Signed Up']) expect(res.stderr).toContain(h);
    expect(await dumpStore(db)).toEqual(before);
    expectError(await cli(db, 'import', list, '--dry-run'), 2, 'OPTOUT_ERR_NO_EMAIL_COLUMN');
    expect(await dumpStore(db)).toEqual(before);
  });

  it('--column naming no header, or an index past the last column: exit 2', async () => {
    const db = await seededCopy();
    const before = await dumpStore(db);
    const list = await csvFile(twoColumns);
    expectError(await cli(db, 'import', list, '--yes', '--column', 'tertiary'), 2, 'OPTOUT_ERR_COLUMN_NOT_FOUND');
    expectError(await cli(db, 'import', list, '--yes', '--column', '4'), 2, 'OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect(await dumpStore(db)).toEqual(before);
  });
});

describe.concurrent('import: stdin', () => {
  it('import - --yes gives the same counts as the file', async () => {
    const db = await freshDb();
    const res = await runCli(['--db', db, 'import', '-', '--yes', '--json'], { input: await readFile(SAMPLE) });
    expect(res.code, res.stderr).toBe(0);
    const report = parseJson<Report>(res);
    expect(counts(report)).toEqual(SAMPLE_COUNTS);
    expect(report).toMatchObject({ source: 'stdin', confirmed: true, jobId: '1' });
    expect(await check(db, 'firstlast@googlemail.com')).toBe(1);
  });

  it('import - --confirm 7 spools stdin, analyses, then imports', async () => {
    const db = await freshDb();
    const res = await runCli(['--db', db, 'import', '-', '--confirm', '7', '--json'], { input: await readFile(SAMPLE) });
    expect(res.code, res.stderr).toBe(0);
    const report = parseJson<Report>(res);
    expect(counts(report)).toEqual(SAMPLE_COUNTS);
    expect(report.confirmed).toBe(true);
    expect((await stats(db)).entries).toBe(7);
  });

  it('import - with a wrong --confirm: exit 3, nothing written', async () => {
    const db = await seededCopy();
    const before = await dumpStore(db);
    // 9 rows, 8 unique: confirming the row count is the classic mistake.
    const input = listOf(8, 'stdin') + 'stdin0@example.com,again\n';
    const res = await runCli(['--db', db, 'import', '-', '--confirm', '9', '--json'], { input });
    expect(res.code, res.stderr).toBe(3);
    expect(parseJson<Report>(res)).toMatchObject({ rows: 9, unique: 8, duplicates: 1, confirmed: false, expectedCount: 9 });
    expect(await dumpStore(db)).toEqual(before);
  });
});

describe.concurrent('import: a broken record after 1,000 valid rows', () => {
  const valid = Array.from({ length: 1000 }, (_, i) => `kept${i}@broken.test`);
  const line = valid.length + 2;
  /**
   * Then a quoted record of 4 MB with a line break every 100 bytes (past the default 1 MiB
   * limit, so chunk cuts fall inside it and the reading carries it over), then one more row.
   */
  const brokenList = (): Promise<string> => csvFile(Buffer.concat([
    Buffer.from('email,note\n' + valid.map((e) => `${e},ok\n`).join('') + 'huge@broken.test,"'),
    Buffer.from(`${'x'.repeat(99)}\n`.repeat(40_000)),
    Buffer.from('"\nafter@broken.test,ok\n'),
  ]));

  for (const args of [['--threads', '1', '--yes'], ['--threads', '2', '--yes'], ['--threads', '1', '--confirm', '1000']]) {
    it(`${args.join(' ')}: exit 2 with its line; every row before it is stored and the job failed`, async () => {
      const db = await freshDb();
      const res = await cli(db, 'import', await brokenList(), ...args);
      expectError(res, 2, 'OPTOUT_ERR_RECORD_TOO_LARGE');
      expect(res.stderr).toMatch(new RegExp(`\\bline ${line}\\b`));
      expect(await check(db, 'kept999@broken.test')).toBe(1);
      const exported = await cli(db, 'export');
      expect(exported.stdout.trim().split('\n').slice(1).map((l) => l.split(',')[0]).sort()).toEqual([...valid].sort());
      const jobs = await cli(db, 'jobs', '--json');
      expect(parseJson(jobs)['jobs']).toMatchObject([{ state: 'failed', added: 1000, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line } }]);
    });
  }

  it('--dry-run: the report counts the rows before it and carries the error; exit 2, nothing written', async () => {
    const db = await freshDb();
    const res = await cli(db, 'import', await brokenList(), '--dry-run', '--threads', '1', '--json');
    expectError(res, 2, 'OPTOUT_ERR_RECORD_TOO_LARGE');
    expect(parseJson<Report>(res)).toMatchObject({
      rows: 1000, unique: 1000, dryRun: true, confirmed: false, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line },
    });
    expect(existsSync(db)).toBe(false);
  });

  it('no confirmation and no terminal: exit 3, the summary names the broken record', async () => {
    const db = await freshDb();
    const res = await cli(db, 'import', await brokenList(), '--threads', '1');
    expect(res.code, res.stderr).toBe(3);
    expect(res.stdout).toMatch(new RegExp(`stopped at +line 1,002: .*\\[OPTOUT_ERR_RECORD_TOO_LARGE\\]`));
    expect(res.stderr).toContain('--confirm 1000');
    expect(await stats(db)).toMatchObject({ entries: 0, jobs: [] });
  });
});

describe.concurrent('import: option and source errors', () => {
  it('a missing file: exit 2, OPTOUT_ERR_SOURCE', async () => {
    const dir = await tempDir();
    const res = await cli(join(dir, 'db'), 'import', join(dir, 'nope.csv'), '--yes');
    expectError(res, 2, 'OPTOUT_ERR_SOURCE');
  });

  it('bad --unit, --reason, --encoding: exit 2, OPTOUT_ERR_INVALID_OPTION, nothing written', async () => {
    const db = await seededCopy();
    const before = await dumpStore(db);
    for (const bad of [['--unit', 'a b'], ['--unit', 'x'.repeat(65)], ['--unit', 'é'], ['--reason', 'spam'],
      ['--encoding', 'ebcdic']]) {
      const res = await cli(db, 'import', SAMPLE, '--yes', ...bad);
      expect({ exit: res.code, codes: errorCodes(res.stderr) }, `${bad.join(' ')}: ${res.stderr}`)
        .toEqual({ exit: 2, codes: ['OPTOUT_ERR_INVALID_OPTION'] });
    }
    expect(await dumpStore(db)).toEqual(before);
  });

  it('every reason is accepted', async () => {
    const db = await freshDb();
    for (const reason of ['unsubscribed', 'bounced', 'complaint', 'manual']) {
      const { res, report } = await importJson(db, SAMPLE, '--yes', '--reason', reason);
      expect(res.code, res.stderr).toBe(0);
      expect(report.reason).toBe(reason);
    }
  });
});

describe.concurrent('the store lock', () => {
  it('a second process gets OPTOUT_ERR_STORE_LOCKED with the owner pid; the first then completes', async () => {
    const db = await freshDb();
    const first = startCli(['--db', db, 'import', '-', '--yes', '--json']);
    try {
      first.child.stdin.write('email,name\nlocked1@example.com,One\n');
      await waitForFile(join(db, 'owner.json'));
      const pid = first.child.pid;
      expect(pid).toBeTypeOf('number');

      const second = await cli(db, 'check', 'locked1@example.com');
      expectError(second, 2, 'OPTOUT_ERR_STORE_LOCKED');
      expect(second.stderr).toMatch(new RegExp(`\\b${String(pid)}\\b`));
      const third = await cli(db, 'import', SAMPLE, '--yes');
      expectError(third, 2, 'OPTOUT_ERR_STORE_LOCKED');
      expect(first.child.exitCode).toBeNull();

      first.child.stdin.end('locked2@example.com,Two\n');
      const done = await first.done;
      expect(done.code, done.stderr).toBe(0);
      expect(parseJson<Report>(done)).toMatchObject({ rows: 2, added: 2 });
      expect(existsSync(join(db, 'owner.json'))).toBe(false);
      expect(await check(db, 'locked1@example.com')).toBe(1);
      expect(await check(db, 'locked2@example.com')).toBe(1);
    } finally {
      if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
      await first.done.catch(() => undefined);
    }
  });
});
