/**
 * The eligibility rules over HTTP, through `app.inject()`, against a real store seeded
 * by imports: account-wide, unit, type, legal basis, invalid; batch order and limits;
 * 400s with stable codes.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import type { CheckRequest } from '../../src/check/checker.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

let store: OptoutStore;
let app: OptoutServer;
let auth: Record<string, string>;

async function seed(dir: string, file: string, rows: string[], unit?: string): Promise<void> {
  const csv = join(dir, file);
  await writeFile(csv, ['Email', ...rows].join('\n') + '\n');
  const r = await runImport({ source: { kind: 'file', path: csv }, db: join(dir, 'db'), confirm: { mode: 'yes' }, ...(unit ? { unit } : {}) });
  expect(r.added).toBe(rows.length);
}

beforeAll(async () => {
  const dir = await tempDir();
  await seed(dir, 'account.csv', ['acct@example.com', 'First.Last@gmail.com']);
  await seed(dir, 'emea.csv', ['unit@example.com'], 'emea');
  store = await openStore(join(dir, 'db'));
  const { key } = await createKey(store.store, { scope: 'check' });
  auth = { authorization: `Bearer ${key}` };
  app = createServer({ store });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await removeTempDirs();
});

async function get(params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ url: `/v1/eligibility?${new URLSearchParams(params).toString()}`, headers: auth });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

async function post(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: '/v1/eligibility', headers: { ...auth, ...headers }, payload: body });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
}

describe('GET /v1/eligibility: the rules', () => {
  const table: Array<[string, Record<string, string>, boolean, string]> = [
    ['account-wide, no unit', { email: 'acct@example.com' }, false, 'suppressed'],
    ['account-wide, in a unit', { email: 'acct@example.com', unit: 'apac' }, false, 'suppressed'],
    ['account-wide, sequence', { email: 'acct@example.com', type: 'sequence' }, false, 'suppressed'],
    ['account-wide, normalized match', { email: ' first.last+promo@GoogleMail.com ' }, false, 'suppressed'],
    ['unit suppression, same unit', { email: 'unit@example.com', unit: 'emea' }, false, 'suppressed'],
    ['unit suppression, other unit', { email: 'unit@example.com', unit: 'apac' }, true, 'not_suppressed'],
    ['unit suppression, no unit', { email: 'unit@example.com' }, true, 'not_suppressed'],
    ['one-to-one without legal basis', { email: 'acct@example.com', type: 'one-to-one' }, false, 'suppressed'],
    ['one-to-one with a blank legal basis', { email: 'acct@example.com', type: 'one-to-one', legalBasis: '  ' }, false, 'suppressed'],
    ['one-to-one with a legal basis', { email: 'acct@example.com', type: 'one-to-one', legalBasis: 'contract 42' }, true, 'legal_basis'],
    ['marketing ignores a legal basis', { email: 'acct@example.com', legalBasis: 'contract 42' }, false, 'suppressed'],
    ['not on the list', { email: 'fresh@example.com', unit: 'emea' }, true, 'not_suppressed'],
    ['invalid address', { email: 'not-an-email' }, false, 'invalid_address'],
  ];
  it.each(table)('%s', async (_name, params, eligible, reason) => {
    const { status, body } = await get(params);
    expect(status).toBe(200);
    expect(body['eligible']).toBe(eligible);
    expect(body['reason']).toBe(reason);
  });

  it('names the matching suppression and the policy reason', async () => {
    const unit = await get({ email: 'unit@example.com', unit: 'emea' });
    expect(unit.body['suppression']).toMatchObject({ scope: 'emea', reason: 'unsubscribed', source: 'emea.csv' });
    const invalid = await get({ email: 'not-an-email' });
    expect(invalid.body['invalidReason']).toBe('NO_AT_SIGN');
  });

  it.each([
    ['an unknown type', { email: 'a@example.com', type: 'bulk' }],
    ['a malformed unit', { email: 'a@example.com', unit: 'no spaces' }],
    ['a unit too long', { email: 'a@example.com', unit: 'u'.repeat(65) }],
    ['no email', { unit: 'emea' }],
    ['a legal basis too long', { email: 'a@example.com', type: 'one-to-one', legalBasis: 'x'.repeat(501) }],
    ['a misspelt parameter', { email: 'unit@example.com', units: 'emea' }],
  ])('answers 400 OPTOUT_ERR_INVALID_OPTION for %s', async (_name, params) => {
    const { status, body } = await get(params);
    expect(status).toBe(400);
    expect(body['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(typeof body['message']).toBe('string');
  });
});

describe('POST /v1/eligibility', () => {
  it('answers in input order', async () => {
    const emails = ['fresh@example.com', 'acct@example.com', 'bad', 'unit@example.com', 'FIRSTLAST@gmail.com'];
    const { status, body } = await post(JSON.stringify({ emails, unit: 'emea' }));
    expect(status).toBe(200);
    const results = body['results'] as Array<Record<string, unknown>>;
    expect(results.map((r) => r['reason'])).toEqual(['not_suppressed', 'suppressed', 'invalid_address', 'suppressed', 'suppressed']);
    expect(results.map((r) => r['address'])).toEqual(['fresh@example.com', 'acct@example.com', null, 'unit@example.com', 'firstlast@gmail.com']);
  });

  it('answers exactly what the library decides, every field of every kind of decision', async () => {
    const emails = ['fresh@example.com', 'acct@example.com', 'bad', 'unit@example.com', ' First.Last+x@googlemail.com ', 'a@b'];
    const variants: Array<Record<string, string>> = [{}, { unit: 'emea' }, { type: 'one-to-one', legalBasis: 'contract 42' }];
    for (const options of variants) {
      const { status, body } = await post(JSON.stringify({ emails, ...options }));
      expect(status).toBe(200);
      const expected = await store.checkMany(emails.map((email) => ({ email, ...options } as CheckRequest)));
      expect(body['results']).toEqual(JSON.parse(JSON.stringify(expected)));
      const single = await get({ email: emails[1] as string, ...options });
      expect(single.body).toEqual(JSON.parse(JSON.stringify(expected[1])));
    }
  });

  it('answers the compact form on request: eligible and reason in input order, the policy reason of an invalid address', async () => {
    const emails = ['fresh@example.com', 'acct@example.com', 'bad', 'unit@example.com', 'a@b'];
    for (const options of [{}, { unit: 'emea' }, { type: 'one-to-one', legalBasis: 'contract 42' }]) {
      const res = await app.inject({ method: 'POST', url: '/v1/eligibility', headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify({ emails, compact: true, ...options }) });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      const full = await store.checkMany(emails.map((email) => ({ email, ...options } as CheckRequest)));
      const compact = full.map((d) => ({ eligible: d.eligible, reason: d.reason, ...(d.invalidReason === undefined ? {} : { invalidReason: d.invalidReason }) }));
      expect(res.json()).toEqual({ results: compact });
    }
  });

  it('refuses a compact flag that is not a boolean', async () => {
    const { status, body } = await post(JSON.stringify({ emails: ['a@example.com'], compact: 'yes' }));
    expect(status).toBe(400);
    expect(body['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('accepts 10,000 emails and answers 413 above', async () => {
    const emails = Array.from({ length: 10_000 }, (_, i) => `user${i}@example.com`);
    const ok = await post(JSON.stringify({ emails }));
    expect(ok.status).toBe(200);
    expect((ok.body['results'] as unknown[]).length).toBe(10_000);
    const over = await post(JSON.stringify({ emails: [...emails, 'one@more.org'] }));
    expect(over.status).toBe(413);
    expect(over.body['code']).toBe('OPTOUT_ERR_PAYLOAD_TOO_LARGE');
  });

  it('answers 413 to a body over the size limit', async () => {
    const { status, body } = await post(JSON.stringify({ emails: ['x'.repeat(1000) + '@example.com'], pad: 'y'.repeat(4 * 1024 * 1024) }));
    expect(status).toBe(413);
    expect(body['code']).toBe('OPTOUT_ERR_PAYLOAD_TOO_LARGE');
  });

  it.each([
    ['truncated JSON', '{"emails": ["a@example.com"'],
    ['not JSON', 'emails=a@example.com'],
    ['an empty body', ''],
  ])('answers 400 OPTOUT_ERR_INVALID_JSON to %s', async (_name, raw) => {
    const { status, body } = await post(raw);
    expect(status).toBe(400);
    expect(body['code']).toBe('OPTOUT_ERR_INVALID_JSON');
  });

  it.each([
    ['no emails', { unit: 'emea' }],
    ['emails not a list', { emails: { a: 1 } }],
    ['an email not a string', { emails: [{ email: 'a@example.com' }] }],
    ['a number or null for an email', { emails: ['a@example.com', 5, null] }],
    ['emails as one string', { emails: 'a@example.com' }],
    ['a misspelt field', { emails: ['unit@example.com'], units: 'emea' }],
    ['an unknown type', { emails: ['a@example.com'], type: 'bulk' }],
    ['a malformed unit', { emails: ['a@example.com'], unit: '*' }],
    ['a JSON array body', ['a@example.com']],
    ['a JSON null body', null],
  ])('answers 400 OPTOUT_ERR_INVALID_OPTION to %s', async (_name, json) => {
    const { status, body } = await post(JSON.stringify(json));
    expect(status).toBe(400);
    expect(body['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('answers 400 to a repeated query parameter', async () => {
    const res = await app.inject({ url: '/v1/eligibility?email=a@example.com&email=b@example.com', headers: auth });
    expect(res.statusCode).toBe(400);
    expect(res.json<Record<string, unknown>>()['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('answers 415 to a body that is not JSON by content type', async () => {
    const { status, body } = await post('a@example.com', { 'content-type': 'text/plain' });
    expect(status).toBe(415);
    expect(body['code']).toBe('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers 404 with a code on unknown routes', async () => {
    const res = await app.inject({ url: '/v1/nothing', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json<Record<string, unknown>>()['code']).toBe('OPTOUT_ERR_NOT_FOUND');
  });
});
