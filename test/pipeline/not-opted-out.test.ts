/**
 * Exports that hold rows which are not opt-outs (subscribed contacts, soft bounces, deliveries),
 * recognised by header with no flag: those rows are skipped (counted, `NOT_OPTED_OUT` in the
 * rejects file), the others imported with the reason each row gives.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/check/open-store.js';
import type { ImportOptions } from '../../src/options.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

async function importFile(name: string, content: string, options: Partial<ImportOptions> = {}) {
  const dir = await tempDir('optout-not-opted-out-');
  const path = join(dir, name);
  writeFileSync(path, content);
  const db = join(dir, 'db');
  const rejects = join(dir, 'rejects.csv');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, rejects, ...options });
  const rejectLines = readFileSync(rejects, 'utf8').trim().split('\n').slice(1);
  return { report, db, rejectLines };
}

/** The reason a check gives for each address, or `eligible` when none suppresses it. */
async function reasonsOf(db: string, emails: readonly string[]): Promise<Record<string, string>> {
  const s = await openStore(db);
  try {
    const decisions = await s.checkMany(emails.map((email) => ({ email })));
    return Object.fromEntries(emails.map((e, i) => [e, decisions[i]?.eligible === false ? decisions[i]?.suppression?.reason ?? '?' : 'eligible']));
  } finally {
    await s.close();
  }
}

const csv = (rows: string[][]): string => rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c)).join(',')).join('\r\n') + '\r\n';

