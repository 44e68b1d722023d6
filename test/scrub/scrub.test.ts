/**
 * runScrub on a real store built by runImport: the eligible and removed files byte for byte,
 * computed here from the rows as the test writes them (each row knows its fate), and every
 * row's fate cross-checked against `check` on the same store.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport, runScrub } from '../inline.js';
import { openStore, readAudit, isOptoutError, type ScrubOptions, type ScrubReport } from '../../src/index.js';

/** What a row is to the store: not listed, suppressed account-wide, suppressed in unit emea only, or not an address. */
type Kind = 'plain' | 'all' | 'emea' | 'invalid' | 'gap';

interface Row {
  raw: string;
  kind: Kind;
  /** The policy's code, for an invalid row. */
  code?: string;
  /** Fields, when fewer than the header's four. */
  fields?: number;
}

const HEADER = 'id,"Full name",Email,notes\r\n';

const ROWS: Row[] = [
  { raw: '1,Ann,ann@example.com,plain\r\n', kind: 'plain' },
  { raw: '2,"Doe, Jane",JANE.DOE@Example.com,"said ""stop"""\r\n', kind: 'all' },
  { raw: '3,First,f.i.r.s.t.last+promo@googlemail.com,gmail dots and tag\r\n', kind: 'all' },
  { raw: '4,"Multi\r\nLine",multi@example.com,"a,b"\r\n', kind: 'plain' },
  { raw: '5,Bad,not-an-email,\r\n', kind: 'invalid', code: 'NO_AT_SIGN' },
  { raw: '6,Ann again,ann@example.com,duplicate\r\n', kind: 'plain' },
  { raw: '7,Emea,Emea.Only+q3@example.org,\r\n', kind: 'emea' },
  { raw: '8,Short\r\n', kind: 'invalid', code: 'MISSING_FIELD', fields: 2 },
  { raw: '9,,jane.doe@example.com,repeat\r\n', kind: 'all' },
  { raw: '\r\n', kind: 'gap' },
  { raw: '10,Q,"Quinn <quinn@example.com>",display name\r\n', kind: 'plain' },
  { raw: '11,Sales,"sales@ACME-widgets.co.uk",\r\n', kind: 'all' },
  { raw: '12,"Emea, dup",emea.only@example.org,"LF inside\nquotes"\r\n', kind: 'emea' },
  { raw: '13,Bad2,"a@b@c.org",x\r\n', kind: 'invalid', code: 'MULTIPLE_AT_SIGNS' },
  { raw: '14,Last,last@example.com,no line break', kind: 'plain' },
];

const LIST = Buffer.from('\uFEFF' + HEADER + ROWS.map((r) => r.raw).join(''));

interface Scenario {
  unit?: string;
  type?: 'marketing' | 'sequence' | 'one-to-one';
  legalBasis?: string;
}

/** The fate of a row under a scenario: eligible (maybe on the legal basis), or removed with reason and detail. */
function fate(row: Row, s: Scenario): { eligible: true; legal: boolean } | { eligible: false; reason: string; detail: string } {
  if (row.kind === 'invalid') return { eligible: false, reason: 'invalid_address', detail: row.code as string };
  const suppressedIn = row.kind === 'all' ? '*' : row.kind === 'emea' && s.unit === 'emea' ? 'emea' : undefined;
  if (suppressedIn === undefined) return { eligible: true, legal: false };
  if (s.type === 'one-to-one' && (s.legalBasis ?? '').trim() !== '') return { eligible: true, legal: true };
  return { eligible: false, reason: 'suppressed', detail: suppressedIn };
}

function expected(s: Scenario): { eligible: string; removed: string; counts: Record<string, number> } {
  const rows = ROWS.filter((r) => r.kind !== 'gap');
  let eligible = HEADER;
  let removed = HEADER.replace('\r\n', ',optout_reason,optout_detail\r\n');
  const counts = { rows: rows.length, eligible: 0, suppressed: 0, invalid: 0, legalBasis: 0 };
  for (const row of rows) {
    const f = fate(row, s);
    if (f.eligible) {
      eligible += row.raw;
      counts.eligible++;
      if (f.legal) counts.legalBasis++;
    } else {
      const [, body, eol] = /^([\s\S]*?)(\r?\n)?$/.exec(row.raw) as RegExpExecArray;
      removed += `${body}${','.repeat(4 - (row.fields ?? 4))},${f.reason},${f.detail}${eol ?? '\r\n'}`;
      if (f.reason === 'suppressed') counts.suppressed++;
      else counts.invalid++;
    }
  }
  return { eligible, removed, counts };
}

let db: string;
let work: string;
let listPath: string;

