/**
 * A replica whose database stops answering fails closed, and serves again once it answers: the
 * whole PostgreSQL server (postmaster and backends) paused with SIGSTOP, then resumed with
 * SIGCONT. The cluster is this file's own, so that pausing it disturbs nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { FeedFollower } from '../../src/replica/follower.js';
import { openReplica } from '../../src/replica/open-replica.js';
import { openReplicaView } from '../../src/replica/open-view.js';
import type { LevelStore } from '../../src/store/level/level-store.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { ACCOUNT_WIDE } from '../../src/store/store.js';
import { serverBinaries, startCluster, waitForServer, type StartedCluster } from '../../bench/lib/pg-cluster.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { addKey, entries } from '../store/ledger-writes.js';

const BOUND_MS = 1000;
const POLL_MS = 100;
const bin = serverBinaries();
if (bin === undefined && process.env['CI'] === 'true') throw new Error('CI=true and no PostgreSQL server binaries: this drill must run in CI');
if (bin === undefined) process.stderr.write('paused database drill skipped: no PostgreSQL server binaries (apt-get install postgresql)\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.runIf(bin !== undefined)('a replica whose database is paused', () => {
  let cluster: StartedCluster;
  let ledger: PgLedger;
  let writer: PgLedger;
  let view: LevelStore;
  let follower: FeedFollower;
  let errors = 0;

  beforeAll(async () => {
    cluster = await startCluster(bin as string);
    await waitForServer(cluster.url);
    await migrate(cluster.url);
    // Statements time out after a second, as the replica's bound: a paused server fails them.
    ledger = await PgLedger.open(cluster.url, { statementTimeoutMs: BOUND_MS });
    writer = await PgLedger.open(cluster.url);
    view = await openReplicaView(await tempDir('optout-replica-'), ledger);
    follower = new FeedFollower(ledger, view, { pollMs: POLL_MS, onError: () => errors++ });
    await follower.start();
  });

  afterAll(async () => {
    await cluster?.signal('SIGCONT').catch(() => undefined);
    await follower?.stop();
    await view?.close();
    await ledger?.close();
    await writer?.close();
    await cluster?.stop();
    await removeTempDirs();
  });

  it('fails closed within its bound, and answers again once the database does', async () => {
    await addKey(writer, ACCOUNT_WIDE, 'before@x.org');
    expect(await follower.waitFor(await writer.head(), 10_000)).toBe(true);
    expect(follower.fresh(BOUND_MS)).toBe(true);

    // Taken once every server process has stopped: a read that started before this may have
    // been answered, none that starts after it can be.
    await cluster.signal('SIGSTOP');
    const pausedAt = Date.now();
    try {
      // No read can reach the head after the pause: the proof stays at or before it, so no check
      // is answered later than the bound after the pause. Long enough for the client to give up
      // on the hung read (the statement time-out plus the driver's margin): a failed read proves
      // nothing either.
      await sleep(BOUND_MS + 3 * POLL_MS);
      expect(follower.fresh(BOUND_MS)).toBe(false);
      for (let i = 0; i < 200 && errors === 0; i++) await sleep(50);
      expect(errors).toBeGreaterThan(0);
      expect(follower.freshness().provenAt as number).toBeLessThanOrEqual(pausedAt);
      expect(follower.fresh(BOUND_MS)).toBe(false);
      expect(await failureCode(() => follower.assertFresh(BOUND_MS))).toBe('OPTOUT_ERR_STALE');
    } finally {
      await cluster.signal('SIGCONT');
    }

    for (let i = 0; i < 300 && !follower.fresh(BOUND_MS); i++) await sleep(50);
    expect(follower.fresh(BOUND_MS)).toBe(true);
    await addKey(writer, ACCOUNT_WIDE, 'after@x.org');
    expect(await follower.waitFor(await writer.head(), 10_000)).toBe(true);
    expect((await entries(view)).map((e) => e.key).sort()).toEqual(['after@x.org', 'before@x.org']);
  });

  it('as an API replica: checks and /readyz answer 503 within the bound plus a poll, and 200 again after SIGCONT', async () => {
    const replica = await openReplica(cluster.url, await tempDir('optout-replica-'), { maxStalenessMs: BOUND_MS, pollMs: POLL_MS });
    const app = createServer({ store: replica, syncs: false });
    try {
      const { key } = await createKey(writer, { scope: 'check' });
      await addKey(writer, ACCOUNT_WIDE, 'listed@x.org');
      await replica.caughtUp;
      expect(await replica.follower.waitFor(await writer.head(), 10_000)).toBe(true);
      const check = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
        const res = await app.inject({ method: 'GET', url: '/v1/eligibility?email=listed%40x.org', headers: { authorization: `Bearer ${key}` } });
        return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
      };
      expect(await check()).toMatchObject({ status: 200, body: { eligible: false } });

      await cluster.signal('SIGSTOP');
      try {
        await sleep(BOUND_MS + POLL_MS);
        expect(await check()).toMatchObject({ status: 503, body: { code: 'OPTOUT_ERR_STALE' } });
        const ready = await app.inject({ method: 'GET', url: '/readyz' });
        expect(ready.statusCode).toBe(503);
        expect(JSON.parse(ready.body)).toMatchObject({ code: 'OPTOUT_ERR_STALE' });
      } finally {
        await cluster.signal('SIGCONT');
      }
      for (let i = 0; i < 300 && (await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200; i++) await sleep(50);
      expect(await check()).toMatchObject({ status: 200, body: { eligible: false } });
    } finally {
      await app.close();
      await replica.close();
    }
  });
});
