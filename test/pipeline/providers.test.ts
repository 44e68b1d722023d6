import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CSV_PROVIDERS, detectCsvProvider } from '../../src/csv/providers.js';
import type { ImportOptions } from '../../src/options.js';
import { LevelStore } from '../../src/index.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport, suppressed } from '../inline.js';

afterAll(removeTempDirs);

async function importFile(name: string, content: string, options: Partial<ImportOptions> = {}) {
  const dir = await tempDir('optout-providers-');
  const path = join(dir, name);
  writeFileSync(path, content);
  const db = join(dir, 'db');
  const rejects = join(dir, 'rejects.csv');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, rejects, ...options });
  return { report, db, rejectLines: readFileSync(rejects, 'utf8').trim().split('\n').slice(1) };
}

const csv = (rows: string[][]): string => rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c)).join(',')).join('\r\n') + '\r\n';

/** A HubSpot contacts export: 30 contacts, 8 unsubscribed from all email (rows 3, 6, ... 24), one with a broken address. */
function hubspotContacts(): { text: string; optedOut: string[]; subscribed: string[] } {
  const header = ['Record ID', 'First Name', 'Last Name', 'Email', 'Phone Number', 'Contact owner', 'Lifecycle Stage',
    'Unsubscribed from all email', 'Create Date'];
  const rows: string[][] = [];
  const optedOut: string[] = [];
  const subscribed: string[] = [];
  for (let i = 1; i <= 30; i++) {
    const email = i === 29 ? 'broken.example.com' : `contact${i}@example.com`;
    const out = i % 3 === 0 && i <= 24;
    (out ? optedOut : subscribed).push(email);
    rows.push([String(1000 + i), `First${i}`, `Last${i}`, email, '+1 555 0100', 'Owner, Jane', 'lead', out ? 'true' : 'false', '2026-01-02 10:00']);
  }
  return { text: csv([header, ...rows]), optedOut, subscribed };
}

