/**
 * The request log: one JSON line per request with method, route, status, time and key id, and
 * never the address a check asks about, the query, a body or the key.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { closeServerAndStore, tempDir } from '../helpers.js';

let store: OptoutStore;
let app: OptoutServer;
let silent: OptoutServer;
let key: string;
let keyId: string;
const lines: string[] = [];
const silentLines: string[] = [];

beforeAll(async () => {
  const dir = await tempDir('optout-api-log-');
  store = await openStore(join(dir, 'db'));
  const created = await createKey(store.store, { scope: 'check' });
  key = created.key;
  keyId = created.record.id;
  app = createServer({ store, logger: { level: 'info', stream: { write: (l: string) => lines.push(l) } } });
  silent = createServer({ store, logger: { level: 'silent', stream: { write: (l: string) => silentLines.push(l) } } });
});

afterAll(async () => {
  await silent?.close();
  await closeServerAndStore(app, store);
});

const ADDRESS = 'secret.person@example.com';

describe('request log', () => {
  it('logs a check with method, route, status, time and key id, and no address or key', async () => {
    lines.length = 0;
    const url = `/v1/eligibility?email=${encodeURIComponent(ADDRESS)}`;
    expect((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(200);
    await app.inject({ method: 'POST', url: '/v1/eligibility', payload: { emails: [ADDRESS] }, headers: { authorization: `Bearer ${key}` } });
    await app.inject({ method: 'GET', url: `/v1/eligibility?email=${encodeURIComponent(ADDRESS)}`, headers: { authorization: `Bearer ${key}x` } });
    const text = lines.join('');
    expect(text).not.toContain('secret.person');
    expect(text).not.toContain(encodeURIComponent(ADDRESS));
    expect(text).not.toContain(key);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['msg'] === 'request');
    expect(entries).toHaveLength(3);
    expect(entries[0]).toMatchObject({ method: 'GET', route: '/v1/eligibility', status: 200, keyId, ms: expect.any(Number) });
    expect(entries[1]).toMatchObject({ method: 'POST', route: '/v1/eligibility', status: 200, keyId });
    expect(entries[2]).toMatchObject({ method: 'GET', status: 401, keyId: null });
  });

  it('logs nothing at level silent', async () => {
    await silent.inject({ method: 'GET', url: '/healthz' });
    expect(silentLines).toEqual([]);
  });
});
