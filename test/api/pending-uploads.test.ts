/**
 * Uploads that wait for their confirmation are bounded: in time (a job not confirmed within its
 * time to live expires, its files deleted, and is never analysed again) and in bytes (an upload
 * that would take the files kept for unfinished jobs past the quota is refused with 507 before
 * it is stored). Requests through `app.inject()` (a loopback socket for a chunked body), a real
 * store, imports in the inline pool.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { ImportJobs } from '../../src/manage/import-jobs.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import type { ChunkPool } from '../../src/workers/pool.js';
import { listenOnLoopback, removeTempDirs, tempDir } from '../helpers.js';
import { injectCaller } from '../inline.js';
import { firstStatus, lastJsonBody, rawExchange, writeChunked } from './raw-http.js';

/** Import jobs on a new store, with a counting pool, closed after the test. */
async function jobsOnNewStore(): Promise<{ db: string; jobs: ImportJobs; pool: ChunkPool & { chunks: number } }> {
  const db = join(await tempDir('optout-api-pending-'), 'db');
  const store = await openStore(db, { create: true });
  const pool = countingPool();
  open.push({ store, pool });
  return { db, jobs: new ImportJobs(store.store, { pool }), pool };
}

/** An inline pool that counts the chunks it parses: none means nothing was analysed. */
function countingPool(): ChunkPool & { chunks: number } {
  const pool = createInlinePool();
  const counting = {
    chunks: 0,
    threads: pool.threads,
    run: (task: Parameters<ChunkPool['run']>[0]) => {
      counting.chunks++;
      return pool.run(task);
    },
    dedupBucket: (task: Parameters<ChunkPool['dedupBucket']>[0]) => pool.dedupBucket(task),
    scrub: (task: Parameters<ChunkPool['scrub']>[0]) => pool.scrub(task),
    destroy: () => pool.destroy(),
  };
  return counting;
}

interface Served {
  db: string;
  store: OptoutStore;
  app: OptoutServer;
  admin: string;
  pool: ChunkPool & { chunks: number };
}

const open: Array<{ app?: OptoutServer; store?: OptoutStore; pool?: ChunkPool }> = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.app?.close();
    await o.store?.close();
    await o.pool?.destroy();
  }
  await removeTempDirs();
});

async function serve(imports: { pendingTtlMs?: number; maxPendingBytes?: number }, db?: string): Promise<Served> {
  const dir = db ?? join(await tempDir('optout-api-pending-'), 'db');
  const store = await openStore(dir, { create: true });
  const pool = countingPool();
  const app = createServer({ store, imports: { pool, ...imports } });
  open.push({ app, store, pool });
  await app.ready();
  const admin = (await createKey(store.store, { scope: 'admin' })).key;
  return { db: dir, store, app, admin, pool };
}

/** Polls a job until its state is not one of `states` (bounded). */
async function waitWhile(s: Served, id: string, states: string[]): Promise<Record<string, unknown>> {
  const call = injectCaller(() => s.app);
  for (let i = 0; i < 400; i++) {
    const job = (await call('GET', `/v1/imports/${id}`, s.admin)).json;
    if (!states.includes(job['state'] as string)) return job;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`job ${id} stayed in ${states.join('/')}`);
}

const csv = (tag: string, n: number): string =>
  `email\n${Array.from({ length: n }, (_, i) => `${tag}${i}@pending.test`).join('\n')}\nnot-an-address\n`;

const uploadPath = (db: string, id: string): string => join(db, 'uploads', `${id}.csv`);

