/**
 * An NDJSON list imports exactly as the CSV of the same rows does: the same counts, reasons,
 * skipped rows, rejects file and stored entries, for every recognised export and the reading
 * options. The CSV import is the oracle: a CSV whose header is the first record's keys and whose
 * cells are the records' values (text as it is, nested values as JSON text, a missing key empty).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ImportOptions } from '../../src/options.js';
import type { ImportReport } from '../../src/report/summary.js';
import { ndjsonAsCsv } from '../../src/source/records.js';
import type { JobRecord } from '../../src/store/jobs.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { dumpStore, durableEntries, removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

type Row = Record<string, unknown>;

function cellText(v: unknown): string {
  return typeof v === 'string' ? v : v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

const csvCell = (s: string): string => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

/** The CSV a list of records stands for: the first record's keys, then each record's values under them. */
function csvOf(records: readonly Row[]): string {
  const keys = Object.keys(records[0] ?? {});
  return [keys.map(csvCell).join(','), ...records.map((r) => keys.map((k) => csvCell(cellText(r[k]))).join(','))].join('\n') + '\n';
}

async function* pieces(bytes: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += 65536) yield bytes.subarray(i, i + 65536);
}

const ndjsonOf = (records: readonly Row[]): string => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** Records from a header and rows of cells. */
const recordsOf = (header: readonly string[], rows: readonly (readonly unknown[])[]): Row[] =>
  rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));

/** What an import must give the same for both: its report less timings and sizes, the rejects file, the stored entries. */
const SAME: ReadonlyArray<keyof ImportReport> = ['rows', 'valid', 'invalid', 'skipped', 'unique', 'duplicates', 'added', 'alreadySuppressed',
  'reason', 'reasons', 'column', 'header', 'skipRule', 'reasonColumn', 'delimiter', 'invalidUtf8', 'confirmed', 'dryRun', 'expectedCount', 'error'];

interface Outcome {
  report: Partial<ImportReport>;
  format: string;
  /** The bytes read: an NDJSON source's own when the workers read its lines, those of its CSV text when it was turned into one. */
  bytes: number;
  rejects: string;
  stored: Array<[string, string]>;
}

async function importText(name: string, text: string | Buffer, options: Partial<ImportOptions>): Promise<Outcome> {
  const dir = await tempDir('optout-ndjson-csv-');
  const path = join(dir, name);
  writeFileSync(path, text);
  const db = join(dir, 'db');
  const rejects = join(dir, 'rejects.csv');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, rejects, ...options });
  return {
    report: Object.fromEntries(SAME.map((k) => [k, report[k]])),
    format: report.format,
    bytes: report.bytes,
    rejects: readFileSync(rejects, 'utf8'),
    stored: durableEntries(await dumpStore(db)),
  };
}

/** Imports the records as NDJSON and as CSV; asserts they agree, and returns the NDJSON one. */
async function agree(records: readonly Row[], options: Partial<ImportOptions> = {}, ndjsonText = ndjsonOf(records)): Promise<Outcome> {
  const csv = await importText('list.csv', csvOf(records), options);
  const ndjson = await importText('list.ndjson', ndjsonText, options);
  expect(ndjson.report).toEqual(csv.report);
  expect(ndjson.rejects).toBe(csv.rejects);
  expect(ndjson.stored).toEqual(csv.stored);
  expect(ndjson.format).toBe(csv.format === 'csv' ? 'ndjson' : csv.format);
  return ndjson;
}

/** A HubSpot contacts export: 30 contacts, 8 unsubscribed from all email, one broken address. */
function hubspot(): Row[] {
  const header = ['Record ID', 'First Name', 'Last Name', 'Email', 'Phone Number', 'Contact owner', 'Lifecycle Stage',
    'Unsubscribed from all email', 'Create Date'];
  return recordsOf(header, Array.from({ length: 30 }, (_, n) => {
    const i = n + 1;
    return [String(1000 + i), `First${i}`, `Last${i}`, i === 29 ? 'broken.example.com' : `contact${i}@example.com`, '+1 555 0100',
      'Owner, Jane', i % 5 === 0 ? 'customer' : 'lead', i % 3 === 0 && i <= 24 ? 'true' : 'false', '2026-01-02 10:00'];
  }));
}

