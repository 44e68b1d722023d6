/**
 * An API replica's view following a PostgreSQL ledger: loaded from a snapshot, kept up to date
 * from the feed, reopened where it stopped, emptied when its first load was cut off, never fed
 * from another database, and stale (failing closed) when the ledger stops answering.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checker } from '../../src/check/checker.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { rollbackJob } from '../../src/manage/rollback.js';
import { FeedFollower } from '../../src/replica/follower.js';
import { openReplicaView } from '../../src/replica/open-view.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { ACCOUNT_WIDE, type Ledger, type StoredApiKey } from '../../src/store/store.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';
import { addKey, auditOf, entries, importKeys, removeKey } from '../store/ledger-writes.js';

function apiKey(id: string): StoredApiKey {
  return { id, unit: null, scope: 'check', rateLimit: null, createdAt: new Date().toISOString(), revokedAt: null, hash: 'a'.repeat(64) };
}

/** Entries, counts, job metadata and API keys of the view are the ledger's. */
async function expectViewOf(view: LevelStore, ledger: Ledger): Promise<void> {
  // LevelDB orders a scope's entries by hash, PostgreSQL by key.
  const sorted = async (of: Ledger) => (await entries(of)).sort((x, y) => (`${x.scope} ${x.key}` < `${y.scope} ${y.key}` ? -1 : 1));
  const stored = await sorted(ledger);
  expect(await sorted(view)).toEqual(stored);
  expect(Object.fromEntries(await view.scopeCounts())).toEqual(Object.fromEntries(await ledger.scopeCounts()));
  for (const e of stored) {
    const job = await ledger.getJob(e.jobId);
    expect(view.jobMetaSync(e.jobId)).toEqual({ reason: job?.reason, source: job?.source, addedAt: job?.createdAt });
  }
  for (const k of await ledger.listApiKeys()) expect(view.apiKeySync(k.id)).toEqual(k);
  // What checks read (from the key index, once the view has one) agrees with the entries.
  for (const e of stored) {
    const [h1, h2] = hashKeyTuple(e.key);
    const m = view.matchSync(e.scope, e.key, h1, h2);
    expect(m && { jobId: m.jobId, reason: m.reason }, `${e.scope} ${e.key}`).toEqual({ jobId: e.jobId, reason: e.reason });
  }
}

