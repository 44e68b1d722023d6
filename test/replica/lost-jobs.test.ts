/**
 * Import jobs of an API replica lost for good (its machine and folder gone): another replica
 * ends them once their holder has not been seen within the bound, exactly once among several;
 * the rollback then takes back what they committed; a holder that comes back late writes
 * nothing more for them; an operator may abandon one sooner, not one whose holder is alive
 * unless forced. Real servers (fastify, in-process), a real database, real LevelDB folders;
 * short bounds passed as options, and bounded polling.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import type { ImportJobsOptions } from '../../src/manage/import-jobs.js';
import { HOLDER_FILE } from '../../src/manage/job-holders.js';
import { openReplica, type OpenedReplica } from '../../src/replica/open-replica.js';
import type { AuditRecord } from '../../src/store/audit.js';
import type { JobRecord } from '../../src/store/jobs.js';
import { ACCOUNT_WIDE, type ChunkWriter, type Ledger } from '../../src/store/store.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { importFields } from '../store/ledger-writes.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';
import { callReplica, type ReplicaAnswer } from './replica-call.js';

const pool = createInlinePool();
afterAll(() => pool.destroy());

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Answer = ReplicaAnswer;

interface Replica {
  app: OptoutServer;
  store: OpenedReplica;
  dir: string;
  notices: string[];
  call(method: string, url: string, body?: unknown): Promise<Answer>;
  close(): Promise<void>;
}

/** Polls `read` until `done` holds, at most `tries` times; resolves the last value read. */
async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, tries = 400, everyMs = 25): Promise<T> {
  let v = await read();
  for (let i = 0; i < tries && !done(v); i++) {
    await sleep(everyMs);
    v = await read();
  }
  return v;
}

