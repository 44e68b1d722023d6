/**
 * Syncs: a local file server with ETags, a real store, the import pipeline (in the inline
 * pool), the server's scheduler and the JSON URL import. Only 127.0.0.1, with allowPrivate.
 * The CLI's sync commands are in syncs.e2e.test.ts.
 */
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createServer } from '../../src/api/server.js';
import { LevelStore, openStore, createKey, lookupSuppressions } from '../../src/index.js';
import { ImportJobs } from '../../src/manage/import-jobs.js';
import { addSync, runSync, listSyncs, getSync } from '../../src/sync/syncs.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { listenOnLoopback, removeTempDirs, tempDir } from '../helpers.js';
import { startFileServer, type TestServer } from '../fetch/http-server.js';

const pool = createInlinePool();
const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(async () => {
  await pool.destroy();
  await removeTempDirs();
});

/** Serves `file.body` at /list.csv of a server kept in `servers`; see {@link startFileServer}. */
async function fileServer(file: { body: string }): Promise<TestServer> {
  const server = await startFileServer(file);
  servers.push(server);
  return server;
}

async function suppressed(store: Awaited<ReturnType<typeof LevelStore.open>>, email: string): Promise<boolean> {
  return (await lookupSuppressions(store, email)).length > 0;
}

describe('sync from a URL', () => {
  it('imports on 200, does nothing on 304, imports the changed file, and never removes an address', async () => {
    const file = { body: 'id,email\n1,a@sync.test\n2,b@sync.test\n3,bad\n' };
    const server = await fileServer(file);
    const store = await LevelStore.open(join(await tempDir('optout-sync-'), 'db'));
    const jobs = new ImportJobs(store, { pool });
    try {
      const rec = await addSync(store, { url: `${server.origin}/list.csv?token=secret`, unit: 'emea', reason: 'bounced', allowPrivate: true, actor: 'cli' });
      expect(rec.label).not.toContain('secret');

      const first = await runSync(store, jobs, rec.id);
      expect(first).toMatchObject({ status: 'fetched', job: { state: 'completed', counts: { rows: 3, invalid: 1, added: 2 }, origin: { via: 'sync', syncId: rec.id } } });
      expect(await suppressed(store, 'a@sync.test')).toBe(true);
      const found = await lookupSuppressions(store, 'b@sync.test');
      expect(found).toEqual([expect.objectContaining({ scope: 'emea', reason: 'bounced' })]);

      const jobsBefore = (await store.listImports()).length;
      const second = await runSync(store, jobs, rec.id);
      expect(second).toEqual({ sync: rec.id, status: 'not-modified', job: null, error: null });
      expect(server.requests.at(-1)?.headers['if-none-match']).toBe((await getSync(store, rec.id)).etag);
      expect((await store.listImports()).length).toBe(jobsBefore);

      // b leaves the file, c arrives: b stays suppressed (additive), c is added.
      file.body = 'id,email\n1,a@sync.test\n4,c@sync.test\n';
      const third = await runSync(store, jobs, rec.id);
      expect(third).toMatchObject({ status: 'fetched', job: { counts: { added: 1, alreadySuppressed: 1 } } });
      expect(await suppressed(store, 'b@sync.test')).toBe(true);
      expect(await suppressed(store, 'c@sync.test')).toBe(true);
      expect((await getSync(store, rec.id))).toMatchObject({ lastStatus: 'fetched', lastJobId: third.job?.id });
    } finally {
      await jobs.close();
      await store.close();
    }
  });

  it('refuses a private URL when the sync is added, unless allowed; a failed fetch keeps no validators', async () => {
    const server = await fileServer({ body: 'email\nx@sync.test\n' });
    const store = await LevelStore.open(join(await tempDir('optout-sync-'), 'db'));
    const jobs = new ImportJobs(store, { pool });
    try {
      await expect(addSync(store, { url: `${server.origin}/list.csv` })).rejects.toMatchObject({ code: 'OPTOUT_ERR_URL_REFUSED' });
      await expect(addSync(store, { url: 'http://169.254.169.254/latest/meta-data/' })).rejects.toMatchObject({ code: 'OPTOUT_ERR_URL_REFUSED' });
      await expect(addSync(store, { url: `${server.origin}/x`, every: '5 minutes', allowPrivate: true })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
      expect(await listSyncs(store)).toEqual([]);
      expect(server.connections()).toBe(0);

      const missing = await addSync(store, { url: `${server.origin.replace(/:\d+$/, ':1')}/gone.csv`, allowPrivate: true });
      const r = await runSync(store, jobs, missing.id);
      expect(r.status).toBe('failed');
      expect(r.error?.code).toMatch(/^OPTOUT_ERR_FETCH/);
      expect(await getSync(store, missing.id)).toMatchObject({ lastStatus: 'failed', etag: null });
    } finally {
      await jobs.close();
      await store.close();
    }
  });

  it('runs due syncs from the server, and imports a JSON { url } request', async () => {
    const file = { body: 'email\nsched@sync.test\n' };
    const files = await fileServer(file);
    const dir = await tempDir('optout-sync-');
    const store = await openStore(join(dir, 'db'));
    const admin = (await createKey(store.store, { scope: 'admin' })).key;
    await addSync(store.store, { url: `${files.origin}/list.csv`, every: '1h', allowPrivate: true });
    const app = createServer({ store, imports: { pool }, syncs: { tickMs: 50 }, allowPrivateUrls: true });
    try {
      const base = await listenOnLoopback(app);
      let rec = (await listSyncs(store.store))[0];
      for (let i = 0; i < 200 && rec?.lastStatus !== 'fetched'; i++) {
        await new Promise((r) => setTimeout(r, 25));
        rec = (await listSyncs(store.store))[0];
      }
      expect(rec).toMatchObject({ lastStatus: 'fetched' });
      expect(Date.parse(rec?.nextRunAt ?? '')).toBeGreaterThan(Date.now() + 50 * 60_000);
      expect((await store.check({ email: 'sched@sync.test' })).eligible).toBe(false);

      file.body = 'email\nbyurl@sync.test\n';
      const auth = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
      const posted = await request(`${base}/v1/imports`, { method: 'POST', headers: auth, body: JSON.stringify({ url: `${files.origin}/list.csv`, yes: true }) });
      expect(posted.statusCode).toBe(202);
      const { id } = await posted.body.json() as { id: string };
      let job: { state: string; origin: { url?: string } } = { state: '', origin: {} };
      for (let i = 0; i < 200; i++) {
        const res = await request(`${base}/v1/imports/${id}`, { headers: auth });
        job = await res.body.json() as typeof job;
        if (job.state === 'completed' || job.state === 'failed') break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(job).toMatchObject({ state: 'completed', origin: { url: `${files.origin}/list.csv` } });
      expect((await store.check({ email: 'byurl@sync.test' })).eligible).toBe(false);
      const bad = await request(`${base}/v1/imports`, { method: 'POST', headers: auth, body: JSON.stringify({ url: 'ftp://example.com/x.csv' }) });
      expect(bad.statusCode).toBe(400);
      expect(await bad.body.json()).toMatchObject({ code: 'OPTOUT_ERR_URL_REFUSED' });
    } finally {
      await app.close();
      await store.close();
    }
  });
});
