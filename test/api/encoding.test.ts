/**
 * Text that does not decode to valid UTF-8 is a 400 `OPTOUT_ERR_INVALID_ENCODING`, never a
 * decision: in the query string, in path parameters and in JSON bodies. The regression this
 * guards: `?email=jos%E9@example.com` (a Latin-1 escape) answered eligible for a suppressed
 * `josé@example.com`. Real server on 127.0.0.1, real store.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { addSuppression, lookupSuppressions } from '../../src/manage/suppressions.js';
import { apiCaller, closeServerAndStore, listenOnLoopback, tempDir, type ApiAnswer } from '../helpers.js';

let store: OptoutStore;
let app: OptoutServer;
let base: string;
const keys = { admin: '', check: '' };

beforeAll(async () => {
  const dir = await tempDir('optout-api-encoding-');
  store = await openStore(join(dir, 'db'));
  await addSuppression(store.store, { email: 'josé@example.com' });
  await addSuppression(store.store, { email: 'josé@example.com', unit: 'emea' });
  await addSuppression(store.store, { email: 'jos\uFFFD@example.com' });
  keys.admin = (await createKey(store.store, { scope: 'admin' })).key;
  keys.check = (await createKey(store.store, { scope: 'check' })).key;
  app = createServer({ store });
  base = await listenOnLoopback(app);
});

afterAll(() => closeServerAndStore(app, store));

const call = apiCaller(() => base);

function expectInvalidEncoding(a: ApiAnswer): void {
  expect(a.status, a.text).toBe(400);
  expect(a.json).toEqual({ code: 'OPTOUT_ERR_INVALID_ENCODING', message: expect.any(String) as string });
}

/** Escapes that are not UTF-8: Latin-1 é, a truncated sequence, an overlong `/`, a surrogate, a code point past U+10FFFF. */
const BAD_ESCAPES = ['%E9', '%C3', '%C0%AF', '%ED%A0%80', '%F4%90%80%80'];
/** Not escapes at all: decoding them as text would keep `%` in the value. */
const BROKEN_ESCAPES = ['%', '%ZZ', '%E'];