async function scrub(s: Scenario, extra: Partial<ScrubOptions> = {}): Promise<{ report: ScrubReport; eligible: string; removed: string }> {
  const dir = await tempDir('optout-scrub-out-');
  const out = join(dir, 'eligible.csv');
  const removed = join(dir, 'removed.csv');
  const report = await runScrub({ source: { kind: 'file', path: listPath }, db, out, removed, threads: 2, ...s, ...extra });
  return { report, eligible: await readFile(out, 'utf8'), removed: await readFile(removed, 'utf8') };
}

beforeAll(async () => {
  work = await tempDir('optout-scrub-');
  db = join(work, 'db');
  const all = join(work, 'optouts.csv');
  const emea = join(work, 'emea.csv');
  await writeFile(all, 'email\njane.doe@example.com\nfirst.last@gmail.com\nsales@acme-widgets.co.uk\n');
  await writeFile(emea, 'email\nemea.only@example.org\n');
  expect((await runImport({ source: { kind: 'file', path: all }, db, confirm: { mode: 'yes' } })).added).toBe(3);
  expect((await runImport({ source: { kind: 'file', path: emea }, db, unit: 'emea', confirm: { mode: 'yes' } })).added).toBe(1);
  listPath = join(work, 'send-list.csv');
  await writeFile(listPath, LIST);
});

afterAll(removeTempDirs);

const SCENARIOS: Array<[string, Scenario]> = [
  ['no unit, marketing', {}],
  ['unit emea', { unit: 'emea' }],
  ['another unit', { unit: 'apac' }],
  ['sequence in unit emea', { unit: 'emea', type: 'sequence' }],
  ['one-to-one without a legal basis', { unit: 'emea', type: 'one-to-one' }],
  ['one-to-one with a blank legal basis', { type: 'one-to-one', legalBasis: '  ' }],
];

describe('runScrub', () => {
  it('reads the send list the way csv-parse does (the test data is what it claims)', () => {
    const records = parse(LIST, { bom: true, relax_column_count: true, skip_empty_lines: true }) as string[][];
    expect(records).toHaveLength(1 + ROWS.filter((r) => r.kind !== 'gap').length);
    expect(records[4]?.[1]).toBe('Multi\r\nLine');
    expect(records[8]).toEqual(['8', 'Short']);
  });

  it.each(SCENARIOS)('%s: eligible and removed files byte for byte, counts that add up', async (_name, s) => {
    const want = expected(s);
    const { report, eligible, removed } = await scrub(s);
    expect(eligible).toBe(want.eligible);
    expect(removed).toBe(want.removed);
    expect(report).toMatchObject(want.counts);
    expect(report.rows).toBe(report.eligible + report.suppressed + report.invalid);
    expect(report).toMatchObject({ unit: s.unit ?? '*', type: s.type ?? 'marketing', column: 'Email', delimiter: ',', source: 'send-list.csv' });
  });

  it('decides every row as check does, for every scenario', async () => {
    const records = parse(LIST, { bom: true, relax_column_count: true, skip_empty_lines: true }) as string[][];
    const emails = records.slice(1).map((r) => r[2]);
    const results = [];
    for (const [, s] of SCENARIOS) {
      const { eligible } = await scrub(s);
      const kept = new Set((parse(eligible, { relax_column_count: true }) as string[][]).slice(1).map((r) => r[0]));
      results.push({ s, kept: records.slice(1).map((r) => kept.has(r[0])) });
    }
    const store = await openStore(db);
    try {
      for (const { s, kept } of results) {
        const checked = await Promise.all(emails.map(async (email) =>
          email === undefined ? false : (await store.check({ email, ...s })).eligible));
        expect(kept, JSON.stringify(s)).toEqual(checked);
      }
    } finally {
      await store.close();
    }
  });

  it('one-to-one with a legal basis: suppressed rows are eligible and each decision is recorded', async () => {
    const legalCount = async (): Promise<unknown[]> => {
      const store = await openStore(db);
      try {
        const out: unknown[] = [];
        for await (const r of readAudit(store.store)) if (r.action === 'legal_basis') out.push(r);
        return out;
      } finally {
        await store.close();
      }
    };
    const before = (await legalCount()).length;
    const s: Scenario = { unit: 'emea', type: 'one-to-one', legalBasis: 'contract 2024-17' };
    const want = expected(s);
    const { report, eligible, removed } = await scrub(s, { caller: 'test' });
    expect(eligible).toBe(want.eligible);
    expect(removed).toBe(want.removed);
    expect(report.legalBasis).toBe(ROWS.filter((r) => r.kind === 'all' || r.kind === 'emea').length);
    const added = (await legalCount()).slice(before);
    expect(added).toHaveLength(report.legalBasis);
    expect(added[0]).toMatchObject({ key: 'jane.doe@example.com', unit: 'emea', actor: 'test', details: { type: 'one-to-one', basis: 'contract 2024-17' } });
  });

  it('without --removed writes the eligible file only', async () => {
    const dir = await tempDir();
    const out = join(dir, 'eligible.csv');
    const report = await runScrub({ source: { kind: 'file', path: listPath }, db, out });
    expect(await readFile(out, 'utf8')).toBe(expected({}).eligible);
    expect(report.removed).toBeNull();
    expect(readdirSync(dir)).toEqual(['eligible.csv']);
  });

  it('reads stdin, gzip, latin1 and UTF-16 and writes UTF-8', async () => {
    const want = expected({}).eligible;
    const viaStdin = await scrub({}, { source: { kind: 'stdin', stream: Readable.from([LIST.subarray(0, 50), LIST.subarray(50)]) } });
    expect(viaStdin.eligible).toBe(want);
    expect(viaStdin.report.source).toBe('stdin');
    const gz = join(work, 'list.csv.gz');
    await writeFile(gz, gzipSync(LIST));
    expect((await scrub({}, { source: { kind: 'file', path: gz } })).eligible).toBe(want);

    const text = 'Email;Name\r\njosé@example.com;José\r\njane.doe@example.com;Jane\r\n';
    const latin1 = join(work, 'latin1.csv');
    await writeFile(latin1, Buffer.from(text, 'latin1'));
    const l = await scrub({}, { source: { kind: 'file', path: latin1 }, encoding: 'latin1' });
    expect(l.eligible).toBe('Email;Name\r\njosé@example.com;José\r\n');
    expect(l.removed).toBe('Email;Name;optout_reason;optout_detail\r\njane.doe@example.com;Jane;suppressed;*\r\n');
    const utf16 = join(work, 'utf16.csv');
    await writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
    expect((await scrub({}, { source: { kind: 'file', path: utf16 } })).eligible).toBe('Email;Name\r\njosé@example.com;José\r\n');
  });

  it('keeps old-Mac CR line breaks and pads short removed rows in every dialect', async () => {
    const path = join(work, 'mac.csv');
    await writeFile(path, 'name\temail\tx\r"A\rB"\tkeep@example.com\t1\rshort\r\r\tjane.doe@example.com');
    const r = await scrub({}, { source: { kind: 'file', path } });
    expect(r.eligible).toBe('name\temail\tx\r"A\rB"\tkeep@example.com\t1\r');
    expect(r.removed).toBe('name\temail\tx\toptout_reason\toptout_detail\r' +
      'short\t\t\tinvalid_address\tMISSING_FIELD\r\tjane.doe@example.com\t\tsuppressed\t*\r');
    expect(r.report).toMatchObject({ rows: 3, eligible: 1, suppressed: 1, invalid: 1, delimiter: '\t' });
  });
});