await withPgDatabase('lost replicas', (url) => {
  const open: Replica[] = [];
  let admin: string;

  async function replica(imports: ImportJobsOptions, wrap: (ledger: Ledger) => Ledger = (l) => l): Promise<Replica> {
    const dir = await tempDir('optout-replica-');
    const store = await openReplica(url, dir, { pollMs: 20 });
    const notices: string[] = [];
    const app = createServer({ store: { ...store, ledger: wrap(store.ledger) }, imports: { pool, relayWaitMs: 1000, onNotice: (m) => notices.push(m), ...imports }, syncs: false });
    await store.caughtUp;
    await app.ready();
    let closed = false;
    const r: Replica = {
      app, store, dir, notices,
      call: (method, path, body) => callReplica(app, method, path, admin, body),
      async close() {
        if (closed) return;
        closed = true;
        await app.close();
        await store.close();
      },
    };
    open.push(r);
    return r;
  }

  async function upload(r: Replica, csv: string, yes: boolean): Promise<string> {
    const res = await r.app.inject({
      method: 'POST', url: `/v1/imports${yes ? '?yes=true' : ''}`, headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/csv' }, payload: csv,
    });
    expect(res.statusCode).toBe(202);
    return (JSON.parse(res.body) as { id: string }).id;
  }

  const job = (r: Replica, id: string): Promise<Answer> => r.call('GET', `/v1/imports/${id}`);
  const inState = (r: Replica, id: string, states: readonly string[]): Promise<Answer> =>
    until(() => job(r, id), (a) => states.includes(a.json['state'] as string));

  async function withLedger<T>(fn: (ledger: PgLedger) => Promise<T>): Promise<T> {
    const ledger = await PgLedger.open(url);
    try {
      return await fn(ledger);
    } finally {
      await ledger.close();
    }
  }

  async function abandonRecords(id: string): Promise<AuditRecord[]> {
    return withLedger(async (ledger) => {
      const out: AuditRecord[] = [];
      for await (const a of ledger.auditRecords({ fromId: '0' })) if (a.action === 'abandon' && a.job === id) out.push(a);
      return out;
    });
  }

  /**
   * Stores job `id` as a server killed between its last chunk and its end leaves it: `importing`,
   * every chunk committed. Written in SQL: no process writes a completed job back to importing.
   */
  async function cutOffAfterItsChunks(id: string): Promise<void> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const { rows: [row] } = await c.query<{ record: JobRecord }>('SELECT record FROM jobs WHERE id = $1', [id]);
      const record: JobRecord = { ...(row as { record: JobRecord }).record, state: 'importing', finishedAt: null };
      await c.query(`UPDATE jobs SET state = 'importing', record = $2 WHERE id = $1`, [id, JSON.stringify(record)]);
    } finally {
      await c.end();
    }
  }

  beforeEach(async () => {
    await resetDatabase(url);
    await migrate(url);
    admin = await withLedger(async (ledger) => (await createKey(ledger, { scope: 'admin' })).key);
  });
  afterEach(async () => {
    for (const r of open.splice(0).reverse()) await r.close();
    await removeTempDirs();
  });

  it('ends the jobs of a lost replica once, among three live ones; the rollback takes its chunks back', async () => {
    const a = await replica({ heartbeatMs: 50 });
    const b = await replica({ heartbeatMs: 50 });
    const waiting = await upload(a, 'email\nw1@example.com\nw2@example.com\n', false);
    const shown = await inState(a, waiting, ['awaiting_confirmation']);
    // The job names its server by the id kept in that server's folder, seen just now.
    const aId = readFileSync(join(a.dir, HOLDER_FILE), 'utf8').trim();
    const bId = readFileSync(join(b.dir, HOLDER_FILE), 'utf8').trim();
    expect(shown.json).toMatchObject({ state: 'awaiting_confirmation', holder: { id: aId, lost: false } });
    expect(typeof (shown.json['holder'] as { seenAt: unknown }).seenAt).toBe('string');

    const emails = Array.from({ length: 50 }, (_, i) => `lost${i}@example.com`);
    const importing = await upload(b, `email\n${emails.join('\n')}\n`, true);
    const done = await inState(b, importing, ['completed', 'failed']);
    expect(done.json).toMatchObject({ state: 'completed', counts: { added: 50 } });
    // Both machines are gone for good: the servers stop, their folders with the upload go.
    await a.close();
    await b.close();
    await cutOffAfterItsChunks(importing);
    await rm(a.dir, { recursive: true, force: true });
    await rm(b.dir, { recursive: true, force: true });

    const live = [await replica({ heartbeatMs: 50, lostAfterMs: 400 }), await replica({ heartbeatMs: 50, lostAfterMs: 400 }),
      await replica({ heartbeatMs: 50, lostAfterMs: 400 })];
    const [c] = live as [Replica, Replica, Replica];
    const expired = await inState(c, waiting, ['expired']);
    expect(expired.json).toMatchObject({ state: 'expired', holder: null, error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
    expect(String((expired.json['error'] as { message: string }).message)).toMatch(/upload the file again/);
    const failed = await inState(c, importing, ['failed']);
    expect(failed.json).toMatchObject({ state: 'failed', holder: null, error: { code: 'OPTOUT_ERR_HOLDER_LOST' }, counts: { added: 50 } });
    expect(String((failed.json['error'] as { message: string }).message)).toContain(`optout rollback ${importing}`);

    // Every live server has ticked twice since: none ends a job a second time.
    const ticked = async (after: number): Promise<boolean> => withLedger(async (ledger) => {
      const records = await ledger.listRecords<{ seenAt: string }>('server');
      return records.filter((r) => Date.parse(r.value.seenAt) > after).length >= live.length;
    });
    for (let round = 0; round < 2; round++) {
      const from = Date.now() + 60;
      expect(await until(() => ticked(from), Boolean)).toBe(true);
    }
    const [w, i] = [await abandonRecords(waiting), await abandonRecords(importing)];
    expect(w).toHaveLength(1);
    expect(i).toHaveLength(1);
    expect(w[0]?.actor).toMatch(/^server:/);
    expect(i[0]?.details).toMatchObject({ from: 'importing', to: 'failed', forced: false });
    expect(live.flatMap((r) => r.notices).filter((m) => m.startsWith(`import job ${importing} `))).toHaveLength(1);
    // The lost servers' liveness records go once their jobs have ended; the live ones' stay.
    const servers = async (): Promise<string[]> => withLedger(async (ledger) => (await ledger.listRecords('server')).map((r) => r.id));
    const left = await until(servers, (ids) => !ids.includes(aId) && !ids.includes(bId));
    expect(left.sort()).toEqual(live.map((r) => readFileSync(join(r.dir, HOLDER_FILE), 'utf8').trim()).sort());

    const rolled = await c.call('POST', `/v1/imports/${importing}/rollback`);
    expect(rolled.json).toMatchObject({ removed: 50, kept: 0, holdsReleased: 0 });
    expect(await withLedger(async (ledger) => (await ledger.scopeCounts()).get('*'))).toBe(0);
    const after = await live[2]?.call('POST', '/v1/eligibility', { emails: emails.slice(0, 3), minSeq: Number(rolled.seq) });
    expect(after?.json['results']).toMatchObject([{ eligible: true }, { eligible: true }, { eligible: true }]);
  });

  it('a holder that comes back after its job was ended writes nothing more for it and says why', async () => {
    // Seen once at its start, then not for far longer than the bound: a paused server.
    const late = await replica({ heartbeatMs: 1500 });
    const id = await upload(late, 'email\nlate1@example.com\nlate2@example.com\n', false);
    await inState(late, id, ['awaiting_confirmation']);
    const other = await replica({ heartbeatMs: 50, lostAfterMs: 300 });
    expect((await inState(other, id, ['expired'])).json).toMatchObject({ state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });

    // Back: its next heartbeat finds the job ended, stops it and deletes its upload.
    const told = await until(async () => late.notices, (n) => n.some((m) => m.startsWith(`import job ${id}: ended elsewhere`)), 400, 25);
    expect(told.join('\n')).toContain(`import job ${id}: ended elsewhere (expired)`);
    expect(await until(async () => existsSync(join(late.dir, 'uploads', `${id}.csv`)), (e) => !e)).toBe(false);
    const confirm = await late.call('POST', `/v1/imports/${id}/confirm`, { count: 2 });
    expect(confirm).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_JOB_STATE' } });
    expect((await job(other, id)).json['state']).toBe('expired');
    expect(await withLedger(async (ledger) => (await ledger.scopeCounts()).get('*') ?? 0)).toBe(0);
  });

  it('a holder cut off in the middle of an import commits nothing once another replica has failed its job', async () => {
    // Its chunk commits wait here: the holder is stalled just before it writes.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const gated = (ledger: Ledger): Ledger => new Proxy(ledger, {
      get(target, name) {
        if (name === 'beginChunk') {
          return (scope: string, jobId: string): ChunkWriter => {
            const writer = target.beginChunk(scope, jobId);
            return { ...writer, commit: async (job, added) => {
              await gate;
              return writer.commit(job, added);
            } };
          };
        }
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const late = await replica({ heartbeatMs: 1500 }, gated);
    const id = await upload(late, `email\n${Array.from({ length: 20 }, (_, i) => `cut${i}@example.com`).join('\n')}\n`, true);
    const other = await replica({ heartbeatMs: 50, lostAfterMs: 300 });
    expect((await inState(other, id, ['failed'])).json).toMatchObject({ state: 'failed', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
    release();
    const told = await until(async () => late.notices, (n) => n.some((m) => m.startsWith(`import job ${id}: ended elsewhere`)));
    expect(told.filter((m) => m.startsWith(`import job ${id}: `))).toHaveLength(1);
    expect(await until(async () => existsSync(join(late.dir, 'uploads', `${id}.csv`)), (e) => !e)).toBe(false);
    expect((await job(other, id)).json).toMatchObject({ state: 'failed', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
    expect(await withLedger(async (ledger) => (await ledger.scopeCounts()).get('*') ?? 0)).toBe(0);
    // Nothing to take back, but the rollback accepts it.
    expect((await other.call('POST', `/v1/imports/${id}/rollback`)).json).toMatchObject({ removed: 0 });
  });

  it('a live holder whose clock is far behind is not taken as lost: its record keeps changing', async () => {
    // A server an hour behind, beating every 20 ms, holding a waiting job.
    const ledger = await PgLedger.open(url);
    const id = (await ledger.createJob({ ...importFields(ACCOUNT_WIDE), state: 'awaiting_confirmation', holder: 'skewed', origin: { via: 'http', actor: 'test' } })).id;
    let beating = true;
    const behind = (async () => {
      while (beating) {
        await ledger.putRecord('server', 'skewed', { seenAt: new Date(Date.now() - 3_600_000).toISOString(), startedAt: '', host: 'x', pid: 1 }, undefined);
        await sleep(20);
      }
    })();
    try {
      const watcher = await replica({ heartbeatMs: 20, lostAfterMs: 200 });
      // By the wall clock the holder looks lost at once; the watcher sweeps for well over the bound.
      const selfId = readFileSync(join(watcher.dir, HOLDER_FILE), 'utf8').trim();
      const swept = async (): Promise<number> => Date.parse((await ledger.getRecord<{ seenAt: string }>('server', selfId))?.seenAt ?? '0');
      const from = await swept();
      expect(await until(swept, (at) => at > from + 1000)).toBeGreaterThan(from + 1000);
      expect((await job(watcher, id)).json).toMatchObject({ state: 'awaiting_confirmation', holder: { id: 'skewed', lost: true } });
      // Stopped: its record stays as it is, and the job ends after the bound.
      beating = false;
      await behind;
      expect((await inState(watcher, id, ['expired'])).json).toMatchObject({ state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
    } finally {
      beating = false;
      await behind;
      await ledger.close();
    }
  });

  it('jobs abandon refuses the job of a live holder, ends it with force, and audits who did', async () => {
    const holder = await replica({ heartbeatMs: 50 });
    const operator = await replica({ heartbeatMs: 50 });
    const id = await upload(holder, 'email\nab1@example.com\n', false);
    await inState(holder, id, ['awaiting_confirmation']);

    const refused = await operator.call('POST', `/v1/imports/${id}/abandon`);
    expect(refused).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_JOB_STATE' } });
    expect(String(refused.json['message'])).toMatch(/--force/);
    // The server running it is not lost, forced or not.
    expect(await holder.call('POST', `/v1/imports/${id}/abandon`, { force: true })).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_JOB_STATE' } });
    expect((await job(operator, id)).json['state']).toBe('awaiting_confirmation');
    expect(await abandonRecords(id)).toEqual([]);

    const forced = await operator.call('POST', `/v1/imports/${id}/abandon`, { force: true });
    expect(forced).toMatchObject({ status: 200, json: { id, state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } } });
    const [record, ...more] = await abandonRecords(id);
    expect(more).toEqual([]);
    expect(record).toMatchObject({ action: 'abandon', job: id, details: { from: 'awaiting_confirmation', to: 'expired', forced: true } });
    expect(record?.actor).toMatch(/^key:/);
    // Once ended it stays so: a second abandon is refused, and the holder lets it go.
    expect(await operator.call('POST', `/v1/imports/${id}/abandon`, { force: true })).toMatchObject({ status: 409, json: { code: 'OPTOUT_ERR_JOB_STATE' } });
    const told = await until(async () => holder.notices, (n) => n.some((m) => m.startsWith(`import job ${id}: ended elsewhere`)));
    expect(told.length).toBeGreaterThan(0);
  });
});
