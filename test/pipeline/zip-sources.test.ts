import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/check/open-store.js';
import type { ImportOptions } from '../../src/options.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport, suppressed } from '../inline.js';

afterAll(removeTempDirs);

/** A ZIP archive of deflated members, as export tools write them. */
function zipOf(members: Record<string, string | Buffer>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(members)) {
    const data = Buffer.from(content);
    const packed = deflateRawSync(data);
    const fileName = Buffer.from(name);
    const crc = crc32(data);
    // Both headers hold the same fields from the flags on: UTF-8 names, deflate, CRC, sizes, name length.
    const header = (signature: number, size: number, at: number): Buffer => {
      const b = Buffer.alloc(size);
      b.writeUInt32LE(signature, 0);
      b.writeUInt16LE(20, 4);
      b.writeUInt16LE(0x0800, at);
      b.writeUInt16LE(8, at + 2);
      b.writeUInt32LE(crc, at + 8);
      b.writeUInt32LE(packed.length, at + 12);
      b.writeUInt32LE(data.length, at + 16);
      b.writeUInt16LE(fileName.length, at + 20);
      return b;
    };
    const local = header(0x04034b50, 30, 6);
    const central = header(0x02014b50, 46, 8);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(offset, 42);
    locals.push(local, fileName, packed);
    centrals.push(central, fileName);
    offset += local.length + fileName.length + packed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(members).length, 8);
  end.writeUInt16LE(Object.keys(members).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

async function importZip(members: Record<string, string | Buffer>, options: Partial<ImportOptions> = {}) {
  const dir = await tempDir('optout-zip-');
  const path = join(dir, 'export.zip');
  writeFileSync(path, zipOf(members));
  const db = join(dir, 'db');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, ...options });
  return { report, db };
}

const mailchimp = {
  subscribed: 'Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,LAST_CHANGED\n' +
    'sub1@example.com,Sub,One,2,2025-01-01,2025-01-01,2026-01-01\nsub2@example.com,Sub,Two,2,2025-01-01,2025-01-01,2026-01-01\n',
  unsubscribed: 'Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_REASON\n' +
    'left1@example.com,Left,One,2,2025-01-01,2026-01-01,Spring,No longer interested\nleft2@example.com,Left,Two,1,2025-01-01,2026-01-02,Spring,\n',
  cleaned: 'Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,CLEAN_TIME,CLEAN_CAMPAIGN_TITLE\n' +
    'gone@example.com,Gone,G,1,2025-01-01,2026-01-01,Spring\n',
};

