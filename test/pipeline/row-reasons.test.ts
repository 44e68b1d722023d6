/**
 * Rows with their own reason: a recognised export's reason column (SES, Postmark) or
 * `reasonColumn` on any list. Each entry then shows its row's reason in lookups, exports, checks
 * and over HTTP; the report counts valid rows per reason.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { exportRows, exportText } from '../../src/manage/export.js';
import { lookupSuppressions } from '../../src/manage/suppressions.js';
import type { ImportOptions } from '../../src/options.js';
import type { ScopedEntry } from '../../src/store/store.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

async function importFile(name: string, content: string, options: Partial<ImportOptions> = {}) {
  const dir = await tempDir('optout-reasons-');
  const path = join(dir, name);
  writeFileSync(path, content);
  const db = join(dir, 'db');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, ...options });
  return { report, db, path };
}

async function withStore<T>(db: string, fn: (s: OptoutStore) => Promise<T>): Promise<T> {
  const s = await openStore(db);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Reason per address as `optout show`, export and a check each give it. */
async function reasonsSeen(db: string, emails: readonly string[]) {
  return withStore(db, async (s) => {
    const shown: Record<string, string[]> = {};
    for (const e of emails) shown[e] = (await lookupSuppressions(s.store, e)).map((x) => x.reason);
    const exported: Record<string, string> = {};
    for await (const rows of exportRows(s.store)) for (const r of rows) exported[r.email] = r.reason;
    const checked: Record<string, string | undefined> = {};
    const decisions = await s.checkMany(emails.map((email) => ({ email })));
    emails.forEach((e, i) => {
      checked[e] = decisions[i]?.suppression?.reason;
    });
    const stored: ScopedEntry[] = [];
    for await (const batch of s.store.scanEntries()) stored.push(...batch);
    return { shown, exported, checked, own: Object.fromEntries(stored.map((x) => [x.key, x.reason])) };
  });
}