describe('runScrub: failures leave no output', () => {
  it('a broken CSV fails with its line, and neither file appears (an old one stays as it was)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'broken.csv');
    await writeFile(path, 'email,name\na@example.com,A\nb@example.com,"B\nc@example.com,C\n');
    const out = join(dir, 'eligible.csv');
    await writeFile(out, 'previous run\n');
    const err = await runScrub({ source: { kind: 'file', path }, db, out, removed: join(dir, 'removed.csv') }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_CSV_PARSE');
    expect(isOptoutError(err) && err.location?.line).toBe(3);
    expect(await readFile(out, 'utf8')).toBe('previous run\n');
    expect(readdirSync(dir).sort()).toEqual(['broken.csv', 'eligible.csv']);
  });

  it('refuses a --db without a store instead of passing the whole list', async () => {
    const dir = await tempDir();
    const err = await runScrub({ source: { kind: 'file', path: listPath }, db: join(dir, 'nope'), out: join(dir, 'e.csv') }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('rejects bad options with OPTOUT_ERR_INVALID_OPTION', async () => {
    const dir = await tempDir();
    const out = join(dir, 'e.csv');
    const bad: Array<Partial<ScrubOptions>> = [
      { out: '' }, { removed: out }, { out: listPath }, { unit: 'no spaces' }, { type: 'bulk' as never },
      { column: '' }, { encoding: 'ebcdic' }, { threads: 0 }, { chunkBytes: 10 }, { maxRecordBytes: 1 },
    ];
    for (const o of bad) {
      const err = await runScrub({ source: { kind: 'file', path: listPath }, db, out, ...o }).catch((e: unknown) => e);
      expect(isOptoutError(err) && err.code, JSON.stringify(o)).toBe('OPTOUT_ERR_INVALID_OPTION');
    }
    expect(existsSync(out)).toBe(false);
  });

  it('an --out folder that does not exist is OPTOUT_ERR_OUTPUT', async () => {
    const dir = await tempDir();
    const err = await runScrub({ source: { kind: 'file', path: listPath }, db, out: join(dir, 'missing', 'e.csv') }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_OUTPUT');
  });

  it('an aborted scrub writes nothing', async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    controller.abort();
    const err = await runScrub({ source: { kind: 'file', path: listPath }, db, out: join(dir, 'e.csv'), signal: controller.signal }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_ABORTED');
    expect(readdirSync(dir)).toEqual([]);
  });
});