describe('CSV exports recognised by their header', () => {
  it('HubSpot contacts: only the rows unsubscribed from all email are imported; the others are skipped, each in the rejects file', async () => {
    const { text, optedOut, subscribed } = hubspotContacts();
    const { report, db, rejectLines } = await importFile('hubspot-contacts.csv', text);
    expect(report).toMatchObject({
      format: 'hubspot-contacts', header: 'row', column: 'Email', rows: 30, valid: 8, invalid: 0, skipped: 22, added: 8,
      skipRule: 'Unsubscribed from all email is false or no',
    });
    // The broken address is left out: a check refuses it whatever the store holds.
    expect(await suppressed(db, [...optedOut, ...subscribed].filter((e) => e.includes('@')))).toEqual(optedOut);
    expect(rejectLines).toHaveLength(22);
    expect(rejectLines[0]).toBe('2,1,contact1@example.com,NOT_OPTED_OUT');
    expect(rejectLines).toContain('30,29,broken.example.com,NOT_OPTED_OUT');
  });

  it('--all-rows imports every contact; --where picks rows of any file', async () => {
    const { text } = hubspotContacts();
    const all = await importFile('hubspot.csv', text, { allRows: true });
    expect(all.report).toMatchObject({ format: 'hubspot-contacts', rows: 30, valid: 29, invalid: 1, skipped: 0, skipRule: null });
    const where = await importFile('hubspot.csv', text, { where: 'Lifecycle Stage=LEAD,customer' });
    expect(where.report).toMatchObject({ rows: 30, valid: 29, invalid: 1, skipped: 0 });
    const none = await importFile('hubspot.csv', text, { where: '7=customer' });
    expect(none.report).toMatchObject({ rows: 30, valid: 0, invalid: 0, skipped: 30, skipRule: 'Lifecycle Stage is not customer' });
    expect(await failureCode(() => importFile('x.csv', text, { where: 'Nope=1' }))).toBe('OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect(await failureCode(() => importFile('x.csv', text, { where: 'no equals sign' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('Brevo contacts: EMAIL_BLACKLISTED No is skipped, Yes imported, a value nobody mapped imported (opt-out wins)', async () => {
    const text = csv([
      ['CONTACT ID', 'EMAIL', 'FIRSTNAME', 'LASTNAME', 'SMS', 'EMAIL_BLACKLISTED', 'SMS_BLACKLISTED', 'ADDED_TIME'],
      ['1', 'ann@example.fr', 'Ann', 'A', '', 'Yes', 'No', '2026-01-01'],
      ['2', 'bob@example.fr', 'Bob', 'B', '', 'No', 'No', '2026-01-01'],
      ['3', 'cat@example.fr', 'Cat', 'C', '', ' no ', 'Yes', '2026-01-01'],
      ['4', 'dan@example.fr', 'Dan', 'D', '', 'Pending', 'No', '2026-01-01'],
      ['5', 'eli@example.fr', 'Eli', 'E', '', '', 'No', '2026-01-01'],
      ['6', 'not-an-address', 'Fay', 'F', '', 'Yes', 'No', '2026-01-01'],
    ]);
    const { report, db } = await importFile('brevo.csv', text);
    expect(report).toMatchObject({ format: 'brevo-contacts', column: 'EMAIL', rows: 6, valid: 3, invalid: 1, skipped: 2, added: 3 });
    expect(await suppressed(db, ['ann@example.fr', 'bob@example.fr', 'cat@example.fr', 'dan@example.fr', 'eli@example.fr']))
      .toEqual(['ann@example.fr', 'dan@example.fr', 'eli@example.fr']);
  });

  it('suppression exports are named in the report and every row is imported', async () => {
    const cases: Array<[string, string, string, number]> = [
      ['mailchimp-cleaned', 'Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID',
        'gone@example.com,Gone,G,1,2025-01-01,2025-01-01,2026-01-01,Spring,abc', 1],
      ['mailchimp-unsubscribed', 'Email Address,First Name,MEMBER_RATING,OPTIN_TIME,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_REASON',
        'left@example.com,Left,2,2025-01-01,2026-01-01,Spring,No longer interested', 1],
      ['mailgun-bounces', 'address,code,error,created_at', 'b@example.com,550,"5.1.1 No such user",Mon 05 Jan 2026 10:00:00 UTC', 1],
      ['mailgun-unsubscribes', 'address,tags,created_at', 'u@example.com,*,Mon 05 Jan 2026 10:00:00 UTC', 1],
      ['mailgun-complaints', 'address,created_at', 'c@example.com,Mon 05 Jan 2026 10:00:00 UTC', 1],
      ['sendgrid-spam-reports', 'email,ip,created', 's@example.com,192.0.2.1,1767607200', 1],
      ['sendgrid-bounces', 'email,reason,status,created', 'sb@example.com,"550 5.1.1 unknown",5.1.1,1767607200', 1],
    ];
    for (const [format, header, row, valid] of cases) {
      const { report } = await importFile(`${format}.csv`, `${header}\n${row}\n`);
      expect(report, format).toMatchObject({ format, header: 'row', rows: 1, valid, skipped: 0, skipRule: null });
    }
    const plain = await importFile('plain.csv', 'email,name\na@example.com,A\n');
    expect(plain.report).toMatchObject({ format: 'csv', skipped: 0, skipRule: null });
  });

  it('an interrupted import of an export with skipped rows, or of a list without a header, resumes to the counts of a clean run', async () => {
    const dir = await tempDir('optout-providers-');
    const contacts = ['Record ID,Email,Unsubscribed from all email',
      ...Array.from({ length: 360_000 }, (_, i) => `${i},c${i}@example.com,${i % 4 === 0 ? 'true' : 'false'}`)].join('\n');
    const bare = Array.from({ length: 360_000 }, (_, i) => `b${i}@example.com,BOUNCE`).join('\n');
    for (const [name, text] of [['contacts.csv', contacts], ['bare.csv', bare]] as const) {
      const path = join(dir, name);
      writeFileSync(path, text);
      const run = (db: string, signal?: AbortSignal, onProgress?: ImportOptions['onProgress']) => runImport({
        source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, chunkBytes: 4096, threads: 1,
        ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}),
      });
      const clean = await run(join(dir, `${name}-clean`));
      const controller = new AbortController();
      let reads = 0;
      const stopped = await run(join(dir, `${name}-cut`), controller.signal, (p) => {
        if (p.phase === 'reading') reads++;
        if (reads === 10) controller.abort();
      }).catch((e: unknown) => e);
      expect([(stopped as { code?: string }).code, reads], name).toEqual(['OPTOUT_ERR_ABORTED', 10]);
      const resumed = await run(join(dir, `${name}-cut`));
      const counts = (r: typeof clean) => [r.rows, r.valid, r.invalid, r.skipped, r.unique, r.added, r.header, r.format];
      expect(resumed.resumed, name).toBe(true);
      expect(counts(resumed), name).toEqual(counts(clean));
    }
    const cleanReport = await runImport({ source: { kind: 'file', path: join(dir, 'contacts.csv') }, db: join(dir, 'again'), confirm: { mode: 'yes' } });
    expect(cleanReport).toMatchObject({ rows: 360_000, valid: 90_000, skipped: 270_000 });
  });

  it('an export whose rows all have one reason imports with it, unless --reason says otherwise', async () => {
    const cleaned = 'Email Address,First Name,MEMBER_RATING,OPTIN_TIME,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE\ngone@example.com,Gone,1,2025-01-01,2026-01-01,Spring\n';
    const cases: Array<[string, Partial<ImportOptions>, string]> = [
      [cleaned, {}, 'bounced'],
      [cleaned, { confirm: { mode: 'count', count: 1 } }, 'bounced'],
      [cleaned, { reason: 'manual' }, 'manual'],
      [cleaned, { reason: 'unsubscribed' }, 'unsubscribed'],
      ['email,ip,created\ns@example.com,192.0.2.1,1767607200\n', {}, 'complaint'],
      ['address,created_at\nc@example.com,Mon 05 Jan 2026\n', {}, 'complaint'],
      ['address,code,error,created_at\nb@example.com,550,No such user,Mon 05 Jan 2026\n', {}, 'bounced'],
      ['Email Address,UNSUB_TIME\nu@example.com,2026-01-01\n', {}, 'unsubscribed'],
    ];
    for (const [text, options, reason] of cases) {
      const { report, db } = await importFile('export.csv', text, options);
      expect([report.confirmed, report.reason], text).toEqual([true, reason]);
      const store = await LevelStore.open(db);
      try {
        expect((await store.getJob(report.jobId as string))?.reason, text).toBe(reason);
      } finally {
        await store.close();
      }
    }
  });

  it('each signature is told apart from the others', () => {
    for (const p of CSV_PROVIDERS) expect(detectCsvProvider(p.signature)?.format, p.format).toBe(p.format);
    expect(detectCsvProvider(['address', 'created_at', 'extra'])).toBeUndefined();
    expect(detectCsvProvider(['Email', 'Name'])).toBeUndefined();
  });
});
