/**
 * Admin keys are account-wide: an admin key bound to a unit bound nothing (it removed other
 * units' suppressions, rolled back account-wide jobs, read the whole audit trail, made unbound
 * admin keys). Creating one is refused (library, HTTP; the CLI in test/cli/manage.e2e.test.ts), and
 * one written by an earlier version is refused on every route. Requests through `app.inject()`,
 * a real store seeded by imports.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey, listKeys } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { closeServerAndStore, tempDir, type ApiMethod } from '../helpers.js';
import { injectCaller, runImport } from '../inline.js';

let dir: string;
let store: OptoutStore;
let app: OptoutServer;
const call = injectCaller(() => app);
const admin = { id: '', key: '' };
const old = { id: '', key: '' };

/** A key record as versions before the refusal wrote it for `keys create --scope admin --unit emea`. */
async function writeOldUnitAdminKey(s: OptoutStore): Promise<{ id: string; key: string }> {
  const id = randomBytes(8).toString('hex');
  const key = `oo_${id}_${randomBytes(32).toString('base64url')}`;
  const record = {
    id, hash: createHash('sha256').update(key, 'utf8').digest('hex'), unit: 'emea', scope: 'admin', rateLimit: null,
    createdAt: new Date().toISOString(), revokedAt: null,
  };
  await s.store.db.put(`k${id}`, JSON.stringify(record));
  return { id, key };
}

async function dump(s: OptoutStore): Promise<Array<[string, string]>> {
  const pairs: Array<[string, string]> = [];
  for await (const pair of s.store.db.iterator()) pairs.push(pair);
  return pairs;
}

beforeAll(async () => {
  dir = await tempDir('optout-api-unit-admin-');
  const db = join(dir, 'db');
  const csv = join(dir, 'list.csv');
  await writeFile(csv, 'Email\nacct@example.com\n');
  expect((await runImport({ source: { kind: 'file', path: csv }, db, confirm: { mode: 'yes' } })).added).toBe(1);
  await writeFile(csv, 'Email\napac@example.com\n');
  expect((await runImport({ source: { kind: 'file', path: csv }, db, confirm: { mode: 'yes' }, unit: 'apac' })).added).toBe(1);
  store = await openStore(db);
  const made = await createKey(store.store, { scope: 'admin' });
  Object.assign(admin, { id: made.id, key: made.key });
  Object.assign(old, await writeOldUnitAdminKey(store));
  app = createServer({ store });
  await app.ready();
});

afterAll(() => closeServerAndStore(app, store));

const csvBody = { 'content-type': 'text/csv' };

/** Every route that takes a key, with a request the key's unit (emea) could plausibly make. */
const ROUTES: Array<[ApiMethod, string, unknown?, Record<string, string>?]> = [
  ['GET', '/v1/eligibility?email=acct@example.com&unit=emea'],
  ['POST', '/v1/eligibility', { emails: ['acct@example.com'], unit: 'emea' }],
  ['GET', '/metrics'],
  ['PUT', '/v1/suppressions/new@example.com', { unit: 'emea' }],
  ['GET', '/v1/suppressions/apac@example.com'],
  ['DELETE', '/v1/suppressions/apac@example.com?unit=apac&why=test'],
  ['GET', '/v1/export?unit=emea'],
  ['GET', '/v1/audit'],
  ['GET', '/v1/jobs'],
  ['POST', '/v1/keys', { scope: 'admin' }],
  ['GET', '/v1/keys'],
  ['DELETE', '/v1/keys/:id'],
  ['POST', '/v1/imports?unit=emea&yes=true', 'email\nemea@example.com\n', csvBody],
  ['GET', '/v1/imports'],
  ['GET', '/v1/imports/1'],
  ['POST', '/v1/imports/1/confirm', { count: 1 }],
  ['GET', '/v1/imports/1/rejects'],
  ['POST', '/v1/imports/1/abandon', { force: true }],
  ['POST', '/v1/imports/1/rollback'],
  ['POST', '/v1/inbound', { provider: 'postmark' }],
  ['GET', '/v1/inbound'],
  ['DELETE', '/v1/inbound/:id'],
];

/** `METHOD /path` of every route the server has, from fastify's route tree (parameters as `:name`). */
function serverRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
    if (m === null) continue;
    const depth = (m[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(m[2] ?? '');
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) out.push(`${method} ${stack.join('')}`);
  }
  return out.sort();
}

describe('an admin key bound to a unit, written by an earlier version', () => {
  it('covers every route of the server that takes a key', async () => {
    const withKey = serverRoutes(app.printRoutes({ commonPrefix: false }))
      // Unsubscribe links take no key: the token is the credential; ESP webhooks authenticate
      // with their provider's signature.
      .filter((r) => !/ \/(healthz|readyz|openapi\.json|u\/:token)$/.test(r) && !r.startsWith('HEAD ') && r !== 'POST /v1/inbound/:id');
    const tested = ROUTES.map(([method, path]) => `${method} ${path.split('?')[0] ?? ''}`
      .replace(/\/v1\/suppressions\/[^/]+/, '/v1/suppressions/:email').replace(/\/v1\/imports\/1/, '/v1/imports/:id'));
    expect([...new Set(tested)].sort()).toEqual(withKey);
  });

  it.each(ROUTES)('is refused on %s %s with 401 OPTOUT_ERR_UNAUTHORIZED, changing nothing', async (method, path, body, headers) => {
    const before = await dump(store);
    const a = await call(method, path.replace(':id', admin.id), old.key, body, headers);
    expect(a.status, a.text).toBe(401);
    expect(a.json).toEqual({ code: 'OPTOUT_ERR_UNAUTHORIZED', message: expect.stringContaining(old.id) as string });
    expect(a.headers['www-authenticate']).toMatch(/invalid_token/);
    expect(await dump(store)).toEqual(before);
  });

  it('is refused on HEAD too', async () => {
    expect((await callHead('/v1/jobs', old.key)).status).toBe(401);
  });

  it('is listed, can be revoked, and is then refused like any revoked key', async () => {
    expect((await call('GET', '/v1/keys', admin.key)).json['keys']).toContainEqual(expect.objectContaining({ id: old.id, scope: 'admin', unit: 'emea' }));
    expect((await call('DELETE', `/v1/keys/${old.id}`, admin.key)).status).toBe(200);
    const a = await call('GET', '/v1/jobs', old.key);
    expect(a.status).toBe(401);
    expect(a.json['message']).not.toContain(old.id);
  });
});

async function callHead(path: string, key: string): Promise<{ status: number }> {
  const res = await app.inject({ method: 'HEAD', url: path, headers: { authorization: `Bearer ${key}` } });
  return { status: res.statusCode };
}

describe('creating an admin key bound to a unit', () => {
  it('is refused over HTTP with 400 OPTOUT_ERR_INVALID_OPTION, creating nothing', async () => {
    const count = (await listKeys(store.store)).length;
    const a = await call('POST', '/v1/keys', admin.key, { scope: 'admin', unit: 'emea' });
    expect(a.status).toBe(400);
    expect(a.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect((await listKeys(store.store)).length).toBe(count);
    expect((await call('POST', '/v1/keys', admin.key, { scope: 'check', unit: 'emea' })).status).toBe(201);
  });

  it('is refused by the library', async () => {
    await expect(createKey(store.store, { scope: 'admin', unit: 'emea' })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
  });
});