describe('exports with rows that are not opt-outs', () => {
  it('ActiveCampaign contacts: Active and Unconfirmed skipped, Unsubscribed and Bounced imported with their reasons', async () => {
    const text = csv([
      ['Email', 'First Name', 'Last Name', 'Phone', 'Organization', 'Tags', 'Date Created', 'Status'],
      ['ann@example.com', 'Ann', 'A', '', 'Acme, Inc.', 'vip', '2025-03-01 10:00:00', 'Active'],
      ['bob@example.com', 'Bob', 'B', '', '', '', '2025-03-01 10:00:00', 'Unsubscribed'],
      ['cat@example.com', 'Cat', 'C', '', '', '', '2025-03-01 10:00:00', 'Bounced'],
      ['dan@example.com', 'Dan', 'D', '', '', '', '2025-03-01 10:00:00', 'Unconfirmed'],
      ['eve@example.com', 'Eve', 'E', '', '', '', '2025-03-01 10:00:00', ' unsubscribed '],
      ['fay@example.com', 'Fay', 'F', '', '', '', '2025-03-01 10:00:00', ''],
      ['broken.example.com', 'Gus', 'G', '', '', '', '2025-03-01 10:00:00', 'Unsubscribed'],
    ]);
    const { report, db, rejectLines } = await importFile('activecampaign.csv', text);
    expect(report).toMatchObject({
      format: 'activecampaign-contacts', header: 'row', column: 'Email', rows: 7, valid: 4, invalid: 1, skipped: 2, added: 4,
      skipRule: 'Status is active or subscribed or unconfirmed', reasonColumn: 'Status', reasons: { unsubscribed: 3, bounced: 1 },
    });
    expect(rejectLines).toEqual(['2,1,ann@example.com,NOT_OPTED_OUT', '5,4,dan@example.com,NOT_OPTED_OUT', '8,7,broken.example.com,NO_AT_SIGN']);
    expect(await reasonsOf(db, ['ann@example.com', 'bob@example.com', 'cat@example.com', 'dan@example.com', 'eve@example.com', 'fay@example.com'])).toEqual({
      'ann@example.com': 'eligible', 'bob@example.com': 'unsubscribed', 'cat@example.com': 'bounced', 'dan@example.com': 'eligible',
      'eve@example.com': 'unsubscribed', 'fay@example.com': 'unsubscribed',
    });
  });

  it('Klaviyo suppressed profiles: every row imported, each with the reason it names', async () => {
    const text = csv([
      ['Email', 'Suppression Reason', 'Suppressed At'],
      ['u@example.com', 'Unsubscribed', '2026-01-05 10:00:00'],
      ['b@example.com', 'Bounced', '2026-01-05 10:00:00'],
      ['s@example.com', 'Spam complaint', '2026-01-05 10:00:00'],
      ['m@example.com', 'Manually suppressed', '2026-01-05 10:00:00'],
      ['us@example.com', 'User suppressed', '2026-01-05 10:00:00'],
      ['i@example.com', 'Invalid email', '2026-01-05 10:00:00'],
    ]);
    const { report, db } = await importFile('klaviyo.csv', text);
    expect(report).toMatchObject({
      format: 'klaviyo-suppressions', header: 'row', column: 'Email', rows: 6, valid: 6, skipped: 0, skipRule: null,
      reasons: { unsubscribed: 1, bounced: 2, complaint: 1, manual: 2 },
    });
    expect(await reasonsOf(db, ['u@example.com', 'b@example.com', 's@example.com', 'm@example.com', 'us@example.com', 'i@example.com'])).toEqual({
      'u@example.com': 'unsubscribed', 'b@example.com': 'bounced', 's@example.com': 'complaint', 'm@example.com': 'manual',
      'us@example.com': 'manual', 'i@example.com': 'bounced',
    });
  });

  it('Salesforce Marketing Cloud bounces: soft bounces skipped (by EventType or BounceCategory), the rest imported as bounced', async () => {
    const header = ['ClientID', 'SendID', 'SubscriberKey', 'EmailAddress', 'SubscriberID', 'ListID', 'EventDate', 'EventType', 'BounceCategory',
      'SMTPCode', 'BounceReason', 'BatchID', 'TriggeredSendExternalKey'];
    const row = (email: string, type: string, category: string, code: string): string[] =>
      ['7281698', '1203', email, email, '58', '64', '1/5/2026 10:00:00 AM', type, category, code, `${code} smtp; example`, '1', ''];
    const text = csv([header,
      row('hard@example.com', 'HardBounce', 'Hard bounce', '550'),
      row('soft@example.com', 'SoftBounce', 'Soft bounce', '452'),
      row('softcat@example.com', 'HardBounce', 'Soft bounce', '421'),
      row('block@example.com', 'OtherBounce', 'Block bounce', '554'),
      row('unknown@example.com', 'HardBounce', 'Unknown bounce', '550'),
    ]);
    const { report, db, rejectLines } = await importFile('bounces.csv', text);
    expect(report).toMatchObject({
      format: 'sfmc-bounces', header: 'row', column: 'EmailAddress', reason: 'bounced', rows: 5, valid: 3, skipped: 2, added: 3,
      skipRule: 'EventType is softbounce; BounceCategory is soft or soft bounce or softbounce', reasons: { bounced: 3 },
    });
    expect(rejectLines).toEqual(['3,2,soft@example.com,NOT_OPTED_OUT', '4,3,softcat@example.com,NOT_OPTED_OUT']);
    expect(await reasonsOf(db, ['hard@example.com', 'soft@example.com', 'softcat@example.com', 'block@example.com', 'unknown@example.com'])).toEqual({
      'hard@example.com': 'bounced', 'soft@example.com': 'eligible', 'softcat@example.com': 'eligible', 'block@example.com': 'bounced',
      'unknown@example.com': 'bounced',
    });
  });

  /** SES events as SNS delivers them: Bounce (Permanent, Transient, Undetermined), Complaint, Delivery. */
  function sesEvents(kindField: 'notificationType' | 'eventType'): Array<Record<string, unknown>> {
    const mail = (to: string[]) => ({ timestamp: '2026-01-05T10:00:00.000Z', source: 'news@sender.example', messageId: 'm1', destination: to });
    const bounce = (type: string, sub: string, to: string[]) => ({
      [kindField]: 'Bounce', mail: mail(to),
      bounce: { bounceType: type, bounceSubType: sub, timestamp: '2026-01-05T10:00:01.000Z', feedbackId: 'f1',
        bouncedRecipients: to.map((emailAddress) => ({ emailAddress, action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' })) },
    });
    return [
      bounce('Permanent', 'General', ['gone1@example.com', 'Gone2@Example.com']),
      bounce('Transient', 'MailboxFull', ['full@example.com']),
      { [kindField]: 'Complaint', mail: mail(['angry@example.com']),
        complaint: { complainedRecipients: [{ emailAddress: 'angry@example.com' }], timestamp: '2026-01-05T11:00:00.000Z', complaintFeedbackType: 'abuse' } },
      { [kindField]: 'Delivery', mail: mail(['fine@example.com']), delivery: { timestamp: '2026-01-05T10:00:01.000Z', recipients: ['fine@example.com'] } },
      bounce('Undetermined', 'Undetermined', ['unsure@example.com']),
    ];
  }
  const sesExpected = {
    'gone1@example.com': 'bounced', 'gone2@example.com': 'bounced', 'full@example.com': 'eligible', 'angry@example.com': 'complaint',
    'fine@example.com': 'eligible', 'unsure@example.com': 'eligible', 'wrapped@example.com': 'bounced',
  };

  it('SES bounce and complaint notifications as NDJSON, one in its SNS envelope: Transient, Undetermined and deliveries skipped', async () => {
    const events = sesEvents('notificationType');
    const wrapped = { Type: 'Notification', MessageId: 'x1', TopicArn: 'arn:aws:sns:us-east-1:123456789012:ses', Timestamp: '2026-01-05T12:00:00.000Z',
      Message: JSON.stringify({ notificationType: 'Bounce', mail: { destination: ['wrapped@example.com'] },
        bounce: { bounceType: 'Permanent', bounceSubType: 'NoEmail', bouncedRecipients: [{ emailAddress: 'wrapped@example.com' }] } }) };
    const { report, db, rejectLines } = await importFile('ses-events.ndjson', [...events, wrapped].map((e) => JSON.stringify(e)).join('\n') + '\n');
    expect(report).toMatchObject({
      format: 'ses-notifications', header: 'row', column: 'emailAddress', reasonColumn: 'notificationType', rows: 7, valid: 4, invalid: 0,
      skipped: 3, unique: 4, added: 4, reasons: { bounced: 3, complaint: 1 },
    });
    expect(report.skipRule).toBe('bounceType is transient or undetermined; notificationType is delivery or send or open or click or deliverydelay or reject or rendering failure');
    expect(rejectLines.map((l) => l.split(',').slice(2).join(','))).toEqual([
      'full@example.com,NOT_OPTED_OUT', 'fine@example.com,NOT_OPTED_OUT', 'unsure@example.com,NOT_OPTED_OUT',
    ]);
    expect(await reasonsOf(db, Object.keys(sesExpected))).toEqual(sesExpected);
  });

  it('SES events published through a configuration set (eventType), as a JSON array', async () => {
    const { report, db } = await importFile('ses-events.json', JSON.stringify(sesEvents('eventType'), null, 2));
    expect(report).toMatchObject({ format: 'ses-notifications', header: 'row', rows: 6, valid: 3, skipped: 3, reasons: { bounced: 2, complaint: 1 } });
    const { 'wrapped@example.com': _, ...expected } = sesExpected;
    expect(await reasonsOf(db, Object.keys(expected))).toEqual(expected);
  });
});