describe('ZIP archives', () => {
  it('the one list member is read, whatever the archive holds beside it; subscribed members are never a list', async () => {
    const { report, db } = await importZip({
      'audience/': '',
      'audience/subscribed_members_export_1a2b3c.csv': mailchimp.subscribed,
      'audience/unsubscribed_members_export_1a2b3c.csv': mailchimp.unsubscribed,
      'audience/logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
      '__MACOSX/audience/._unsubscribed_members_export_1a2b3c.csv': 'x',
    });
    expect(report).toMatchObject({ format: 'mailchimp-unsubscribed', member: 'audience/unsubscribed_members_export_1a2b3c.csv', rows: 2, added: 2 });
    expect(await suppressed(db, ['left1@example.com', 'left2@example.com', 'sub1@example.com'])).toEqual(['left1@example.com', 'left2@example.com']);
  });

  it('several lists: exit with the list of them, and --member picks one (by path or file name)', async () => {
    const members = {
      'subscribed_members_export_1.csv': mailchimp.subscribed,
      'unsubscribed_members_export_1.csv': mailchimp.unsubscribed,
      'cleaned_members_export_1.csv': mailchimp.cleaned,
    };
    // Lists that are not all of an audience export: which are opt-outs is the user's to say.
    expect(await failureCode(() => importZip({ ...members, 'bounces.csv': 'email\nx@example.com\n' }))).toBe('OPTOUT_ERR_ZIP_MEMBER');
    expect(await failureCode(() => importZip({ 'a.csv': 'email\na@example.com\n', 'b.csv': 'email\nb@example.com\n' }))).toBe('OPTOUT_ERR_ZIP_MEMBER');
    expect((await importZip(members, { member: 'cleaned_members_export_1.csv' })).report)
      .toMatchObject({ format: 'mailchimp-cleaned', member: 'cleaned_members_export_1.csv', rows: 1, added: 1 });
    expect(await failureCode(() => importZip(members, { member: 'nope.csv' }))).toBe('OPTOUT_ERR_ZIP_MEMBER');
    expect(await failureCode(() => importZip({ 'subscribed_members_export_1.csv': mailchimp.subscribed }))).toBe('OPTOUT_ERR_ZIP_MEMBER');
  });

  it('a Mailchimp audience export imports its unsubscribed and cleaned members with zero flags; the subscribed one is skipped whole', async () => {
    const members = {
      'audience_export_1a2b/subscribed_members_export_1a2b.csv': mailchimp.subscribed,
      'audience_export_1a2b/unsubscribed_members_export_1a2b.csv': mailchimp.unsubscribed,
      'audience_export_1a2b/cleaned_members_export_1a2b.csv': mailchimp.cleaned + 'not-an-address,Bad,B,1,2025-01-01,2026-01-01,Spring\n',
    };
    const dir = await tempDir('optout-zip-');
    const rejects = join(dir, 'rejects.csv');
    const { report, db } = await importZip(members, { rejects });
    expect(report).toMatchObject({
      format: 'mailchimp-audience', confirmed: true, rows: 6, valid: 3, invalid: 1, skipped: 2, unique: 3, added: 3, jobId: null,
      reasons: { unsubscribed: 2, bounced: 1 }, skipRule: 'audience_export_1a2b/subscribed_members_export_1a2b.csv lists subscribed members',
    });
    expect(report.members).toEqual([
      { name: 'audience_export_1a2b/unsubscribed_members_export_1a2b.csv', format: 'mailchimp-unsubscribed', reason: 'unsubscribed',
        jobId: expect.any(String), subscribed: false, rows: 2, valid: 2, invalid: 0, skipped: 0, unique: 2, duplicates: 0, added: 2, alreadySuppressed: 0 },
      { name: 'audience_export_1a2b/cleaned_members_export_1a2b.csv', format: 'mailchimp-cleaned', reason: 'bounced',
        jobId: expect.any(String), subscribed: false, rows: 2, valid: 1, invalid: 1, skipped: 0, unique: 1, duplicates: 0, added: 1, alreadySuppressed: 0 },
      { name: 'audience_export_1a2b/subscribed_members_export_1a2b.csv', format: 'csv', reason: null,
        jobId: null, subscribed: true, rows: 2, valid: 0, invalid: 0, skipped: 2, unique: 0, duplicates: 0, added: 0, alreadySuppressed: 0 },
    ]);
    expect(report.rows).toBe(report.valid + report.invalid + report.skipped);
    const s = await openStore(db);
    try {
      const emails = ['left1@example.com', 'left2@example.com', 'gone@example.com', 'sub1@example.com', 'sub2@example.com'];
      const decisions = await s.checkMany(emails.map((email) => ({ email })));
      expect(decisions.map((d) => (d.eligible ? 'eligible' : d.suppression?.reason)))
        .toEqual(['unsubscribed', 'unsubscribed', 'bounced', 'eligible', 'eligible']);
    } finally {
      await s.close();
    }
    // Each member's invalid rows in a rejects file of its own.
    expect(readFileSync(join(dir, 'rejects-cleaned_members_export_1a2b.csv'), 'utf8')).toContain('not-an-address,NO_AT_SIGN');
  });

  it('an audience export is confirmed as a whole: the sum of its members\' unique addresses, before any member is written', async () => {
    const members = {
      'subscribed_members_export_9.csv': mailchimp.subscribed,
      'unsubscribed_members_export_9.csv': mailchimp.unsubscribed,
      'cleaned_members_export_9.csv': mailchimp.cleaned,
    };
    const dry = await importZip(members, { confirm: { mode: 'dry-run' } });
    expect(dry.report).toMatchObject({ format: 'mailchimp-audience', dryRun: true, confirmed: false, rows: 5, unique: 3, added: 3, skipped: 2 });
    const wrong = await importZip(members, { confirm: { mode: 'count', count: 2 } });
    expect(wrong.report).toMatchObject({ confirmed: false, expectedCount: 2, unique: 3 });
    expect(await suppressed(wrong.db, ['left1@example.com', 'gone@example.com'])).toEqual([]);
    let asked: number | undefined;
    const right = await importZip(members, { confirm: { mode: 'ask', ask: async (a) => {
      asked = a.unique;
      return a.unique;
    } } });
    expect(asked).toBe(3);
    expect(right.report).toMatchObject({ confirmed: true, added: 3 });
    expect(await suppressed(right.db, ['left1@example.com', 'gone@example.com', 'sub1@example.com'])).toEqual(['left1@example.com', 'gone@example.com']);
  });

  it('a JSON member, and a broken archive', async () => {
    const json = JSON.stringify({ Suppressions: [{ EmailAddress: 'pm@example.com', SuppressionReason: 'HardBounce', Origin: 'Recipient', CreatedAt: '2026-01-05' }] });
    expect((await importZip({ 'suppressions.json': json })).report).toMatchObject({ format: 'postmark-json', member: 'suppressions.json', rows: 1, added: 1 });
    const dir = await tempDir('optout-zip-');
    const path = join(dir, 'broken.zip');
    writeFileSync(path, zipOf({ 'a.csv': 'email\na@example.com\n' }).subarray(0, 40));
    expect(await failureCode(() => runImport({ source: { kind: 'file', path }, db: join(dir, 'db'), confirm: { mode: 'yes' } }))).toBe('OPTOUT_ERR_SOURCE');
  });

  it('a plain list names no member', async () => {
    const dir = await tempDir('optout-zip-');
    const path = join(dir, 'list.csv');
    writeFileSync(path, 'email\na@example.com\n');
    expect(await runImport({ source: { kind: 'file', path }, db: join(dir, 'db'), confirm: { mode: 'dry-run' } })).toMatchObject({ member: null });
  });
});