/** `aws sesv2 list-suppressed-destinations` output: 3 bounces (one twice), 2 complaints, an empty and an unknown reason. */
const sesJson = JSON.stringify({
  SuppressedDestinationSummaries: [
    { EmailAddress: 'b1@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-05T10:00:00.000Z' },
    { EmailAddress: 'c1@example.com', Reason: 'COMPLAINT', LastUpdateTime: '2026-01-05T11:00:00.000Z' },
    { EmailAddress: 'b2@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-05T12:00:00.000Z' },
    { EmailAddress: 'C2@Example.com', Reason: 'COMPLAINT', LastUpdateTime: '2026-01-06T10:00:00.000Z' },
    { EmailAddress: 'b1@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
    { EmailAddress: 'empty@example.com', Reason: '', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
    { EmailAddress: 'odd@example.com', Reason: 'SOMETHING_NEW', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
    { EmailAddress: 'not an address', Reason: 'BOUNCE', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
  ],
}, null, 2);

describe('per-row reasons', () => {
  it('SES JSON: BOUNCE and COMPLAINT rows keep their reasons, with zero flags; the rest take the import\'s', async () => {
    const { report, db } = await importFile('suppressed.json', sesJson);
    expect(report).toMatchObject({
      format: 'ses-json', reason: 'unsubscribed', reasonColumn: 'Reason', rows: 8, valid: 7, invalid: 1, unique: 6, duplicates: 1, added: 6,
      reasons: { bounced: 3, complaint: 2, unsubscribed: 2 },
    });
    expect(Object.values(report.reasons).reduce((a, b) => a + b, 0)).toBe(report.valid);
    const emails = ['b1@example.com', 'b2@example.com', 'c1@example.com', 'c2@example.com', 'empty@example.com', 'odd@example.com'];
    const seen = await reasonsSeen(db, emails);
    const expected = {
      'b1@example.com': 'bounced', 'b2@example.com': 'bounced', 'c1@example.com': 'complaint', 'c2@example.com': 'complaint',
      'empty@example.com': 'unsubscribed', 'odd@example.com': 'unsubscribed',
    };
    expect(seen.exported).toEqual(expected);
    expect(seen.checked).toEqual(expected);
    expect(seen.shown).toEqual(Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, [v]])));
    // Stored per entry only where it differs from the job's reason.
    expect(seen.own).toEqual({
      'b1@example.com': 'bounced', 'b2@example.com': 'bounced', 'c1@example.com': 'complaint', 'c2@example.com': 'complaint',
      'empty@example.com': undefined, 'odd@example.com': undefined,
    });
    // The import's audit record counts them too.
    expect(await withStore(db, async (s) => {
      for await (const r of s.store.auditRecords({ fromId: '0' })) if (r.action === 'import') return r.details['reasons'];
      return undefined;
    })).toEqual({ bounced: 3, complaint: 2, unsubscribed: 2 });
    // Export filtered by reason follows each entry's own.
    expect(await withStore(db, async (s) => {
      let text = '';
      for await (const part of exportText(s.store, { reason: 'complaint', format: 'ndjson' })) text += part;
      return text.trim().split('\n').map((l) => JSON.parse(l) as { email: string; reason: string }).map((r) => `${r.email} ${r.reason}`).sort();
    })).toEqual(['c1@example.com complaint', 'c2@example.com complaint']);
  });

  it('SES NDJSON bulk import and a Postmark dump map their reasons the same way', async () => {
    const ndjson = ['{"emailAddress":"one@example.com","reason":"BOUNCE"}', '{"emailAddress":"two@example.com","reason":"COMPLAINT"}'].join('\n');
    const ses = await importFile('bulk.jsonl', ndjson, { reason: 'manual' });
    expect(ses.report).toMatchObject({ format: 'ses-bulk', reason: 'manual', reasons: { bounced: 1, complaint: 1 } });
    expect((await reasonsSeen(ses.db, ['one@example.com', 'two@example.com'])).checked)
      .toEqual({ 'one@example.com': 'bounced', 'two@example.com': 'complaint' });
    const postmark = JSON.stringify({ Suppressions: [
      { EmailAddress: 'hard@example.com', SuppressionReason: 'HardBounce', Origin: 'Recipient', CreatedAt: '2026-01-05T10:00:00-05:00' },
      { EmailAddress: 'spam@example.com', SuppressionReason: 'SpamComplaint', Origin: 'Recipient', CreatedAt: '2026-01-05T10:00:00-05:00' },
      { EmailAddress: 'manual@example.com', SuppressionReason: 'ManualSuppression', Origin: 'Customer', CreatedAt: '2026-01-05T10:00:00-05:00' },
    ] });
    const pm = await importFile('postmark.json', postmark);
    expect(pm.report).toMatchObject({ format: 'postmark-json', reasonColumn: 'SuppressionReason', reasons: { bounced: 1, complaint: 1, manual: 1 } });
    expect((await reasonsSeen(pm.db, ['hard@example.com', 'spam@example.com', 'manual@example.com'])).exported)
      .toEqual({ 'hard@example.com': 'bounced', 'spam@example.com': 'complaint', 'manual@example.com': 'manual' });
  });

  it('reasonColumn on a plain CSV: spellings and case mapped, the first row of a key decides, others keep --reason', async () => {
    const csv = [
      'email,why,name',
      'a@example.com,hard_bounce,A',
      'b@example.com, SPAM ,B',
      'c@example.com,opt-out,C',
      'd@example.com,,D',
      'e@example.com,no idea,E',
      'f@example.com,ManualSuppression,F',
      // The same key again (plus-tag and case): the first row's reason stays.
      'A+news@Example.com,complaint,A2',
      'g@example.com,Bounced,G',
      'g@example.com,unsubscribe,G2',
      'h@example.com,abuse,H',
    ].join('\n') + '\n';
    const { report, db } = await importFile('list.csv', csv, { reasonColumn: 'Why', reason: 'complaint' });
    expect(report).toMatchObject({
      format: 'csv', reason: 'complaint', reasonColumn: 'why', rows: 10, valid: 10, unique: 8, duplicates: 2, added: 8,
      reasons: { bounced: 2, complaint: 5, unsubscribed: 2, manual: 1 },
    });
    const seen = await reasonsSeen(db, ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com', 'e@example.com', 'f@example.com',
      'g@example.com', 'h@example.com']);
    expect(seen.checked).toEqual({
      'a@example.com': 'bounced', 'b@example.com': 'complaint', 'c@example.com': 'unsubscribed', 'd@example.com': 'complaint',
      'e@example.com': 'complaint', 'f@example.com': 'manual', 'g@example.com': 'bounced', 'h@example.com': 'complaint',
    });
    // A row whose reason is the import's stores none of its own.
    expect(seen.own['b@example.com']).toBeUndefined();
    expect(seen.own['a@example.com']).toBe('bounced');

    // By number too; a dry run counts the same.
    const dry = await runImport({ source: { kind: 'file', path: join(db, '..', 'list.csv') }, db: join(db, '..', 'dry'), confirm: { mode: 'dry-run' }, reasonColumn: '2' });
    expect(dry).toMatchObject({ reason: 'unsubscribed', reasonColumn: 'why', reasons: { bounced: 2, complaint: 3, unsubscribed: 4, manual: 1 } });
  });

  it('the SES bulk-import CSV has no header: its reason column by number', async () => {
    const { report, db } = await importFile('bulk.csv', 'one@example.com,BOUNCE\ntwo@example.com,COMPLAINT\n', { reasonColumn: '2' });
    expect(report).toMatchObject({ header: 'none', column: '1', reasonColumn: '2', rows: 2, reasons: { bounced: 1, complaint: 1 } });
    expect((await reasonsSeen(db, ['one@example.com', 'two@example.com'])).checked).toEqual({ 'one@example.com': 'bounced', 'two@example.com': 'complaint' });
  });

  it('a reasonColumn the header does not have is an error naming it', async () => {
    expect(await failureCode(() => importFile('list.csv', 'email,why\na@example.com,bounce\n', { reasonColumn: 'cause' }))).toBe('OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect(await failureCode(() => importFile('list.csv', 'email,why\na@example.com,bounce\n', { reasonColumn: '3' }))).toBe('OPTOUT_ERR_COLUMN_NOT_FOUND');
    expect(await failureCode(() => importFile('list.csv', 'email\na@example.com\n', { reasonColumn: '' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('GET /v1/suppressions/:email and GET /v1/export give each entry its own reason', async () => {
    const { db } = await importFile('suppressed.json', sesJson);
    const s = await openStore(db);
    const app = createServer({ store: s });
    try {
      const auth = { authorization: `Bearer ${(await createKey(s.store, { scope: 'admin' })).key}` };
      const shown = await app.inject({ method: 'GET', url: '/v1/suppressions/c1@example.com', headers: auth });
      expect(shown.statusCode).toBe(200);
      expect(JSON.stringify(JSON.parse(shown.body))).toContain('"reason":"complaint"');
      const exported = await app.inject({ method: 'GET', url: '/v1/export?format=ndjson', headers: auth });
      const rows = exported.body.trim().split('\n').map((l) => JSON.parse(l) as { email: string; reason: string });
      expect(Object.fromEntries(rows.map((r) => [r.email, r.reason]))).toMatchObject({ 'b1@example.com': 'bounced', 'c2@example.com': 'complaint', 'odd@example.com': 'unsubscribed' });
      const csv = await app.inject({ method: 'GET', url: '/v1/export?reason=bounced', headers: auth });
      expect(csv.body.trim().split('\n').slice(1).map((l) => l.split(',')[0]).sort()).toEqual(['b1@example.com', 'b2@example.com']);
    } finally {
      await app.close();
      await s.close();
    }
  });

  it('an interrupted import resumes to the same reasons and counts', async () => {
    const rows = ['email,reason'];
    for (let i = 0; i < 60_000; i++) rows.push(`r${i}@example.com,${['bounce', 'complaint', ''][i % 3]}`);
    const text = rows.join('\n') + '\n';
    const clean = await importFile('big.csv', text, { reasonColumn: 'reason', chunkBytes: 4096, threads: 1 });
    const dir = await tempDir('optout-reasons-resume-');
    const path = join(dir, 'big.csv');
    writeFileSync(path, readFileSync(clean.path));
    const db = join(dir, 'db');
    const abort = new AbortController();
    let buckets = 0;
    const options: ImportOptions = { source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, reasonColumn: 'reason', chunkBytes: 4096, threads: 1 };
    expect(await failureCode(() => runImport({ ...options, signal: abort.signal, onProgress: (p) => {
      // Stopped in the writing phase: the resumed job takes the counts per reason from its checkpoint.
      if (p.phase === 'writing' && ++buckets === 3) abort.abort();
    } }))).toBe('OPTOUT_ERR_ABORTED');
    const resumed = await runImport(options);
    expect(resumed.resumed).toBe(true);
    expect(resumed.reasons).toEqual({ bounced: 20_000, complaint: 20_000, unsubscribed: 20_000 });
    expect(resumed.reasons).toEqual(clean.report.reasons);
    expect((await reasonsSeen(db, ['r0@example.com', 'r1@example.com', 'r2@example.com'])).checked)
      .toEqual({ 'r0@example.com': 'bounced', 'r1@example.com': 'complaint', 'r2@example.com': 'unsubscribed' });
  });
});