/** A contacts export as NDJSON (HubSpot's columns), every 97th address broken; its path. */
function writeContacts(dir: string, rows: number): string {
  const path = join(dir, 'contacts.ndjson');
  writeFileSync(path, Array.from({ length: rows }, (_, i) =>
    JSON.stringify({ 'Record ID': i, Email: i % 97 === 0 ? `bad${i}` : `c${i}@example.com`, 'Unsubscribed from all email': i % 4 === 0 })).join('\n'));
  return path;
}

/** Imports a file into `db` in one thread, its rejects file beside the store. */
const importContacts = (path: string, db: string, more: Partial<ImportOptions> = {}): Promise<ImportReport> =>
  runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, threads: 1, rejects: `${db}.rejects.csv`, ...more });

const countsOf = (r: ImportReport) => [r.rows, r.valid, r.invalid, r.skipped, r.unique, r.added, r.format];

describe('NDJSON imports as the CSV of the same rows', () => {
  it('a plain list: invalid rows, duplicates, plus tags and case, other columns of any type', async () => {
    const records: Row[] = Array.from({ length: 40 }, (_, i) => ({
      email: i % 9 === 4 ? `broken${i}.example.com` : i % 7 === 3 ? `User${i - 1}+tag@Example.org` : `user${i}@example.org`,
      n: i, vip: i % 2 === 0, note: i % 5 === 0 ? null : `note, "${i}"`, tags: ['a', i], meta: { b: [i] },
    }));
    const out = await agree(records);
    expect(out.report).toMatchObject({ rows: 40, header: 'row', column: 'email' });
    expect(out.bytes).toBe(Buffer.byteLength(ndjsonOf(records)));
    expect(out.rejects.split('\n').length).toBeGreaterThan(3);
  });

  it('recognised exports: skipped rows, reasons, flags; with --where, --all-rows, --reason-column, --column', async () => {
    const contacts = hubspot();
    expect((await agree(contacts)).report).toMatchObject({ skipped: 22, valid: 8 });
    await agree(contacts, { allRows: true });
    await agree(contacts, { where: 'Lifecycle Stage=LEAD,customer' });
    await agree(contacts, { where: '7=customer' });
    await agree(contacts, { column: 'email', allRows: true });
    await agree(contacts, { column: '4', reasonColumn: 'Lifecycle Stage' });

    const cases: Array<[string, string[], unknown[][]]> = [
      ['brevo-contacts', ['CONTACT ID', 'EMAIL', 'FIRSTNAME', 'EMAIL_BLACKLISTED', 'SMS_BLACKLISTED'],
        [['1', 'ann@example.fr', 'Ann', 'Yes', 'No'], ['2', 'bob@example.fr', 'Bob', 'No', 'No'], ['3', 'cat@example.fr', 'Cat', ' no ', 'Yes'],
          ['4', 'dan@example.fr', 'Dan', 'Pending', 'No'], ['5', 'eli@example.fr', 'Eli', '', 'No'], ['6', 'not-an-address', 'Fay', 'Yes', 'No']]],
      ['activecampaign-contacts', ['Email', 'First Name', 'Last Name', 'Status'],
        [['ann@example.com', 'Ann', 'A', 'Active'], ['bob@example.com', 'Bob', 'B', 'Unsubscribed'], ['cat@example.com', 'Cat', 'C', 'Bounced'],
          ['dan@example.com', 'Dan', 'D', 'Unconfirmed'], ['eve@example.com', 'Eve', 'E', ' unsubscribed '], ['broken.example.com', 'Gus', 'G', 'Unsubscribed']]],
      ['klaviyo-suppressions', ['Email', 'Suppression Reason', 'Suppressed At'],
        [['u@example.com', 'Unsubscribed', '2026-01-05'], ['b@example.com', 'Bounced', '2026-01-05'], ['s@example.com', 'Spam complaint', '2026-01-05'],
          ['m@example.com', 'Manually suppressed', '2026-01-05'], ['i@example.com', 'Invalid email', '2026-01-05'], ['B@Example.com', 'Unsubscribed', '']]],
      ['sfmc-bounces', ['SubscriberKey', 'EmailAddress', 'EventType', 'BounceCategory', 'SMTPCode'],
        [['1', 'hard@example.com', 'HardBounce', 'Hard bounce', 550], ['2', 'soft@example.com', 'SoftBounce', 'Soft bounce', 452],
          ['3', 'softcat@example.com', 'HardBounce', 'Soft bounce', 421], ['4', 'block@example.com', 'OtherBounce', 'Block bounce', 554]]],
      ['ses-bulk', ['emailAddress', 'reason'], [['one@example.com', 'BOUNCE'], ['two@example.com', 'COMPLAINT'], ['three@example.com', 'other']]],
      ['ses-json', ['EmailAddress', 'Reason', 'LastUpdateTime'],
        [['b1@example.com', 'BOUNCE', '2026-01-05T10:00:00.000Z'], ['c1@example.com', 'COMPLAINT', '2026-01-05T11:00:00.000Z'],
          ['b1@example.com', 'COMPLAINT', '2026-01-07T10:00:00.000Z'], ['not an address', 'BOUNCE', '2026-01-07T10:00:00.000Z']]],
      ['postmark-json', ['EmailAddress', 'SuppressionReason', 'Origin', 'CreatedAt'],
        [['hard@example.com', 'HardBounce', 'Recipient', '2026-01-05'], ['spam@example.com', 'SpamComplaint', 'Recipient', '2026-01-05'],
          ['manual@example.com', 'ManualSuppression', 'Customer', '2026-01-05']]],
      ['mailchimp-cleaned', ['Email Address', 'First Name', 'CLEAN_TIME'], [['gone@example.com', 'Gone', '2026-01-01']]],
      ['mailchimp-unsubscribed', ['Email Address', 'UNSUB_TIME'], [['left@example.com', '2026-01-01']]],
      ['mailgun-bounces', ['address', 'code', 'error', 'created_at'], [['b@example.com', 550, '5.1.1 No such user', 'Mon 05 Jan 2026']]],
      ['mailgun-unsubscribes', ['address', 'tags', 'created_at'], [['u@example.com', '*', 'Mon 05 Jan 2026']]],
      ['mailgun-complaints', ['address', 'created_at'], [['c@example.com', 'Mon 05 Jan 2026']]],
      ['sendgrid-spam-reports', ['email', 'ip', 'created'], [['s@example.com', '192.0.2.1', 1767607200]]],
      ['sendgrid-bounces', ['email', 'reason', 'status', 'created'], [['sb@example.com', '550 5.1.1 unknown', '5.1.1', 1767607200]]],
    ];
    for (const [format, header, rows] of cases) {
      const out = await agree(recordsOf(header, rows));
      expect(out.format, format).toBe(format);
    }
    await agree(recordsOf(['email', 'why'], [['a@example.com', 'hard_bounce'], ['b@example.com', ' SPAM '], ['A+x@example.com', 'complaint']]),
      { reasonColumn: 'Why', reason: 'manual' });
  });

  it('SES event notifications, one in its SNS envelope, as the CSV of a row per recipient', async () => {
    const mail = (to: string[]) => ({ timestamp: '2026-01-05T10:00:00.000Z', source: 'news@sender.example', destination: to });
    const bounce = (type: string, to: string[]) => ({
      notificationType: 'Bounce', mail: mail(to),
      bounce: { bounceType: type, bounceSubType: 'General', timestamp: '2026-01-05T10:00:01.000Z', bouncedRecipients: to.map((emailAddress) => ({ emailAddress })) },
    });
    const events: Row[] = [
      bounce('Permanent', ['gone1@example.com', 'Gone2@Example.com', 'broken.example.com']),
      bounce('Transient', ['full@example.com']),
      { notificationType: 'Complaint', mail: mail(['angry@example.com']), complaint: { complainedRecipients: [{ emailAddress: 'angry@example.com' }], timestamp: 't' } },
      { eventType: 'Delivery', mail: mail(['fine@example.com', 'fine2@example.com']) },
      { Type: 'Notification', MessageId: 'x1', Message: JSON.stringify(bounce('Permanent', ['wrapped@example.com'])) },
      bounce('Permanent', []),
    ];
    const spread = recordsOf(['emailAddress', 'notificationType', 'bounceType', 'bounceSubType', 'timestamp'], [
      ['gone1@example.com', 'Bounce', 'Permanent', 'General', '2026-01-05T10:00:01.000Z'], ['Gone2@Example.com', 'Bounce', 'Permanent', 'General', '2026-01-05T10:00:01.000Z'],
      ['broken.example.com', 'Bounce', 'Permanent', 'General', '2026-01-05T10:00:01.000Z'], ['full@example.com', 'Bounce', 'Transient', 'General', '2026-01-05T10:00:01.000Z'],
      ['angry@example.com', 'Complaint', '', '', 't'], ['fine@example.com', 'Delivery', '', '', '2026-01-05T10:00:00.000Z'],
      ['fine2@example.com', 'Delivery', '', '', '2026-01-05T10:00:00.000Z'], ['wrapped@example.com', 'Bounce', 'Permanent', 'General', '2026-01-05T10:00:01.000Z'],
      ['', 'Bounce', 'Permanent', 'General', '2026-01-05T10:00:01.000Z'],
    ]);
    const out = await agree(spread, {}, ndjsonOf(events));
    expect(out).toMatchObject({ format: 'ses-notifications', report: { rows: 9, valid: 4, invalid: 2, skipped: 3 } });
  });

  it('records unlike the first: a key missing, one more, another order, values of every JSON type', async () => {
    const records: Row[] = [
      { id: 1, email: 'a@example.com', meta: { x: [1, 2] } },
      { email: 'b@example.com', id: 2 },
      { id: 3, extra: 'dropped', email: 'c@example.com', meta: 'text, with "quotes"' },
      { id: 4 },
      { id: 5, email: null, meta: true },
      { id: 6, email: 7 },
      { id: 7, email: ['d@example.com'] },
      { id: 8, email: { a: 'e@example.com' } },
      { id: 9, email: '  Spaced@Example.com  ', meta: 1.5e300 },
      { id: 10, email: 'ünï@exämple.de', meta: '日本' },
    ];
    const csv = await importText('list.csv', csvOf(records), {});
    const ndjson = await importText('list.ndjson', ndjsonOf(records), {});
    expect(ndjson.report).toEqual(csv.report);
    expect(ndjson.rejects).toBe(csv.rejects);
    expect(ndjson.stored).toEqual(csv.stored);
    expect(ndjson.report).toMatchObject({ rows: 10, valid: 5, invalid: 5 });
  });

  it('empty lines, white space around records and CRLF line ends are passed over', async () => {
    const records = recordsOf(['email', 'n'], [['a@example.com', 1], ['broken', 2], ['b@example.com', 3], ['also broken', 4]]);
    const text = ['', '  ', JSON.stringify(records[0]), '', JSON.stringify(records[1]) + '  ', '\t' + JSON.stringify(records[2]), '',
      JSON.stringify(records[3])].join('\r\n');
    for (const ending of ['', '\r\n', '\r\n\r\n', '\n  \n']) {
      expect((await agree(records, {}, text + ending)).report).toMatchObject({ rows: 4, valid: 2 });
    }
  });

  it('a list over many chunks, with one and with two threads, a dry run and a confirmed count', async () => {
    const records: Row[] = Array.from({ length: 3_000 }, (_, i) => ({
      email: i % 101 === 0 ? `bad${i}` : `u${i % 2_700}@example.org`, name: 'é'.repeat(i % 13), Status: i % 4 === 0 ? 'Active' : 'Unsubscribed',
      'First Name': 'x', 'Last Name': 'y',
    }));
    for (const threads of [1, 2]) await agree(records, { chunkBytes: 4096, threads });
    await agree(records, { chunkBytes: 4096, confirm: { mode: 'dry-run' } });
    const unique = (await importText('list.csv', csvOf(records), { confirm: { mode: 'dry-run' } })).report.unique as number;
    await agree(records, { chunkBytes: 4096, confirm: { mode: 'count', count: unique } });
    await agree(records, { chunkBytes: 4096, confirm: { mode: 'count', count: unique + 1 } });
  });

  it('a first record that is data (--no-header, a key that is an address) reads as the CSV of the records does', async () => {
    const records = recordsOf(['email', 'n'], [['a@example.com', 1], ['b@example.com', 2]]);
    expect((await agree(records, { header: false, column: '1' })).report).toMatchObject({ header: 'none', rows: 3, valid: 2, invalid: 1 });
    const keyed = [{ 'x@example.com': 'y@example.com' }, { 'x@example.com': 'z@example.com' }];
    expect((await agree(keyed)).report).toMatchObject({ header: 'none', rows: 3, valid: 3 });
  });

  it('bytes that are not UTF-8 in an address: the row is INVALID_ENCODING, as in a CSV', async () => {
    const bad = (before: string, after: string) => Buffer.concat([Buffer.from(before), Buffer.from([0xe9]), Buffer.from(after)]);
    const csv = await importText('list.csv', bad('email,name\nok@example.com,x\nren', '@example.com,y\n'), {});
    const ndjson = await importText('list.ndjson', bad('{"email":"ok@example.com","name":"x"}\n{"email":"ren', '@example.com","name":"y"}\n'), {});
    expect(ndjson.report).toEqual(csv.report);
    expect(ndjson.rejects).toBe(csv.rejects);
    expect(ndjson.report).toMatchObject({ valid: 1, invalid: 1, invalidUtf8: 1 });
    // A value with bad bytes elsewhere in the record leaves its address alone.
    const other = await importText('list.ndjson', bad('{"email":"ok@example.com","name":"', '"}\n'), {});
    expect(other.report).toMatchObject({ valid: 1, invalid: 0, invalidUtf8: 0 });
  });

  it('rejects are numbered by record, also after a value that holds a line break', async () => {
    const records: Row[] = [{ email: 'a@example.com', note: 'two\nlines' }, { email: 'broken', note: '' }, { email: 'also broken', note: 'x' }];
    const out = await importText('list.ndjson', ndjsonOf(records), {});
    expect(out.rejects).toBe('line,row,value,reason\n3,2,broken,NO_AT_SIGN\n4,3,also broken,INVALID_CHARACTER\n');
  });

  it('a line that is not JSON, or not an object, stops the import with its line (empty lines counted); nothing is written', async () => {
    const good = Array.from({ length: 500 }, (_, i) => JSON.stringify({ email: `g${i}@example.com` }));
    for (const [bad, line] of [['{"email": "x@example.com"', 504], ['[1, 2]', 504], ['"text"', 504], ['nul', 504]] as const) {
      const text = ['', ...good.slice(0, 300), '', '', ...good.slice(300), bad, ...good.slice(0, 5)].join('\n');
      const dir = await tempDir('optout-ndjson-csv-');
      const path = join(dir, 'list.ndjson');
      writeFileSync(path, text);
      const err = await runImport({ source: { kind: 'file', path }, db: join(dir, 'db'), confirm: { mode: 'yes' }, chunkBytes: 4096 })
        .then(() => undefined, (e: unknown) => e as { code?: string; location?: { line?: number } });
      expect([err?.code, err?.location?.line], bad).toEqual(['OPTOUT_ERR_JSON_PARSE', line]);
      const entries = durableEntries(await dumpStore(join(dir, 'db'))).filter(([k]) => k.startsWith('e'));
      expect(entries, bad).toEqual([]);
    }
  });

  it('an interrupted NDJSON import resumes to the store and counts of a clean run', async () => {
    const dir = await tempDir('optout-ndjson-csv-');
    const path = writeContacts(dir, 60_000);
    const clean = await importContacts(path, join(dir, 'clean'));
    const controller = new AbortController();
    let reads = 0;
    const stopped = await importContacts(path, join(dir, 'cut'), {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'reading') reads++;
        if (reads === 3) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect((stopped as { code?: string }).code).toBe('OPTOUT_ERR_ABORTED');
    const resumed = await importContacts(path, join(dir, 'cut'));
    expect(resumed.resumed).toBe(true);
    expect([...countsOf(resumed), resumed.bytes]).toEqual([...countsOf(clean), clean.bytes]);
    expect(clean).toMatchObject({ format: 'hubspot-contacts', rows: 60_000 });
    expect(readFileSync(join(dir, 'cut.rejects.csv'), 'utf8')).toBe(readFileSync(join(dir, 'clean.rejects.csv'), 'utf8'));
    expect(durableEntries(await dumpStore(join(dir, 'cut')))).toEqual(durableEntries(await dumpStore(join(dir, 'clean'))));
  });

  it('a job checkpointed while it read an NDJSON file as CSV text resumes reading it that way', async () => {
    // Its offset counts that text's bytes, and its checkpoint does not say ndjsonLines.
    const dir = await tempDir('optout-ndjson-csv-');
    // Enough for a checkpoint (every 8 chunks of 1 MiB) before the reading stops.
    const path = writeContacts(dir, 200_000);
    const clean = await importContacts(path, join(dir, 'clean'));
    const old = join(dir, 'old');
    const again = new AbortController();
    let seen = 0;
    await importContacts(path, old, {
      signal: again.signal,
      onProgress: (p) => {
        if (p.phase === 'reading' && ++seen === 10) again.abort();
      },
    }).catch(() => undefined);
    let csvText = '';
    const store = await LevelStore.open(old);
    try {
      const job = (await store.listImports())[0] as JobRecord;
      expect([job.state, job.checkpoint.phase, job.checkpoint.ndjsonLines, job.checkpoint.offset > 0]).toEqual(['interrupted', 'spool', true, true]);
      for await (const piece of ndjsonAsCsv(pieces(readFileSync(path)))) csvText += piece.toString();
      const csvLines = csvText.split('\n');
      const { ndjsonLines: _, ...rest } = job.checkpoint;
      const rows = rest.counts.rows;
      const offset = Buffer.byteLength(csvLines.slice(0, rows + 1).join('\n')) + 1;
      await store.putJob({ ...job, checkpoint: { ...rest, offset, lines: rows + 1 } });
    } finally {
      await store.close();
    }
    const fromCsvText = await importContacts(path, old);
    expect(fromCsvText.resumed).toBe(true);
    expect(countsOf(fromCsvText)).toEqual(countsOf(clean));
    expect(fromCsvText.bytes).toBe(Buffer.byteLength(csvText));
    expect(readFileSync(`${old}.rejects.csv`, 'utf8')).toBe(readFileSync(join(dir, 'clean.rejects.csv'), 'utf8'));
    expect(durableEntries(await dumpStore(old))).toEqual(durableEntries(await dumpStore(join(dir, 'clean'))));
  });
});
