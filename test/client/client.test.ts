/**
 * The client against a real server on 127.0.0.1 and a real store seeded by an import.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH, createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { CLIENT_MAX_BATCH, OptoutClient, OptoutClientError } from '../../src/client/client.js';
import { listenOnLoopback, removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

let store: OptoutStore;
let app: OptoutServer;
let base: string;
let key: string;
let client: OptoutClient;
let postBatches = 0;

beforeAll(async () => {
  const dir = await tempDir();
  const csv = join(dir, 'list.csv');
  await writeFile(csv, ['Email', 'acct@example.com', 'listed5000@example.com'].join('\n') + '\n');
  expect((await runImport({ source: { kind: 'file', path: csv }, db: join(dir, 'db'), confirm: { mode: 'yes' } })).added).toBe(2);
  store = await openStore(join(dir, 'db'));
  key = (await createKey(store.store, { scope: 'check' })).key;
  app = createServer({ store });
  app.addHook('onRequest', async (request) => {
    if (request.method === 'POST') postBatches++;
  });
  base = await listenOnLoopback(app);
  client = new OptoutClient({ url: base, key, connections: 4, timeoutMs: 10_000 });
});

afterAll(async () => {
  await client?.close();
  await app?.close();
  await store?.close();
  await removeTempDirs();
});

describe('OptoutClient', () => {
  it('uses the server batch limit', () => {
    expect(CLIENT_MAX_BATCH).toBe(MAX_BATCH);
  });

  it('checks a listed and an unlisted address', async () => {
    const listed = await client.check({ email: ' ACCT@example.com ' });
    expect(listed).toMatchObject({ address: 'acct@example.com', eligible: false, reason: 'suppressed' });
    expect(listed.suppression).toMatchObject({ scope: '*', source: 'list.csv' });
    const fresh = await client.check({ email: 'fresh@example.com', unit: 'emea', type: 'sequence' });
    expect(fresh).toMatchObject({ address: 'fresh@example.com', eligible: true, reason: 'not_suppressed' });
  });

  it('keeps input order across batches larger than the server limit', async () => {
    const emails = Array.from({ length: 10_050 }, (_, i) => `listed${i}@example.com`);
    emails[10_020] = 'acct@example.com';
    emails[7] = 'not-an-email';
    const before = postBatches;
    const results = await client.checkMany(emails, { type: 'marketing' });
    expect(postBatches - before).toBe(2);
    expect(results).toHaveLength(10_050);
    expect(results[5000]).toMatchObject({ address: 'listed5000@example.com', reason: 'suppressed' });
    expect(results[10_020]).toMatchObject({ address: 'acct@example.com', reason: 'suppressed' });
    expect(results[7]).toMatchObject({ address: null, reason: 'invalid_address', eligible: false });
    const suppressed = results.flatMap((d, i) => (d.eligible ? [] : [i]));
    expect(suppressed).toEqual([7, 5000, 10_020]);
    results.forEach((d, i) => {
      if (i !== 7 && i !== 10_020) expect(d.address).toBe(`listed${i}@example.com`);
    });
  });

  it('answers an empty list without a request', async () => {
    const before = postBatches;
    expect(await client.checkMany([])).toEqual([]);
    expect(postBatches).toBe(before);
  });

  it('surfaces a wrong key as OptoutClientError 401 OPTOUT_ERR_UNAUTHORIZED', async () => {
    const wrong = new OptoutClient({ url: base, key: `${key.slice(0, -4)}AAAA` });
    try {
      const single = await wrong.check({ email: 'acct@example.com' }).catch((err: unknown) => err);
      expect(single).toBeInstanceOf(OptoutClientError);
      expect(single).toMatchObject({ status: 401, code: 'OPTOUT_ERR_UNAUTHORIZED' });
      const many = await wrong.checkMany(['acct@example.com']).catch((err: unknown) => err);
      expect(many).toBeInstanceOf(OptoutClientError);
      expect(many).toMatchObject({ status: 401, code: 'OPTOUT_ERR_UNAUTHORIZED' });
    } finally {
      await wrong.close();
    }
  });

  it('surfaces a server error code with its status', async () => {
    const err = await client.check({ email: 'a@example.com', type: 'bulk' as never }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: 'OPTOUT_ERR_INVALID_OPTION' });
  });

  it('rejects calls after close()', async () => {
    const c = new OptoutClient({ url: base, key });
    expect((await c.check({ email: 'fresh@example.com' })).eligible).toBe(true);
    await c.close();
    await expect(c.check({ email: 'fresh@example.com' })).rejects.toThrow();
  });
});
