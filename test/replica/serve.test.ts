/**
 * API replicas serving one PostgreSQL database: writes through one are seen by another at once
 * with `minSeq` and without it after the staleness bound; revoked keys are refused by every
 * replica; a replica cut off from its feed answers 503; due syncs run on one replica; imports
 * run where they were uploaded. Real servers (fastify, in-process), a real database, real
 * LevelDB views in temporary folders.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openReplica, type OpenedReplica, type ReplicaOptions } from '../../src/replica/open-replica.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { addSync, listSyncs } from '../../src/sync/syncs.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { startFileServer, type TestServer } from '../fetch/http-server.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';
import { callReplica } from './replica-call.js';

const pool = createInlinePool();
afterAll(() => pool.destroy());

interface Replica {
  app: OptoutServer;
  store: OpenedReplica;
  /**
   * A request; a 503 OPTOUT_ERR_STALE (a replica whose last proof of freshness lapsed on a busy
   * machine: "ask again") is asked again a bounded number of times, unless `stale` says the test
   * wants to see it.
   */
  call(method: string, url: string, key: string, body?: unknown, stale?: 'keep'): Promise<{ status: number; json: Record<string, unknown>; seq: string | undefined }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

await withPgDatabase('API replicas', (url) => {
  const cleanups: Array<() => Promise<void>> = [];
  let admin: string;

  async function replica(options: ReplicaOptions = {}, syncs: false | { tickMs: number } = false): Promise<Replica> {
    const store = await openReplica(url, await tempDir('optout-replica-'), { pollMs: 20, ...options });
    const app = createServer({ store, imports: { pool, relayWaitMs: 1000 }, syncs, allowPrivateUrls: true });
    cleanups.push(async () => {
      await app.close();
      await store.close();
    });
    await store.caughtUp;
    await app.ready();
    return {
      app,
      store,
      call: (method, path, key, body, stale) => callReplica(app, method, path, key, body, stale),
    };
  }

  /** Uploads a list through `r` without `yes`, and resolves once its job waits for a confirmation. */
  async function uploadWaiting(r: Replica, csv: string): Promise<{ id: string }> {
    const upload = await r.app.inject({
      method: 'POST', url: '/v1/imports', headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/csv' }, payload: csv,
    });
    const { id } = JSON.parse(upload.body) as { id: string };
    let job = await r.call('GET', `/v1/imports/${id}`, admin);
    for (let i = 0; i < 400 && job.json['state'] !== 'awaiting_confirmation'; i++) {
      await sleep(25);
      job = await r.call('GET', `/v1/imports/${id}`, admin);
    }
    expect(job.json['state']).toBe('awaiting_confirmation');
    return { id };
  }

  beforeEach(async () => {
    await resetDatabase(url);
    await migrate(url);
    const ledger = await PgLedger.open(url);
    try {
      admin = (await createKey(ledger, { scope: 'admin' })).key;
    } finally {
      await ledger.close();
    }
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await removeTempDirs();
  });

  it('an opt-out written through one replica is not eligible on another with minSeq, at once', async () => {
    const a = await replica();
    // Told of changes only when a check asks for a position it lacks: it would answer from
    // before the write for a minute, within its bound, without minSeq.
    const b = await replica({ notify: false, pollMs: 60_000, maxStalenessMs: 120_000 });
    const put = await a.call('PUT', '/v1/suppressions/late%40example.com', admin);
    expect(put.status).toBe(201);
    expect(put.seq).toMatch(/^[1-9][0-9]*$/);
    // The writing replica holds its own write before it answers.
    expect((await a.call('GET', '/v1/eligibility?email=late%40example.com', admin)).json).toMatchObject({ eligible: false, reason: 'suppressed' });

    expect((await b.call('GET', '/v1/eligibility?email=late%40example.com', admin)).json).toMatchObject({ eligible: true });
    const got = await b.call('GET', `/v1/eligibility?email=late%40example.com&minSeq=${put.seq}`, admin);
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ eligible: false, reason: 'suppressed' });

    const removed = await a.call('DELETE', '/v1/suppressions/late%40example.com?why=test', admin);
    expect(Number(removed.seq)).toBeGreaterThan(Number(put.seq));
    const batch = await b.call('POST', '/v1/eligibility', admin, { emails: ['late@example.com', 'x@example.com'], minSeq: Number(removed.seq) });
    expect(batch.json['results']).toMatchObject([{ eligible: true }, { eligible: true }]);
  });

  it('a restarted replica loads its key index\'s snapshot before it catches up, and the changes it then follows reach the index', async () => {
    const dir = await tempDir('optout-replica-');
    const start = async (): Promise<Replica & { stop(): Promise<void> }> => {
      const store = await openReplica(url, dir, { pollMs: 20, keyIndex: true });
      const app = createServer({ store, imports: { pool, relayWaitMs: 1000 }, allowPrivateUrls: true });
      await store.caughtUp;
      await app.ready();
      let stopped = false;
      const stop = async (): Promise<void> => {
        if (stopped) return;
        stopped = true;
        await app.close();
        await store.close();
      };
      cleanups.push(stop);
      return { app, store, stop, call: (method, path, key, body, stale) => callReplica(app, method, path, key, body, stale) };
    };
    const other = await replica();
    const first = await start();
    for (const email of ['kept@example.com', 'gone@example.com']) expect((await first.call('PUT', `/v1/suppressions/${encodeURIComponent(email)}`, admin)).status).toBe(201);
    expect(await first.store.store.indexKeys()).toBe(true);
    expect(first.store.store.keyIndexSource).toBe('scan');
    // A clean stop saves the index; the database moves on while this replica is down.
    await first.stop();
    expect((await other.call('PUT', '/v1/suppressions/new%40example.com', admin)).status).toBe(201);
    expect((await other.call('DELETE', '/v1/suppressions/gone%40example.com?why=test', admin)).status).toBe(200);

    const again = await start();
    expect(await again.store.store.indexKeys()).toBe(true);
    expect(again.store.store.keyIndexSource).toBe('snapshot');
    const eligible = async (email: string): Promise<unknown> => (await again.call('GET', `/v1/eligibility?email=${encodeURIComponent(email)}`, admin)).json['eligible'];
    expect(await eligible('kept@example.com')).toBe(false);
    expect(await eligible('new@example.com')).toBe(false);
    expect(await eligible('gone@example.com')).toBe(true);
    expect(await eligible('never@example.com')).toBe(true);
  });

  it('answers 503 OPTOUT_ERR_STALE for a position it cannot reach in time', async () => {
    const a = await replica();
    const head = Number((await a.call('PUT', '/v1/suppressions/a%40example.com', admin)).seq);
    const ahead = await a.call('GET', `/v1/eligibility?email=a%40example.com&minSeq=${head + 1000}`, admin, undefined, 'keep');
    expect(ahead).toMatchObject({ status: 503, json: { code: 'OPTOUT_ERR_STALE' } });
    const batch = await a.call('POST', '/v1/eligibility', admin, { emails: ['a@example.com'], minSeq: head + 1000 }, 'keep');
    expect(batch).toMatchObject({ status: 503, json: { code: 'OPTOUT_ERR_STALE' } });
    expect(batch.json['results']).toBeUndefined();
    for (const bad of ['-1', '1.5', 'x', '1e3']) {
      expect((await a.call('GET', `/v1/eligibility?email=a%40example.com&minSeq=${bad}`, admin)).status).toBe(400);
    }
    expect((await a.call('POST', '/v1/eligibility', admin, { emails: ['a@example.com'], minSeq: '3' })).status).toBe(400);
  });

  it('an opt-out is seen by another replica without minSeq once its staleness bound has passed', async () => {
    const a = await replica();
    const b = await replica({ maxStalenessMs: 300 });
    const addresses = Array.from({ length: 6 }, (_, i) => `bound${i}@example.com`);
    for (const email of addresses) {
      const written = Date.now();
      expect((await a.call('PUT', `/v1/suppressions/${encodeURIComponent(email)}`, admin)).status).toBe(201);
      // The guarantee: acknowledged at t, seen by every replica that answers after t + bound.
      await sleep(Math.max(0, written + 300 - Date.now()) + 1);
      const got = await b.call('GET', `/v1/eligibility?email=${encodeURIComponent(email)}`, admin, undefined, 'keep');
      expect(got.status === 503 ? got.json['code'] : got.json['eligible']).toBe(got.status === 503 ? 'OPTOUT_ERR_STALE' : false);
    }
  });

  it('a key revoked through one replica is refused by every replica, and new keys reach them', async () => {
    const a = await replica({ maxStalenessMs: 300 });
    const b = await replica({ maxStalenessMs: 300 });
    const made = await a.call('POST', '/v1/keys', admin, { scope: 'check' });
    expect(made.status).toBe(201);
    const key = made.json['key'] as string;
    const created = Date.now();
    // Known to the writing replica once its creation is answered, and to every replica after the bound.
    expect((await a.call('GET', '/v1/eligibility?email=k%40example.com', key)).status).toBe(200);
    await sleep(Math.max(0, created + 300 - Date.now()) + 1);
    // Used (and cached) on both.
    expect((await a.call('GET', '/v1/eligibility?email=k%40example.com', key)).status).toBe(200);
    expect((await b.call('GET', '/v1/eligibility?email=k%40example.com', key)).status).toBe(200);

    const revoked = await a.call('DELETE', `/v1/keys/${made.json['id'] as string}`, admin);
    expect(revoked.status).toBe(200);
    expect(revoked.seq).toMatch(/^[0-9]+$/);
    const at = Date.now();
    expect((await a.call('GET', '/v1/eligibility?email=k%40example.com', key)).status).toBe(401);
    await sleep(Math.max(0, at + 300 - Date.now()) + 1);
    const other = await b.call('GET', '/v1/eligibility?email=k%40example.com', key, undefined, 'keep');
    expect([401, 503]).toContain(other.status);
    expect((await b.call('GET', '/v1/eligibility?email=k%40example.com', key)).status).toBe(401);
  });

  it('fails closed once its view stops following: checks, keyed routes and /readyz answer 503 OPTOUT_ERR_STALE', async () => {
    const a = await replica({ maxStalenessMs: 1000 });
    expect((await a.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const metric = async (name: string): Promise<number> => {
      const text = (await a.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${admin}` } })).body;
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    expect(await metric('optout_replica_feed_position')).toBe(a.store.replica.seq);
    expect(await metric('optout_replica_proof_age_seconds')).toBeLessThanOrEqual(1);
    await a.store.follower.stop();
    await sleep(1100);
    const check = await a.call('GET', '/v1/eligibility?email=a%40example.com', admin, undefined, 'keep');
    expect(check).toMatchObject({ status: 503, json: { code: 'OPTOUT_ERR_STALE' } });
    // /metrics needs an admin key, refused while stale: the age is read from the library.
    expect(Date.now() - (a.store.replica.provenAt as number)).toBeGreaterThan(1000);
    expect((await a.call('GET', '/v1/jobs', admin, undefined, 'keep')).json).toMatchObject({ code: 'OPTOUT_ERR_STALE' });
    const ready = await a.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({ code: 'OPTOUT_ERR_STALE' });
    // The library refuses the same way.
    await expect(a.store.check({ email: 'a@example.com' })).rejects.toMatchObject({ code: 'OPTOUT_ERR_STALE' });
  });

  it('runs an uploaded import where it was received; any replica then sees it at the job\'s position', async () => {
    const a = await replica();
    const b = await replica({ notify: false, pollMs: 60_000, maxStalenessMs: 120_000 });
    const upload = await a.app.inject({
      method: 'POST', url: '/v1/imports?yes=true', headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/csv' },
      payload: 'email\nimp1@example.com\nimp2@example.com\nbad\n',
    });
    expect(upload.statusCode).toBe(202);
    const { id } = JSON.parse(upload.body) as { id: string };
    let job = await a.call('GET', `/v1/imports/${id}`, admin);
    for (let i = 0; i < 400 && job.json['state'] !== 'completed' && job.json['state'] !== 'failed'; i++) {
      await sleep(25);
      job = await a.call('GET', `/v1/imports/${id}`, admin);
    }
    expect(job.json).toMatchObject({ state: 'completed', counts: { added: 2, invalid: 1 } });
    expect(job.seq).toMatch(/^[0-9]+$/);
    // Any replica reads the job from the database.
    expect((await b.call('GET', `/v1/imports/${id}`, admin)).json).toMatchObject({ state: 'completed' });
    const seen = await b.call('POST', '/v1/eligibility', admin, { emails: ['imp1@example.com', 'imp2@example.com'], minSeq: Number(job.seq) });
    expect(seen.json['results']).toMatchObject([{ eligible: false }, { eligible: false }]);

    // Rolled back through the other replica: its position says when the entries are gone.
    const rolled = await b.call('POST', `/v1/imports/${id}/rollback`, admin);
    expect(rolled.status).toBe(200);
    const after = await a.call('POST', '/v1/eligibility', admin, { emails: ['imp1@example.com'], minSeq: Number(rolled.seq) });
    expect(after.json['results']).toMatchObject([{ eligible: true }]);
  });

  it('a waiting import may be confirmed through any replica: the one that holds its upload takes the confirmation', async () => {
    const a = await replica();
    const b = await replica();
    const { id } = await uploadWaiting(a, 'email\nw1@example.com\nw2@example.com\n');
    let job = await a.call('GET', `/v1/imports/${id}`, admin);
    // A wrong count is refused where it arrives, and the job keeps waiting.
    const wrong = await b.call('POST', `/v1/imports/${id}/confirm`, admin, { count: 3 });
    expect(wrong).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_NOT_CONFIRMED' } });
    expect((await a.call('GET', `/v1/imports/${id}`, admin)).json['state']).toBe('awaiting_confirmation');

    const confirmed = await b.call('POST', `/v1/imports/${id}/confirm`, admin, { count: 2 });
    expect(confirmed.status).toBe(200);
    expect(['importing', 'completed']).toContain(confirmed.json['state']);
    for (let i = 0; i < 400 && job.json['state'] !== 'completed'; i++) {
      await sleep(25);
      job = await b.call('GET', `/v1/imports/${id}`, admin);
    }
    expect(job.json).toMatchObject({ state: 'completed', counts: { added: 2 } });
    const seen = await b.call('POST', '/v1/eligibility', admin, { emails: ['w1@example.com', 'w2@example.com'], minSeq: Number(job.seq) });
    expect(seen.json['results']).toMatchObject([{ eligible: false }, { eligible: false }]);
  });

  it('a replica that starts leaves the jobs of others alone, and a confirmation nobody takes is said so', async () => {
    const a = await replica();
    const { id } = await uploadWaiting(a, 'email\nz1@example.com\n');
    // Its server stops (the job stays waiting in the database, its upload in that server's folder).
    await a.app.close();
    const c = await replica();
    expect((await c.call('GET', `/v1/imports/${id}`, admin)).json['state']).toBe('awaiting_confirmation');
    const nobody = await c.call('POST', `/v1/imports/${id}/confirm`, admin, { count: 1 });
    expect(nobody).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_JOB_STATE' } });
    expect(nobody.json['message']).toContain('has not taken the confirmation within 1 s');
  });

  it('refuses a folder as the database, a staleness bound that is no whole number of ms, and a database that does not exist', async () => {
    const dir = await tempDir('optout-replica-');
    for (const bound of [0, 1.5, -1]) {
      await expect(openReplica(url, dir, { maxStalenessMs: bound })).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    }
    await expect(openReplica(await tempDir('optout-folder-'), dir)).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    await expect(openReplica(url.replace(/\/[^/?]+(\?|$)/, '/optout_no_such_database$1'), dir)).rejects.toMatchObject({ code: 'OPTOUT_ERR_STORE' });
  });

  describe('syncs', () => {
    const servers: TestServer[] = [];
    afterEach(async () => {
      for (const s of servers.splice(0)) await s.close();
    });

    it('a due sync runs on one replica of several', async () => {
      const files = await startFileServer({ body: 'email\nsynced@example.com\n' });
      servers.push(files);
      const ledger = await PgLedger.open(url);
      cleanups.push(() => ledger.close());
      await addSync(ledger, { url: `${files.origin}/list.csv`, every: '1h', allowPrivate: true });
      const replicas = await Promise.all([0, 1, 2].map(() => replica({}, { tickMs: 20 })));
      let sync = (await listSyncs(ledger))[0];
      for (let i = 0; i < 400 && sync?.lastStatus !== 'fetched'; i++) {
        await sleep(25);
        sync = (await listSyncs(ledger))[0];
      }
      expect(sync?.lastStatus).toBe('fetched');
      // Several more ticks of every scheduler: none runs it again.
      await sleep(200);
      expect(files.requests).toHaveLength(1);
      expect((await ledger.listImports()).filter((j) => j.origin?.via === 'sync')).toHaveLength(1);
      const seen = await replicas[2]!.call('GET', `/v1/eligibility?email=synced%40example.com&minSeq=${await ledger.head()}`, admin);
      expect(seen.json).toMatchObject({ eligible: false });
    });
  });
});
