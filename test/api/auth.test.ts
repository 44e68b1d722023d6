/**
 * API keys over HTTP: the auth matrix, rate limits, and no membership oracle for callers
 * without a valid key. Requests through `app.inject()`, a real store seeded by an import.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey, listKeys, revokeKey, verifyKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { removeTempDirs, tempDir, codeOf } from '../helpers.js';
import { runImport } from '../inline.js';

let store: OptoutStore;
let app: OptoutServer;
const keys: Record<'check' | 'admin' | 'emea' | 'revoked' | 'limited', string> = { check: '', admin: '', emea: '', revoked: '', limited: '' };

beforeAll(async () => {
  const dir = await tempDir();
  const csv = join(dir, 'list.csv');
  await writeFile(csv, 'Email\nlisted@example.com\n');
  expect((await runImport({ source: { kind: 'file', path: csv }, db: join(dir, 'db'), confirm: { mode: 'yes' } })).added).toBe(1);
  store = await openStore(join(dir, 'db'));
  keys.check = (await createKey(store.store, { scope: 'check' })).key;
  keys.admin = (await createKey(store.store, { scope: 'admin' })).key;
  keys.emea = (await createKey(store.store, { scope: 'check', unit: 'emea' })).key;
  keys.limited = (await createKey(store.store, { scope: 'check', rateLimit: 2 })).key;
  const revoked = await createKey(store.store, { scope: 'admin' });
  await revokeKey(store.store, revoked.id);
  keys.revoked = revoked.key;
  app = createServer({ store });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await removeTempDirs();
});

interface Answer { status: number; headers: Record<string, unknown>; text: string; code: unknown }

async function get(path: string, key?: string, rawAuth?: string): Promise<Answer> {
  const authorization = rawAuth ?? (key === undefined ? undefined : `Bearer ${key}`);
  const res = await app.inject({ url: path, headers: authorization === undefined ? {} : { authorization } });
  const text = res.body;
  const code = codeOf(text);
  return { status: res.statusCode, headers: res.headers as Record<string, unknown>, text, code };
}

const check = (email: string, unit?: string): string =>
  `/v1/eligibility?${new URLSearchParams({ email, ...(unit === undefined ? {} : { unit }) }).toString()}`;

describe('the key store', () => {
  it('lists keys without secrets and verifies only live keys', async () => {
    const list = await listKeys(store.store);
    expect(list).toHaveLength(5);
    expect(JSON.stringify(list)).not.toContain('oo_');
    expect(JSON.stringify(list)).not.toContain('hash');
    expect((await verifyKey(store.store, keys.emea))?.unit).toBe('emea');
    expect(await verifyKey(store.store, keys.revoked)).toBeUndefined();
    expect(await verifyKey(store.store, keys.check.slice(0, -1) + (keys.check.endsWith('A') ? 'B' : 'A'))).toBeUndefined();
    expect(await verifyKey(store.store, 'oo_nothing')).toBeUndefined();
  });

  it('rejects bad options with OPTOUT_ERR_INVALID_OPTION', async () => {
    await expect(createKey(store.store, { scope: 'root' as 'admin' })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    await expect(createKey(store.store, { scope: 'check', unit: 'a b' })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    await expect(createKey(store.store, { scope: 'check', rateLimit: 0 })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    await expect(revokeKey(store.store, '0123456789abcdef')).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
  });
});

describe('the auth matrix', () => {
  it.each([
    ['no key', undefined, undefined],
    ['a malformed header', undefined, 'Basic dXNlcjpwYXNz'],
    ['an empty bearer', undefined, 'Bearer '],
    ['an unknown key', 'oo_0123456789abcdef_secret', undefined],
    ['a wrong secret for a real id', 'WRONG', undefined],
    ['a revoked key', 'REVOKED', undefined],
  ])('answers 401 OPTOUT_ERR_UNAUTHORIZED to %s', async (_name, key, raw) => {
    const presented = key === 'WRONG' ? keys.check.slice(0, 20) + 'x'.repeat(43) : key === 'REVOKED' ? keys.revoked : key;
    const a = await get(check('listed@example.com'), presented, raw);
    expect(a.status).toBe(401);
    expect(a.code).toBe('OPTOUT_ERR_UNAUTHORIZED');
  });

  it('lets a check key and an admin key ask about any unit', async () => {
    for (const key of [keys.check, keys.admin]) {
      expect((await get(check('listed@example.com'), key)).status).toBe(200);
      expect((await get(check('listed@example.com', 'apac'), key)).status).toBe(200);
    }
  });

  it('binds a unit key to its unit', async () => {
    expect((await get(check('listed@example.com', 'emea'), keys.emea)).status).toBe(200);
    const other = await get(check('listed@example.com', 'apac'), keys.emea);
    expect(other.status).toBe(403);
    expect(other.code).toBe('OPTOUT_ERR_FORBIDDEN');
    const none = await get(check('listed@example.com'), keys.emea);
    expect(none.status).toBe(403);
    expect(none.code).toBe('OPTOUT_ERR_FORBIDDEN');
    const res = await app.inject({
      method: 'POST', url: '/v1/eligibility', headers: { authorization: `Bearer ${keys.emea}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ emails: ['listed@example.com'], unit: 'apac' }),
    });
    expect(res.statusCode).toBe(403);
    expect(res.json<Record<string, unknown>>()['code']).toBe('OPTOUT_ERR_FORBIDDEN');
  });

  it('keeps /metrics for admin keys', async () => {
    expect((await get('/metrics')).status).toBe(401);
    const checkKey = await get('/metrics', keys.check);
    expect(checkKey.status).toBe(403);
    expect(checkKey.code).toBe('OPTOUT_ERR_FORBIDDEN');
    expect((await get('/metrics', keys.admin)).status).toBe(200);
  });

  it('authenticates before reading the body', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/eligibility', headers: { 'content-type': 'application/json' }, payload: '{not json' });
    expect(res.statusCode).toBe(401);
    expect(res.json<Record<string, unknown>>()['code']).toBe('OPTOUT_ERR_UNAUTHORIZED');
  });
});

describe('no membership oracle', () => {
  it('gives byte-identical unauthenticated answers for listed and unlisted addresses', async () => {
    const strip = (a: Answer): unknown => ({ status: a.status, text: a.text, headers: { ...a.headers, date: undefined } });
    for (const presented of [undefined, 'oo_0123456789abcdef_secret', keys.revoked]) {
      const listed = await get(check('listed@example.com'), presented);
      const unlisted = await get(check('unlisted@example.com'), presented);
      expect(listed.status).toBe(401);
      expect(strip(listed)).toEqual(strip(unlisted));
    }
    // A unit key asking about another unit learns nothing either.
    const a = await get(check('listed@example.com', 'apac'), keys.emea);
    const b = await get(check('unlisted@example.com', 'apac'), keys.emea);
    expect(strip(a)).toEqual(strip(b));
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After past the key\'s rate, and not for other keys', async () => {
    const statuses: number[] = [];
    let limited: Answer | undefined;
    for (let i = 0; i < 5; i++) {
      const a = await get(check('listed@example.com'), keys.limited);
      statuses.push(a.status);
      if (a.status === 429) limited ??= a;
    }
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
    expect(limited?.code).toBe('OPTOUT_ERR_RATE_LIMITED');
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await get(check('listed@example.com'), keys.check)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await get(check('listed@example.com'), keys.limited)).status).toBe(200);
  });
});