describe('the query string', () => {
  it('answers 400 OPTOUT_ERR_INVALID_ENCODING to jos%E9@example.com, and a decision to jos%C3%A9@example.com', async () => {
    expectInvalidEncoding(await call('GET', '/v1/eligibility?email=jos%E9@example.com', keys.check));
    const utf8 = await call('GET', '/v1/eligibility?email=jos%C3%A9@example.com', keys.check);
    expect(utf8.status).toBe(200);
    expect(utf8.json).toMatchObject({ eligible: false, reason: 'suppressed', address: 'josé@example.com' });
  });

  it.each([...BAD_ESCAPES, ...BROKEN_ESCAPES])('refuses %s in a value, in another parameter and in a name', async (escape) => {
    expectInvalidEncoding(await call('GET', `/v1/eligibility?email=jos${escape}@example.com`, keys.check));
    expectInvalidEncoding(await call('GET', `/v1/eligibility?email=jos%C3%A9@example.com&unit=emea${escape}`, keys.check));
    expectInvalidEncoding(await call('GET', `/v1/eligibility?email=jos%C3%A9@example.com&unit${escape}=emea`, keys.check));
  });

  it('refuses it on every route that reads the query, changing nothing', async () => {
    expectInvalidEncoding(await call('DELETE', '/v1/suppressions/jos%C3%A9@example.com?unit=emea%E9&why=asked', keys.admin));
    expectInvalidEncoding(await call('GET', '/v1/export?unit=emea%E9', keys.check));
    expectInvalidEncoding(await call('GET', '/v1/audit?email=jos%E9@example.com', keys.admin));
    expectInvalidEncoding(await call('POST', '/v1/imports?unit=emea%E9&yes=true', keys.admin, 'email\na@example.com\n', { 'content-type': 'text/csv' }));
    expect((await lookupSuppressions(store.store, 'josé@example.com')).map((s) => s.scope).sort()).toEqual(['*', 'emea']);
    expect((await call('GET', '/v1/imports', keys.admin)).json['imports']).toEqual([]);
  });

  it('checks the key first: no key is still a 401', async () => {
    const a = await call('GET', '/v1/eligibility?email=jos%E9@example.com', undefined);
    expect(a.status).toBe(401);
    expect(a.code).toBe('OPTOUT_ERR_UNAUTHORIZED');
  });

  it('decodes a literal U+FFFD sent as UTF-8 like any character, and a + as a space', async () => {
    const replacement = await call('GET', '/v1/eligibility?email=jos%EF%BF%BD@example.com', keys.check);
    expect(replacement.status).toBe(200);
    expect(replacement.json).toMatchObject({ eligible: false, reason: 'suppressed', address: 'jos\uFFFD@example.com' });
    const spaced = await call('GET', '/v1/eligibility?email=+jos%C3%A9@example.com+', keys.check);
    expect(spaced.json).toMatchObject({ eligible: false, address: 'josé@example.com' });
  });

  it('still answers 400 OPTOUT_ERR_INVALID_OPTION to a repeated parameter', async () => {
    const a = await call('GET', '/v1/eligibility?email=a@example.com&email=jos%C3%A9@example.com', keys.check);
    expect(a.status).toBe(400);
    expect(a.code).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('path parameters', () => {
  it.each([...BAD_ESCAPES, ...BROKEN_ESCAPES])('refuses %s in an address on GET, PUT and DELETE /v1/suppressions/{email}', async (escape) => {
    const path = `/v1/suppressions/jos${escape}@example.com`;
    expectInvalidEncoding(await call('GET', path, keys.admin));
    expectInvalidEncoding(await call('PUT', path, keys.admin, {}));
    expectInvalidEncoding(await call('DELETE', `${path}?why=asked`, keys.admin));
  });

  it('refuses it in every other route with a parameter, and on routes that do not exist', async () => {
    expectInvalidEncoding(await call('GET', '/v1/imports/1%E9', keys.admin));
    expectInvalidEncoding(await call('GET', '/v1/imports/1%E9/rejects', keys.admin));
    expectInvalidEncoding(await call('POST', '/v1/imports/1%E9/confirm', keys.admin, { count: 1 }));
    expectInvalidEncoding(await call('POST', '/v1/imports/1%E9/rollback', keys.admin));
    expectInvalidEncoding(await call('DELETE', '/v1/keys/0123456789abcde%E9', keys.admin));
    expectInvalidEncoding(await call('GET', '/v1/eligibility/jos%E9@example.com', keys.check));
  });

  it('decodes valid UTF-8 and a literal U+FFFD in a path', async () => {
    const found = await call('GET', '/v1/suppressions/jos%C3%A9@example.com', keys.admin);
    expect(found.status).toBe(200);
    expect((found.json['suppressions'] as unknown[]).length).toBe(2);
    const added = await call('PUT', '/v1/suppressions/caf%EF%BF%BD@example.com', keys.admin, {});
    expect(added.status).toBe(201);
    const check = await call('GET', '/v1/eligibility?email=caf%EF%BF%BD@example.com', keys.check);
    expect(check.json).toMatchObject({ eligible: false, reason: 'suppressed' });
  });
});

describe('JSON bodies', () => {
  const json = { 'content-type': 'application/json' };
  const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

  it('refuses a batch with one address in Latin-1, answering for none', async () => {
    const body = latin1('{"emails":["fresh@example.com","jos\xe9@example.com"]}');
    expectInvalidEncoding(await call('POST', '/v1/eligibility', keys.check, body, json));
    const utf8 = await call('POST', '/v1/eligibility', keys.check, Buffer.from('{"emails":["fresh@example.com","josé@example.com"]}'), json);
    expect(utf8.status).toBe(200);
    expect((utf8.json['results'] as Array<Record<string, unknown>>).map((r) => r['eligible'])).toEqual([true, false]);
  });

  it.each([
    ['a truncated sequence', Buffer.from([0xc3])],
    ['an overlong sequence', Buffer.from([0xc0, 0xaf])],
    ['an encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ])('refuses %s in a string', async (_name, bytes) => {
    const body = Buffer.concat([Buffer.from('{"emails":["jos'), bytes, Buffer.from('@example.com"]}')]);
    expectInvalidEncoding(await call('POST', '/v1/eligibility', keys.check, body, json));
  });

  it('refuses it in the bodies of the management routes, changing nothing', async () => {
    expectInvalidEncoding(await call('PUT', '/v1/suppressions/new@example.com', keys.admin, latin1('{"source":"caf\xe9"}'), json));
    expectInvalidEncoding(await call('DELETE', '/v1/suppressions/jos%C3%A9@example.com?unit=emea', keys.admin, latin1('{"why":"caf\xe9"}'), json));
    expectInvalidEncoding(await call('POST', '/v1/keys', keys.admin, latin1('{"unit":"\xe9"}'), json));
    expect(await lookupSuppressions(store.store, 'new@example.com')).toEqual([]);
    expect((await lookupSuppressions(store.store, 'josé@example.com')).map((s) => s.scope).sort()).toEqual(['*', 'emea']);
  });

  it('decodes a literal U+FFFD sent as UTF-8 like any character', async () => {
    const a = await call('POST', '/v1/eligibility', keys.check, Buffer.from('{"emails":["jos\uFFFD@example.com"]}'), json);
    expect(a.status).toBe(200);
    expect((a.json['results'] as Array<Record<string, unknown>>)[0]).toMatchObject({ eligible: false, reason: 'suppressed' });
  });
});