await withPgDatabase('FeedFollower', (url) => {
  const cleanups: Array<() => Promise<void>> = [];
  let ledger: PgLedger;

  async function openLedger(): Promise<PgLedger> {
    const l = await PgLedger.open(url);
    cleanups.push(() => l.close());
    return l;
  }

  async function follow(dir: string, on: Ledger = ledger, options = {}): Promise<{ view: LevelStore; follower: FeedFollower }> {
    const view = await openReplicaView(dir, on);
    const follower = new FeedFollower(on, view, { pollMs: 20, pageSize: 2, ...options });
    cleanups.push(async () => {
      await follower.stop();
      await view.close();
    });
    await follower.start();
    return { view, follower };
  }

  beforeEach(async () => {
    await resetDatabase(url);
    await migrate(url);
    ledger = await openLedger();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await removeTempDirs();
  });

  it('loads a snapshot into an empty folder, then follows every kind of change', async () => {
    const a = await importKeys(ledger, ACCOUNT_WIDE, ['a@x.org', 'b@x.org', 'c@x.org']);
    await importKeys(ledger, 'unitA', ['a@x.org', 'd@x.org']);
    await addKey(ledger, ACCOUNT_WIDE, 'e@x.org', 'E+tag@x.org');
    await ledger.putApiKey(apiKey('k1'), auditOf(ledger, 'key.create', null, null));
    const { view, follower } = await follow(await tempDir('optout-replica-'));
    expect(follower.seq).toBe(await ledger.head());
    await expectViewOf(view, ledger);
    expect(await view.indexKeys()).toBe(true);

    await importKeys(ledger, ACCOUNT_WIDE, ['c@x.org', 'f@x.org']);
    await removeKey(ledger, ACCOUNT_WIDE, 'e@x.org');
    await rollbackJob(ledger, a, 'test');
    await ledger.putApiKey({ ...apiKey('k1'), revokedAt: new Date().toISOString() }, auditOf(ledger, 'key.revoke', null, null));
    expect(await follower.waitFor(await ledger.head(), 10_000)).toBe(true);
    await expectViewOf(view, ledger);
    // c@x.org passed to the later import on rollback: still suppressed, now by that job.
    expect((await entries(view)).map((e) => `${e.scope} ${e.key}`).sort()).toEqual(['* c@x.org', '* f@x.org', 'unitA a@x.org', 'unitA d@x.org']);
    for (const gone of ['a@x.org', 'b@x.org', 'e@x.org']) {
      const [h1, h2] = hashKeyTuple(gone);
      expect(view.matchSync(ACCOUNT_WIDE, gone, h1, h2), gone).toBeUndefined();
    }
  });

  it('answers checks from the view with a filter that learns each followed key before it is written', async () => {
    const { view, follower } = await follow(await tempDir('optout-replica-'));
    const checker = new Checker(view, await view.filter(), ledger);
    expect(checker.decide({ email: 'late@x.org' }).eligible).toBe(true);
    await addKey(ledger, ACCOUNT_WIDE, 'late@x.org');
    expect(await follower.waitFor(await ledger.head(), 10_000)).toBe(true);
    expect(checker.decide({ email: 'late@x.org' })).toMatchObject({ eligible: false, reason: 'suppressed' });
  });

  it('keeps each entry\'s own reason, from the snapshot and from the feed, and checks answer with it', async () => {
    await importKeys(ledger, ACCOUNT_WIDE, ['snap-bounce@x.org', 'snap-plain@x.org'], new Map([['snap-bounce@x.org', 'bounced']]));
    const { view, follower } = await follow(await tempDir('optout-replica-'));
    await importKeys(ledger, 'unitA', ['feed-spam@x.org', 'feed-plain@x.org'], new Map([['feed-spam@x.org', 'complaint']]));
    expect(await follower.waitFor(await ledger.head(), 10_000)).toBe(true);
    await expectViewOf(view, ledger);
    expect(Object.fromEntries((await entries(view)).map((e) => [e.key, e.reason]))).toEqual({
      'snap-bounce@x.org': 'bounced', 'snap-plain@x.org': undefined, 'feed-spam@x.org': 'complaint', 'feed-plain@x.org': undefined,
    });
    const checker = new Checker(view, await view.filter(), ledger);
    // The import's own reason (importFields: unsubscribed) for the rows without one.
    expect(checker.decide({ email: 'snap-bounce@x.org' }).suppression).toMatchObject({ scope: ACCOUNT_WIDE, reason: 'bounced' });
    expect(checker.decide({ email: 'snap-plain@x.org' }).suppression).toMatchObject({ reason: 'unsubscribed' });
    expect(checker.decide({ email: 'feed-spam@x.org', unit: 'unitA' }).suppression).toMatchObject({ scope: 'unitA', reason: 'complaint' });
    expect(checker.decide({ email: 'feed-plain@x.org', unit: 'unitA' }).suppression).toMatchObject({ reason: 'unsubscribed' });
  });

  it('is woken by the database when a change commits, long before its next poll', async () => {
    const { follower } = await follow(await tempDir('optout-replica-'), ledger, { pollMs: 600_000 });
    // A separate process's write: another pool, as another replica or importer would have.
    const writer = await openLedger();
    await addKey(writer, ACCOUNT_WIDE, 'woken@x.org');
    const head = await writer.head();
    for (let i = 0; i < 1000 && follower.seq < head; i++) await new Promise((r) => setTimeout(r, 10));
    expect(follower.seq).toBe(head);
  });

  it('reopens where it stopped, without loading a snapshot again', async () => {
    const dir = await tempDir('optout-replica-');
    await importKeys(ledger, ACCOUNT_WIDE, ['a@x.org', 'b@x.org']);
    const first = await follow(dir);
    const seq = first.follower.seq;
    await first.follower.stop();
    await first.view.close();

    await addKey(ledger, ACCOUNT_WIDE, 'c@x.org');
    await removeKey(ledger, ACCOUNT_WIDE, 'a@x.org');
    const view = await openReplicaView(dir, ledger);
    cleanups.push(() => view.close());
    expect(view.following).toEqual({ feedId: await ledger.feedId(), seq, complete: true });
    const follower = new FeedFollower(ledger, view, { pageSize: 1 });
    cleanups.push(() => follower.stop());
    await follower.start();
    expect(follower.seq).toBe(seq + 2);
    await expectViewOf(view, ledger);
  });

  it('empties a folder whose first load was cut off, and loads it again', async () => {
    const dir = await tempDir('optout-replica-');
    await importKeys(ledger, ACCOUNT_WIDE, ['a@x.org', 'b@x.org', 'c@x.org']);
    const cut = await openReplicaView(dir, ledger);
    for await (const part of ledger.feedSnapshot()) {
      await cut.applyFollowed([{ ...part, put: part.put.slice(0, 1), del: [] }], { seq: part.seq, complete: false });
    }
    await cut.close();

    await removeKey(ledger, ACCOUNT_WIDE, 'b@x.org');
    const { view } = await follow(dir);
    await expectViewOf(view, ledger);
    expect((await entries(view)).map((e) => e.key).sort()).toEqual(['a@x.org', 'c@x.org']);
  });

  it('refuses to follow another database into a view, and to turn an embedded store into one', async () => {
    const dir = await tempDir('optout-replica-');
    const { view, follower } = await follow(dir);
    await follower.stop();
    await view.close();
    // A second database: another ledger id.
    await resetDatabase(url);
    await migrate(url);
    const other = await openLedger();
    expect(await failureCode(() => openReplicaView(dir, other))).toBe('OPTOUT_ERR_INVALID_OPTION');

    const embedded = await tempDir('optout-embedded-');
    const store = await LevelStore.open(embedded);
    await addKey(store, ACCOUNT_WIDE, 'a@x.org');
    await store.close();
    expect(await failureCode(() => openReplicaView(embedded, other))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it('is opened as a view only, and takes no write but its feed\'s', async () => {
    const dir = await tempDir('optout-replica-');
    await importKeys(ledger, ACCOUNT_WIDE, ['a@x.org']);
    const { view, follower } = await follow(dir);
    // A write here would reach neither the database nor any other replica.
    expect(await failureCode(() => addKey(view, ACCOUNT_WIDE, 'b@x.org'))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failureCode(() => importKeys(view, ACCOUNT_WIDE, ['c@x.org']))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failureCode(() => view.putApiKey(apiKey('k9'), auditOf(view, 'key.create', null, null)))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failureCode(() => view.appendAudit([auditOf(view, 'legal_basis', 'a@x.org', null)]))).toBe('OPTOUT_ERR_INVALID_OPTION');
    await expectViewOf(view, ledger);
    await follower.stop();
    await view.close();
    // Opened as a store (a command given the folder as --db), it would answer without any proof of freshness.
    expect(await failureCode(() => LevelStore.open(dir))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failureCode(() => LevelStore.open(dir, { create: false }))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  describe('freshness', () => {
    it('is proven by each read that reaches the head, and lapses when the ledger stops answering', async () => {
      const errors: unknown[] = [];
      const l = await openLedger();
      const { follower } = await follow(await tempDir('optout-replica-'), l, { onError: (e: unknown) => errors.push(e) });
      const bound = 60_000;
      expect(follower.fresh(bound)).toBe(true);
      follower.assertFresh(bound);

      // Reads keep proving it: the proof moves forward.
      const proven = follower.freshness().provenAt as number;
      for (let i = 0; i < 500 && (follower.freshness().provenAt as number) <= proven; i++) await new Promise((r) => setTimeout(r, 10));
      expect(follower.freshness().provenAt).toBeGreaterThan(proven);

      // Cut off: the proof stops where the last read found the head.
      await l.close();
      for (let i = 0; i < 500 && errors.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors.length).toBeGreaterThanOrEqual(2);
      const last = follower.freshness().provenAt as number;
      await new Promise((r) => setTimeout(r, 60));
      expect(follower.freshness().provenAt).toBe(last);
      expect(follower.fresh(bound, last + bound)).toBe(true);
      expect(follower.fresh(bound, last + bound + 1)).toBe(false);
      expect(await failureCode(() => follower.assertFresh(0))).toBe('OPTOUT_ERR_STALE');
    });

    it('is not proven before the first catch-up', async () => {
      const view = await openReplicaView(await tempDir('optout-replica-'), ledger);
      cleanups.push(() => view.close());
      const follower = new FeedFollower(ledger, view);
      expect(follower.fresh(60_000)).toBe(false);
      expect(await failureCode(() => follower.assertFresh(60_000))).toBe('OPTOUT_ERR_STALE');
      expect(await follower.waitFor(1, 10)).toBe(false);
    });
  });
});