describe('a job waiting past its time to live', () => {
  it('expires: its upload and rejects are deleted, it is listed expired, and a confirmation answers 409', async () => {
    const s = await serve({ pendingTtlMs: 2000 });
    const call = injectCaller(() => s.app);
    const posted = await call('POST', '/v1/imports', s.admin, csv('ttl', 20), { 'content-type': 'text/csv' });
    expect(posted.status).toBe(202);
    const id = posted.json['id'] as string;
    expect(await waitWhile(s, id, ['analyzing'])).toMatchObject({ state: 'awaiting_confirmation', counts: { unique: 20 } });
    expect(existsSync(uploadPath(s.db, id))).toBe(true);
    expect(existsSync(join(s.db, 'uploads', `${id}.rejects.csv`))).toBe(true);

    const expired = await waitWhile(s, id, ['awaiting_confirmation']);
    expect(expired).toMatchObject({ state: 'expired', finishedAt: expect.any(String), counts: { unique: 20 } });
    expect(existsSync(uploadPath(s.db, id))).toBe(false);
    expect(existsSync(join(s.db, 'uploads', `${id}.rejects.csv`))).toBe(false);
    // The analysis spool (the list's keys), in the run's temporary folder, is gone with it.
    const left = (sub: string): string[] => (existsSync(join(s.db, sub)) ? readdirSync(join(s.db, sub)) : []);
    for (let i = 0; i < 200 && left('tmp').length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(left('tmp')).toEqual([]);
    expect(left('spool')).toEqual([]);

    const confirm = await call('POST', `/v1/imports/${id}/confirm`, s.admin, { count: 20 });
    expect(confirm.status).toBe(409);
    expect(confirm.code).toBe('OPTOUT_ERR_JOB_STATE');
    expect((await call('POST', `/v1/imports/${id}/rollback`, s.admin)).code).toBe('OPTOUT_ERR_JOB_STATE');
    expect((await call('GET', '/v1/imports', s.admin)).json['imports']).toEqual([expect.objectContaining({ id, state: 'expired' })]);
    expect((await call('GET', '/v1/jobs', s.admin)).json['jobs']).toEqual([expect.objectContaining({ id, state: 'expired' })]);
    expect((await call('GET', '/v1/eligibility?email=ttl1@pending.test', s.admin)).json['eligible']).toBe(true);

    // A restart on the same store: the expired job is not taken up, nor analysed again.
    await s.app.close();
    await s.store.close();
    const store = await openStore(s.db);
    const pool = countingPool();
    open.push({ store, pool });
    const jobs = new ImportJobs(store.store, { pool, pendingTtlMs: 2000 });
    expect(await jobs.resumeAll()).toEqual([]);
    await jobs.close();
    expect(pool.chunks).toBe(0);
    expect((await store.store.getJob(id))?.state).toBe('expired');
  });

  it('found at start is expired without being analysed; one still within its time is taken up again', async () => {
    const s = await serve({});
    const call = injectCaller(() => s.app);
    const old = (await call('POST', '/v1/imports', s.admin, csv('old', 5), { 'content-type': 'text/csv' })).json['id'] as string;
    expect(await waitWhile(s, old, ['analyzing'])).toMatchObject({ state: 'awaiting_confirmation' });
    await s.app.close();
    await s.store.close();

    // Each job's time counts from its creation: a time to live shorter than its age has passed.
    await new Promise((r) => setTimeout(r, 20));
    const store = await openStore(s.db);
    const pool = countingPool();
    open.push({ store, pool });
    const jobs = new ImportJobs(store.store, { pool, pendingTtlMs: 10 });
    expect(jobs.pendingBytes).toBeGreaterThan(0);
    expect(await jobs.resumeAll()).toEqual([]);
    expect(pool.chunks).toBe(0);
    expect(await jobs.get(old)).toMatchObject({ state: 'expired' });
    expect(existsSync(uploadPath(s.db, old))).toBe(false);
    expect(jobs.pendingBytes).toBe(0);
    await jobs.close();
    await store.close();

    // The same job with a longer time to live is analysed again and waits again.
    const fresh = await serve({}, s.db);
    const posted = await injectCaller(() => fresh.app)('POST', '/v1/imports', fresh.admin, csv('new', 3), { 'content-type': 'text/csv' });
    expect(posted.status, posted.text).toBe(202);
    const again = posted.json['id'] as string;
    await fresh.app.close();
    await fresh.store.close();
    const reopened = await openStore(s.db);
    const pool2 = countingPool();
    open.push({ store: reopened, pool: pool2 });
    const jobs2 = new ImportJobs(reopened.store, { pool: pool2 });
    expect(await jobs2.resumeAll()).toEqual([again]);
    await jobs2.close();
  });
});

describe('the pending quota', () => {
  it('refuses an upload that would pass it with 507 before storing it, and accepts one that fits', async () => {
    const first = csv('a', 30);
    const s = await serve({ maxPendingBytes: Buffer.byteLength(first) + 400 });
    const call = injectCaller(() => s.app);
    const a = await call('POST', '/v1/imports', s.admin, first, { 'content-type': 'text/csv' });
    expect(a.status).toBe(202);
    await waitWhile(s, a.json['id'] as string, ['analyzing']);

    // Declared length: refused up front.
    const big = await call('POST', '/v1/imports', s.admin, csv('b', 30), { 'content-type': 'text/csv' });
    expect(big.status, big.text).toBe(507);
    expect(big.code).toBe('OPTOUT_ERR_PENDING_QUOTA');

    // Chunked: refused once the count crosses the quota.
    const x = rawExchange(Number(new URL(await listenOnLoopback(s.app)).port),
      `POST /v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${s.admin}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n`);
    void writeChunked(x.socket, 64 * 1024, 256);
    const text = await x.closed;
    expect(firstStatus(text)).toBe(507);
    expect(lastJsonBody(text)['code']).toBe('OPTOUT_ERR_PENDING_QUOTA');

    // Nothing of either is left, and no job was made for them.
    expect(readdirSync(join(s.db, 'uploads')).filter((n) => !n.endsWith('.rejects.csv'))).toEqual([`${a.json['id'] as string}.csv`]);
    expect((await call('GET', '/v1/imports', s.admin)).json['imports']).toHaveLength(1);

    const small = await call('POST', '/v1/imports', s.admin, 'email\nc@pending.test\n', { 'content-type': 'text/csv' });
    expect(small.status, small.text).toBe(202);
  });

  it('counts an upload only until its job ends', async () => {
    const body = csv('d', 30);
    const s = await serve({ maxPendingBytes: Buffer.byteLength(body) + 10 });
    const call = injectCaller(() => s.app);
    const first = await call('POST', '/v1/imports?yes=true', s.admin, body, { 'content-type': 'text/csv' });
    expect(await waitWhile(s, first.json['id'] as string, ['importing'])).toMatchObject({ state: 'completed' });
    expect((await call('POST', '/v1/imports?yes=true', s.admin, body, { 'content-type': 'text/csv' })).status).toBe(202);
  });
});

describe('the cleanup at start', () => {
  it('spares an upload that this server is receiving', async () => {
    const { db, jobs } = await jobsOnNewStore();
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = (): void => undefined;
    const arriving = new Promise<void>((resolve) => {
      started = resolve;
    });
    async function* body(): AsyncGenerator<Buffer> {
      yield Buffer.from('email\nkept@pending.test\n');
      started();
      await held;
    }
    const upload = jobs.createFromUpload(body(), {}, { via: 'http', actor: 'key:test' });
    await arriving;
    const incoming = (): string[] => readdirSync(join(db, 'uploads')).filter((n) => n.startsWith('incoming-'));
    for (let i = 0; i < 400 && incoming().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(incoming()).toHaveLength(1);
    await jobs.resumeAll();
    release();
    const job = await upload;
    expect(existsSync(uploadPath(db, job.id))).toBe(true);
    for (let i = 0; i < 400 && (await jobs.get(job.id))?.state === 'analyzing'; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await jobs.get(job.id)).toMatchObject({ state: 'awaiting_confirmation', counts: { unique: 1 } });
    await jobs.close();
  });

  it('leaves the jobs this server started meanwhile to the server: none is analysed twice', async () => {
    const { jobs, pool } = await jobsOnNewStore();
    // As the server does: the cleanup at start is not awaited before the first upload.
    const resuming = jobs.resumeAll();
    const job = await jobs.createFromUpload(Readable.from([Buffer.from(csv('mine', 3))]), {}, { via: 'http', actor: 'key:test' });
    expect(await resuming).toEqual([]);
    for (let i = 0; i < 400 && (await jobs.get(job.id))?.state === 'analyzing'; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await jobs.get(job.id)).toMatchObject({ state: 'awaiting_confirmation' });
    const analysed = pool.chunks;
    expect(analysed).toBeGreaterThan(0);
    // A cleanup that runs again finds this job live, with its file.
    expect(await jobs.resumeAll()).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(pool.chunks).toBe(analysed);
    expect(await jobs.get(job.id)).toMatchObject({ state: 'awaiting_confirmation', error: null });
    expect(await jobs.confirm(job.id, 3)).toMatchObject({ id: job.id });
    for (let i = 0; i < 400 && (await jobs.get(job.id))?.state !== 'completed'; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await jobs.get(job.id)).toMatchObject({ state: 'completed', counts: { added: 3 } });
    await jobs.close();
  });

  it('removes the upload of a job that ended before its file was removed, and stops counting it', async () => {
    const s = await serve({});
    const call = injectCaller(() => s.app);
    const posted = await call('POST', '/v1/imports?yes=true', s.admin, csv('ended', 5), { 'content-type': 'text/csv' });
    const id = posted.json['id'] as string;
    expect(await waitWhile(s, id, ['importing'])).toMatchObject({ state: 'completed' });
    await s.app.close();
    await s.store.close();
    // What a process killed between the job's end and the file's removal leaves.
    writeFileSync(uploadPath(s.db, id), csv('ended', 5));

    const store = await openStore(s.db);
    const pool = countingPool();
    open.push({ store, pool });
    const jobs = new ImportJobs(store.store, { pool });
    expect(jobs.pendingBytes).toBeGreaterThan(0);
    expect(await jobs.resumeAll()).toEqual([]);
    expect(existsSync(uploadPath(s.db, id))).toBe(false);
    expect(existsSync(join(s.db, 'uploads', `${id}.rejects.csv`))).toBe(true);
    expect(jobs.pendingBytes).toBe(0);
    await jobs.close();
  });
});
