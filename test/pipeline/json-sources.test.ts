import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { sniffFormat } from '../../src/source/records.js';
import type { ImportOptions } from '../../src/options.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport, suppressed } from '../inline.js';

afterAll(removeTempDirs);

async function importFile(name: string, content: string | Buffer, options: Partial<ImportOptions> = {}) {
  const dir = await tempDir('optout-json-');
  const path = join(dir, name);
  writeFileSync(path, content);
  const db = join(dir, 'db');
  const report = await runImport({ source: { kind: 'file', path }, db, confirm: { mode: 'yes' }, ...options });
  return { report, db };
}

/** `aws sesv2 list-suppressed-destinations` output, as the CLI prints it. */
const sesJson = JSON.stringify({
  SuppressedDestinationSummaries: [
    { EmailAddress: 'bounced@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-05T10:00:00.000Z' },
    { EmailAddress: 'Complained@Example.com', Reason: 'COMPLAINT', LastUpdateTime: '2026-01-06T10:00:00.000Z' },
    { EmailAddress: 'bounced@example.com', Reason: 'BOUNCE', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
    { EmailAddress: 'not an address', Reason: 'BOUNCE', LastUpdateTime: '2026-01-07T10:00:00.000Z' },
  ],
  NextToken: 'abc',
}, null, 4);

describe('JSON and NDJSON sources, by content', () => {
  it('the SES suppression list JSON (pretty-printed and on one line)', async () => {
    for (const text of [sesJson, JSON.stringify(JSON.parse(sesJson))]) {
      const { report, db } = await importFile('suppressed.json', text);
      expect(report).toMatchObject({ format: 'ses-json', header: 'row', column: 'EmailAddress', rows: 4, valid: 3, invalid: 1, unique: 2, duplicates: 1, skipped: 0 });
      expect(await suppressed(db, ['bounced@example.com', 'complained@example.com', 'other@example.com']))
        .toEqual(['bounced@example.com', 'complained@example.com']);
    }
  });

  it('a Postmark suppression dump, gzipped, and a top-level array', async () => {
    const postmark = JSON.stringify({ Suppressions: [
      { EmailAddress: 'hard@example.com', SuppressionReason: 'HardBounce', Origin: 'Recipient', CreatedAt: '2026-01-05T10:00:00-05:00' },
      { EmailAddress: 'spam@example.com', SuppressionReason: 'SpamComplaint', Origin: 'Recipient', CreatedAt: '2026-01-05T10:00:00-05:00' },
      { EmailAddress: 'manual@example.com', SuppressionReason: 'ManualSuppression', Origin: 'Customer', CreatedAt: '2026-01-05T10:00:00-05:00' },
    ] });
    expect((await importFile('postmark.json.gz', gzipSync(postmark))).report)
      .toMatchObject({ format: 'postmark-json', column: 'EmailAddress', rows: 3, valid: 3, added: 3 });
    const array = JSON.stringify([{ id: 1, email: 'a@example.com', tags: ['x'] }, { id: 2, email: 'b@example.com', note: 'comma, "quoted"' }]);
    expect((await importFile('list.json', array)).report).toMatchObject({ format: 'json', column: 'email', rows: 2, valid: 2 });
  });

  it('SES bulk-import NDJSON, with an empty line and CRLF', async () => {
    const lines = ['{"emailAddress":"one@example.com","reason":"BOUNCE"}', '', '{"emailAddress":"two@example.com","reason":"COMPLAINT"}',
      '{"reason":"BOUNCE","emailAddress":"three@example.com"}'];
    const { report, db } = await importFile('bulk.jsonl', lines.join('\r\n') + '\r\n');
    expect(report).toMatchObject({ format: 'ses-bulk', column: 'emailAddress', rows: 3, valid: 3, added: 3 });
    expect(await suppressed(db, ['three@example.com'])).toEqual(['three@example.com']);
  });

  it('records with many rows stream through several chunks', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => JSON.stringify({ Email: `u${i}@example.org`, n: i })).join('\n');
    const { report } = await importFile('big.ndjson', rows, { chunkBytes: 4096 });
    expect(report).toMatchObject({ format: 'ndjson', rows: 20_000, valid: 20_000, unique: 20_000 });
  });

  it('broken JSON, JSON without records, and --format', async () => {
    expect(await failureCode(() => importFile('x.json', '{"emailAddress":"a@example.com"}\n{"broken"\n'))).toBe('OPTOUT_ERR_JSON_PARSE');
    expect(await failureCode(() => importFile('x.json', '[{"email":"a@example.com"},'))).toBe('OPTOUT_ERR_JSON_PARSE');
    // One line holding no records is one NDJSON record: its keys are the header.
    expect(await failureCode(() => importFile('x.json', '{"count": 3, "items": [1, 2]}'))).toBe('OPTOUT_ERR_NO_EMAIL_COLUMN');
    expect(await failureCode(() => importFile('x.json', '{\n"count": 3, "items": [1, 2]}'))).toBe('OPTOUT_ERR_JSON_PARSE');
    expect(await failureCode(() => importFile('x.json', '[1, 2]'))).toBe('OPTOUT_ERR_JSON_PARSE');
    // What is not a record of the list, or a second list, could be an opt-out that would go unread.
    for (const text of ['[{"email":"a@example.com"}, "b@example.com"]', '[{"email":"a@example.com"}, null]',
      '[{"email":"a@example.com"}, ["b@example.com"]]', '{"a":[{"email":"a@example.com"}],"b":[{"email":"b@example.com"}]}']) {
      expect(await failureCode(() => importFile('x.json', text)), text).toBe('OPTOUT_ERR_JSON_PARSE');
    }
    expect((await importFile('x.json', '{"meta":{"tags":["x"]},"items":[{"email":"a@example.com","tags":["y",{"k":1}]}]}')).report)
      .toMatchObject({ format: 'json', rows: 1, valid: 1 });
    expect(await failureCode(() => importFile('x.csv', 'email\na@example.com\n', { format: 'xml' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
    // A CSV whose first cell starts with a brace, read as CSV when told so.
    const { report } = await importFile('odd.csv', '{id},email\n1,a@example.com\n', { format: 'csv' });
    expect(report).toMatchObject({ format: 'csv', rows: 1, valid: 1 });
  });

  it('sniffs the format from the first bytes', () => {
    expect(sniffFormat(Buffer.from('  [{"a":1}]'))).toBe('json');
    expect(sniffFormat(Buffer.from('{\n  "Suppressions": []\n}'))).toBe('json');
    expect(sniffFormat(Buffer.from('{"Suppressions":[{"EmailAddress":"a@b.co"}]}'))).toBe('json');
    expect(sniffFormat(Buffer.from('{"email":"a@b.co"}\n{"email":"c@d.co"}\n'))).toBe('ndjson');
    expect(sniffFormat(Buffer.from('email,name\n'))).toBe('csv');
    expect(sniffFormat(Buffer.from(''))).toBe('csv');
  });
});
