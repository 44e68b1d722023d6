/**
 * The store contract as tests: every backend runs this suite (see `contract.*.test.ts`), as
 * every abstract-level backend runs its compliance suite. It speaks only through the contract
 * (`src/store/store.ts`); chunk keys are built from the store's own codec, the way the import
 * workers build them. Cases that need the check view (the filter, synchronous lookups) are gated
 * on `store.supports.syncLookups`: a ledger alone (PostgreSQL) has no view of its own.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rollbackJob } from '../../src/manage/rollback.js';
import { moveJob } from '../../src/store/job-states.js';
import { failureCode } from '../helpers.js';
import type { AuditRecord } from '../../src/store/audit.js';
import { jobMetaOf, type AnyJob, type JobRecord, type SuppressionReason } from '../../src/store/jobs.js';
import {
  addKey, auditOf, chunkKey, entries, hashed, importFields, importKeys, removeKey, viewOf, writeChunk, type ContractStore,
} from './ledger-writes.js';
import {
  ACCOUNT_WIDE, type AddOutcome, type Change, type CheckView, type EntryMatch, type DeliveredEvent, type NewSuppression, type StoreCapabilities, type Ledger,
  type ScopedEntry, type StoredApiKey, type StoredEntry, type SyncRecord,
} from '../../src/store/store.js';

async function countOf(store: Ledger, scope: string): Promise<number | undefined> {
  return (await store.scopeCounts()).get(scope);
}

async function totalOf(store: Ledger): Promise<number> {
  let n = 0;
  for (const c of (await store.scopeCounts()).values()) n += c;
  return n;
}

/** Opens a new, empty store; `cleanup` closes it (if still open) and removes what it left. */
export type StoreFactory = () => Promise<{ store: ContractStore; cleanup(): Promise<void> }>;

const NOT_OPEN = 'OPTOUT_ERR_STORE_NOT_OPEN';

async function audits(store: Ledger, fromId = '0', key?: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of store.auditRecords({ fromId, key })) out.push(r);
  return out;
}

/** `scope key -> owner` of every stored entry, for comparisons that ignore store order. */
async function owners(store: Ledger): Promise<Record<string, string>> {
  return Object.fromEntries((await entries(store)).map((e) => [`${e.scope} ${e.key}`, e.jobId]));
}

/**
 * The identities that hold after any sequence of changes: per-scope counts and the total match
 * a scan of the whole store; for the scopes in `only` (every scope without it), a scan of the
 * scope, the lookups and the filter agree with it too.
 */
async function expectConsistent(store: ContractStore, only?: readonly string[]): Promise<void> {
  const all = await entries(store);
  const perScope = new Map<string, number>();
  for (const e of all) perScope.set(e.scope, (perScope.get(e.scope) ?? 0) + 1);
  const counts = await store.scopeCounts();
  const scopes = new Set([...perScope.keys(), ...counts.keys()]);
  for (const scope of scopes) expect(counts.get(scope) ?? 0, `count of ${scope}`).toBe(perScope.get(scope) ?? 0);
  expect(await totalOf(store)).toBe(all.length);
  const view = viewOf(store);
  if (view) {
    expect(Object.fromEntries(view.counts())).toEqual(Object.fromEntries(counts));
    expect(view.totalEntries()).toBe(all.length);
  }
  const checked = new Set(only ?? scopes);
  for (const scope of checked) expect((await entries(store, scope)).length).toBe(perScope.get(scope) ?? 0);
  const filter = await view?.filter();
  for (const e of all.filter((x) => checked.has(x.scope))) {
    const h = hashed(e.key);
    if (view && filter) {
      expect(filter.mightContain(h.h1, h.h2), `filter covers ${e.key}`).toBe(true);
      expect(view.entrySync(e.scope, e.key, h.h1)).toEqual(entryOf(e));
      expect(matchOf(view, e.scope, e.key), `match of ${e.scope} ${e.key}`).toEqual({ jobId: e.jobId, reason: e.reason });
    }
    expect(await store.entriesOf(h)).toContainEqual({ scope: e.scope, entry: entryOf(e) });
    expect(await store.presentKeys([chunkKey(store.chunkKeyCodec(e.scope), e.key)])).toEqual([true]);
  }
}

/** What `matchSync` answers, its own fields only (a backend may give the address too). */
function matchOf(view: CheckView, scope: string, key: string): EntryMatch | undefined {
  const h = hashed(key);
  const m = view.matchSync(scope, key, h.h1, h.h2);
  return m === undefined ? undefined : { jobId: m.jobId, reason: m.reason };
}

/** A scanned entry's stored part, its own reason only when it has one (as every backend gives it back). */
function entryOf(e: ScopedEntry): StoredEntry {
  return e.reason === undefined ? { jobId: e.jobId, address: e.address } : { jobId: e.jobId, address: e.address, reason: e.reason };
}

/** Runs the shared cases on the stores `factory` opens. */
/**
 * @param supports the backend's capabilities, declared with it: cases are chosen while the suite
 *   is collected, before any store is open (a case checks that the stores say the same).
 */
export function storeContract(name: string, factory: StoreFactory, supports: StoreCapabilities): void {
  describe(`store contract: ${name}`, () => {
    let store: ContractStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('change feed', () => {
      it('is what the backend declared', () => {
        expect(store.supports).toEqual(supports);
      });

      it.runIf(supports.feed)('replayed from zero, gives exactly the entries, the jobs they point to and the API keys', async () => {
        const a = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org', 'c@x.org']);
        await importKeys(store, ACCOUNT_WIDE, ['b@x.org', 'd@x.org']);
        await importKeys(store, 'unitA', ['a@x.org']);
        await addKey(store, ACCOUNT_WIDE, 'e@x.org', 'E+tag@x.org');
        await addKey(store, ACCOUNT_WIDE, 'c@x.org');
        await removeKey(store, ACCOUNT_WIDE, 'd@x.org');
        await rollbackJob(store, a, 'contract');
        await store.putApiKey(apiKeyRecord('k1'), auditOf(store, 'key.create', null, null));
        await store.putApiKey({ ...apiKeyRecord('k1'), revokedAt: new Date().toISOString() }, auditOf(store, 'key.revoke', null, null));

        // A follower: pages of three, applied in order.
        const follower = new Follower();
        const seqs = await follower.follow(store, 0);
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        expect(await store.head()).toBe(seqs.length);
        await follower.expectSameAs(store);
        expect(await store.changesSince(await store.head(), 10)).toEqual([]);
      });

      it.runIf(supports.feed)('a snapshot, then the changes after its position, give exactly the ledger', async () => {
        const a = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org', 'c@x.org']);
        await addKey(store, 'unitA', 'd@x.org', 'D+tag@x.org');
        await store.putApiKey(apiKeyRecord('k1'), auditOf(store, 'key.create', null, null));
        const head = await store.head();

        const follower = new Follower();
        const parts = store.feedSnapshot()[Symbol.asyncIterator]();
        const first = await parts.next();
        // Written while the snapshot is read: not in it, and in the feed after its position.
        await addKey(store, ACCOUNT_WIDE, 'e@x.org');
        await removeKey(store, ACCOUNT_WIDE, 'b@x.org');
        await rollbackJob(store, a, 'contract');
        const seqs = new Set<number>();
        for (let part = first; part.done !== true; part = await parts.next()) {
          seqs.add(part.value.seq);
          follower.apply({ ...part.value, del: [] });
        }
        expect([...seqs]).toEqual([head]);
        expect(follower.keys()).toEqual(['* a@x.org', '* b@x.org', '* c@x.org', 'unitA d@x.org']);

        expect(await follower.follow(store, head)).toEqual([head + 1, head + 2, head + 3]);
        await follower.expectSameAs(store);
      });

      it.runIf(supports.feed)('wakes its subscribers after a change commits, until they unsubscribe', async () => {
        let wakes = 0;
        const unsubscribe = store.onChange(() => {
          wakes++;
        });
        // A subscription may wake once as it starts (PostgreSQL: once it listens).
        await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        for (let i = 0; i < 500 && wakes === 0; i++) await new Promise((r) => setTimeout(r, 10));
        expect(wakes).toBeGreaterThan(0);
        const before = wakes;
        await addKey(store, ACCOUNT_WIDE, 'b@x.org');
        for (let i = 0; i < 500 && wakes === before; i++) await new Promise((r) => setTimeout(r, 10));
        expect(wakes).toBeGreaterThan(before);
        unsubscribe();
        const after = wakes;
        await addKey(store, ACCOUNT_WIDE, 'c@x.org');
        await new Promise((r) => setTimeout(r, 100));
        expect(wakes).toBe(after);
      });

      it.runIf(supports.feed)('names the ledger the same way every time', async () => {
        const id = await store.feedId();
        expect(id).toMatch(/\S/);
        expect(await store.feedId()).toBe(id);
      });

      it.runIf(!supports.feed)('is refused with a code where the store keeps none', async () => {
        expect(store.supports.feed).toBe(false);
        expect(await failureCode(() => store.head())).toBe('OPTOUT_ERR_INVALID_OPTION');
        expect(await failureCode(() => store.changesSince(0, 1))).toBe('OPTOUT_ERR_INVALID_OPTION');
        expect(await failureCode(() => store.feedId())).toBe('OPTOUT_ERR_INVALID_OPTION');
        expect(await failureCode(() => store.onChange(() => undefined))).toBe('OPTOUT_ERR_INVALID_OPTION');
        expect(await failureCode(async () => {
          for await (const part of store.feedSnapshot()) expect(part).toBeUndefined();
        })).toBe('OPTOUT_ERR_INVALID_OPTION');
      });
    });

    describe('import chunks', () => {
      it('commit atomically: a discarded chunk leaves nothing behind', async () => {
        const job = await store.createJob(importFields(ACCOUNT_WIDE));
        const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
        const keys = ['a@x.org', 'b@x.org', 'c@x.org'];
        const writer = store.beginChunk(ACCOUNT_WIDE, job.id);
        for (const k of keys) writer.putEntry(chunkKey(codec, k), undefined);
        await writer.discard();
        expect(await store.presentKeys(keys.map((k) => chunkKey(codec, k)))).toEqual([false, false, false]);
        expect(await entries(store)).toEqual([]);
        expect(await totalOf(store)).toBe(0);
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('commit entries, addresses, the count and the checkpoint together', async () => {
        const job = await store.createJob(importFields('unitA'));
        const written = await writeChunk(store, job, 0, ['a@x.org', 'b@x.org'], new Map([['b@x.org', 'B+news@x.org']]));
        expect(written).toMatchObject({ applied: true, added: 2 });
        expect(await owners(store)).toEqual({ 'unitA a@x.org': job.id, 'unitA b@x.org': job.id });
        expect((await entries(store)).find((e) => e.key === 'b@x.org')?.address).toBe('B+news@x.org');
        expect(await countOf(store, 'unitA')).toBe(2);
        expect(await store.getJob(job.id)).toEqual(written.job);
        await expectConsistent(store);
      });

      it('are idempotent: a replayed chunk the job has passed writes nothing', async () => {
        const job = await store.createJob(importFields(ACCOUNT_WIDE));
        const first = await writeChunk(store, job, 0, ['a@x.org', 'b@x.org']);
        const second = await writeChunk(store, first.job, 1, ['c@x.org']);
        const before = await owners(store);
        // A replay after a lost acknowledgement: the keys are present now, so it holds them.
        expect(await writeChunk(store, job, 0, ['a@x.org', 'b@x.org'])).toMatchObject({ applied: false });
        // The same chunk rebuilt as first written (entries, not holds).
        const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
        const replay = store.beginChunk(ACCOUNT_WIDE, job.id);
        replay.putEntry(chunkKey(codec, 'c@x.org'), undefined);
        replay.putEntry(chunkKey(codec, 'z@x.org'), undefined);
        expect(await replay.commit(second.job, 2)).toEqual({ applied: false, added: 0 });
        expect(await owners(store)).toEqual(before);
        expect(await countOf(store, ACCOUNT_WIDE)).toBe(3);
        expect(await totalOf(store)).toBe(3);
        expect(await store.getJob(job.id)).toEqual(second.job);
        // No hold of the job on its own entries was left by the replay.
        expect((await removeKey(store, ACCOUNT_WIDE, 'a@x.org')).heldBy).toEqual([]);
        await expectConsistent(store);
      });

      it.runIf(!supports.exclusive)('of a job another process ended are refused, as are its checkpoints and end; of two enders one wins', async () => {
        const job = await store.createJob(importFields(ACCOUNT_WIDE));
        const first = await writeChunk(store, job, 0, ['a@x.org', 'b@x.org']);
        // Another server ends the job while its holder is away; a second one, a moment later, finds it ended.
        const ender = (id: string): AuditRecord => store.audit({ actor: id, action: 'abandon', key: null, job: job.id, unit: null, details: {} });
        const failed = moveJob(first.job, 'failed', { error: { code: 'OPTOUT_ERR_HOLDER_LOST', message: 'lost' } });
        await store.putJob(failed, ender('server:one'));
        expect(await failureCode(() => store.putJob(moveJob(first.job, 'failed'), ender('server:two')))).toBe('OPTOUT_ERR_JOB_STATE');
        expect((await audits(store)).filter((a) => a.action === 'abandon').map((a) => a.actor)).toEqual(['server:one']);
        // The holder comes back: its next chunk, its checkpoint and its end are refused and write nothing.
        expect(await failureCode(() => writeChunk(store, first.job, 1, ['c@x.org']))).toBe('OPTOUT_ERR_JOB_STATE');
        expect(await failureCode(() => store.putJob({ ...first.job, updatedAt: new Date().toISOString() }))).toBe('OPTOUT_ERR_JOB_STATE');
        expect(await failureCode(() => store.putJob(moveJob(first.job, 'completed')))).toBe('OPTOUT_ERR_JOB_STATE');
        expect(await store.getJob(job.id)).toEqual(failed);
        expect(await owners(store)).toEqual({ '* a@x.org': job.id, '* b@x.org': job.id });
        expect(await countOf(store, ACCOUNT_WIDE)).toBe(2);
        // What it committed before is the rollback's to take back.
        expect(await rollbackJob(store, job.id, 'contract')).toMatchObject({ removed: 2, kept: 0 });
        expect(await totalOf(store)).toBe(0);
        await expectConsistent(store);
      });

      it.runIf(!supports.exclusive)('keep no watch on an empty scope where other processes write', () => {
        expect(store.watchEmptyScope).toBeUndefined();
      });

      it.runIf(supports.exclusive)('watch an empty scope: untouched by import chunks, touched by a single add', async () => {
        const watch = await store.withWriteLock(async () => store.watchEmptyScope?.('unitA'));
        expect(watch?.untouched()).toBe(true);
        const job = await store.createJob(importFields('unitA'));
        await writeChunk(store, job, 0, ['a@x.org', 'b@x.org']);
        expect(watch?.untouched()).toBe(true);
        // A scope that holds entries has no such watch.
        expect(await store.withWriteLock(async () => store.watchEmptyScope?.('unitA'))).toBeUndefined();
        await addKey(store, 'unitA', 'c@x.org');
        expect(watch?.untouched()).toBe(false);
      });

      it.runIf(supports.settlesChunks)('settle every key at commit, whatever the caller classified, and the checkpoint follows', async () => {
        const owner = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org']);
        const job = await store.createJob(importFields(ACCOUNT_WIDE));
        const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
        // Not looked up: a@x.org is put as new though the scope holds it, c@x.org as held though it is absent.
        const writer = store.beginChunk(ACCOUNT_WIDE, job.id);
        writer.putEntry(chunkKey(codec, 'a@x.org'), undefined);
        writer.putEntry(chunkKey(codec, 'd@x.org'), 'D+tag@x.org');
        writer.putHold(chunkKey(codec, 'c@x.org'), 'C@x.org');
        const counts = { ...job.checkpoint.counts, rows: 3, valid: 3, unique: 3, added: 2, alreadySuppressed: 1 };
        const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1, counts } };
        expect(await writer.commit(next, 2)).toEqual({ applied: true, added: 2 });
        expect(await owners(store)).toEqual({ '* a@x.org': owner, '* b@x.org': owner, '* c@x.org': job.id, '* d@x.org': job.id });
        expect((await entries(store)).map((e) => [e.key, e.address]).sort()).toEqual(
          [['a@x.org', undefined], ['b@x.org', undefined], ['c@x.org', 'C@x.org'], ['d@x.org', 'D+tag@x.org']]);
        const stored = await store.getJob(job.id) as JobRecord;
        expect(stored.checkpoint.counts).toMatchObject({ added: 2, alreadySuppressed: 1 });
        // The job holds the key it found stored: a rollback of its owner passes it on.
        expect((await removeKey(store, ACCOUNT_WIDE, 'a@x.org')).heldBy).toEqual([job.id]);
        await expectConsistent(store);
      });

      it.runIf(supports.settlesChunks)('correct the checkpoint by what the commit really stored', async () => {
        await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org']);
        const job = await store.createJob(importFields(ACCOUNT_WIDE));
        const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
        const writer = store.beginChunk(ACCOUNT_WIDE, job.id);
        for (const k of ['a@x.org', 'b@x.org', 'e@x.org']) writer.putEntry(chunkKey(codec, k), undefined);
        const counts = { ...job.checkpoint.counts, rows: 3, valid: 3, unique: 3, added: 3, alreadySuppressed: 0 };
        const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1, counts } };
        expect(await writer.commit(next, 3)).toEqual({ applied: true, added: 1 });
        expect(((await store.getJob(job.id)) as JobRecord).checkpoint.counts).toMatchObject({ added: 1, alreadySuppressed: 2 });
        expect(await countOf(store, ACCOUNT_WIDE)).toBe(3);
        await expectConsistent(store);
      });
    });

    it('keeps an entry\'s own reason: read back, looked up, removed, through the feed and its snapshot, and on rollback', async () => {
      const first = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org', 'c@x.org', 'd@x.org'],
        new Map<string, SuppressionReason>([['a@x.org', 'bounced'], ['c@x.org', 'complaint']]));
      expect(Object.fromEntries((await entries(store)).map((e) => [e.key, e.reason])))
        .toEqual({ 'a@x.org': 'bounced', 'b@x.org': undefined, 'c@x.org': 'complaint', 'd@x.org': undefined });
      expect(await store.entriesOf(hashed('a@x.org'))).toStrictEqual([{ scope: ACCOUNT_WIDE, entry: { jobId: first, address: undefined, reason: 'bounced' } }]);
      expect(await store.entriesOf(hashed('b@x.org'))).toStrictEqual([{ scope: ACCOUNT_WIDE, entry: { jobId: first, address: undefined } }]);
      const view = viewOf(store);
      if (view) expect(view.entrySync(ACCOUNT_WIDE, 'c@x.org', hashed('c@x.org').h1)).toStrictEqual({ jobId: first, address: undefined, reason: 'complaint' });
      if (store.supports.feed) {
        const follower = new Follower();
        await follower.follow(store, 0);
        await follower.expectSameAs(store);
        const snapshot = new Follower();
        for await (const part of store.feedSnapshot()) snapshot.apply({ ...part, del: [] });
        await snapshot.expectSameAs(store);
      }
      // A later import holds a@x.org (its own reason for it is not stored: opt-out wins, the entry stays).
      const second = await importKeys(store, ACCOUNT_WIDE, ['a@x.org'], new Map([['a@x.org', 'manual']]));
      expect((await store.entriesOf(hashed('a@x.org')))[0]?.entry).toStrictEqual({ jobId: first, address: undefined, reason: 'bounced' });
      expect((await removeKey(store, ACCOUNT_WIDE, 'c@x.org')).entry).toStrictEqual({ jobId: first, address: undefined, reason: 'complaint' });
      // Rolled back, the entry another job held passes to it with its reason; the others go.
      await rollbackJob(store, first, 'contract');
      expect(await entries(store)).toStrictEqual([{ scope: ACCOUNT_WIDE, key: 'a@x.org', jobId: second, address: undefined, reason: 'bounced' }]);
      if (store.supports.feed) {
        const follower = new Follower();
        await follower.follow(store, 0);
        await follower.expectSameAs(store);
      }
      await expectConsistent(store);
    });

    it('keeps scopes apart: a unit, another unit and account-wide are separate scopes', async () => {
      await addKey(store, 'unitA', 'a@x.org');
      const h = hashed('a@x.org');
      expect(await store.presentKeys([chunkKey(store.chunkKeyCodec('unitB'), 'a@x.org')])).toEqual([false]);
      expect(await store.presentKeys([chunkKey(store.chunkKeyCodec(ACCOUNT_WIDE), 'a@x.org')])).toEqual([false]);
      expect((await store.entriesOf(h)).map((e) => e.scope)).toEqual(['unitA']);
      expect(await entries(store, 'unitB')).toEqual([]);
      expect(await failureCode(() => removeKey(store, 'unitB', 'a@x.org'))).toBe('OPTOUT_ERR_NOT_SUPPRESSED');
      expect((await addKey(store, ACCOUNT_WIDE, 'a@x.org')).added).toBe(true);
      await importKeys(store, 'unitB', ['a@x.org']);
      expect((await store.entriesOf(h)).map((e) => e.scope)).toEqual([ACCOUNT_WIDE, 'unitA', 'unitB']);
      expect(Object.fromEntries([...(await store.scopeCounts())].filter(([, n]) => n > 0))).toEqual({ [ACCOUNT_WIDE]: 1, unitA: 1, unitB: 1 });
      await expectConsistent(store);
    });

    it('looks up many keys at once, in input order, each as entriesOf finds it', async () => {
      await addKey(store, 'unitA', 'a@x.org', 'A@x.org');
      await addKey(store, ACCOUNT_WIDE, 'a@x.org');
      await importKeys(store, 'unitB', ['b@x.org', 'a@x.org']);
      const keys = ['b@x.org', 'none@x.org', 'a@x.org', 'b@x.org'].map(hashed);
      const many = await store.entriesOfMany(keys);
      expect(many).toHaveLength(4);
      for (const [i, k] of keys.entries()) expect(many[i]).toEqual(await store.entriesOf(k));
      expect(many[1]).toEqual([]);
      expect(many[2]?.map((e) => e.scope)).toEqual([ACCOUNT_WIDE, 'unitA', 'unitB']);
      expect(many[2]?.[1]?.entry.address).toBe('A@x.org');
      expect(await store.entriesOfMany([])).toEqual([]);
      // Past one query's page of keys: every key still answered, in order.
      const bulk = Array.from({ length: 12_001 }, (_, i) => hashed(`k${i}@x.org`));
      const bulkFound = await store.entriesOfMany([...bulk, hashed('a@x.org')]);
      expect(bulkFound).toHaveLength(12_002);
      expect(bulkFound.slice(0, -1).every((e) => e.length === 0)).toBe(true);
      expect(bulkFound.at(-1)?.length).toBe(3);
    });

    it('has a work folder and measures its storage', async () => {
      expect(typeof store.workDir).toBe('string');
      expect(store.workDir.length).toBeGreaterThan(0);
      expect(await store.storageBytes()).toBeGreaterThanOrEqual(0);
    });

    it.runIf(supports.syncLookups)('sync lookups see exactly the scope asked', async () => {
      const view = viewOf(store) as CheckView;
      await addKey(store, 'unitA', 'a@x.org', 'A+x@x.org');
      const { h1 } = hashed('a@x.org');
      expect(view.entrySync('unitA', 'a@x.org', h1)).toMatchObject({ address: 'A+x@x.org' });
      expect(view.entrySync('unitB', 'a@x.org', h1)).toBeUndefined();
      expect(view.entrySync(ACCOUNT_WIDE, 'a@x.org', h1)).toBeUndefined();
    });

    it('lets opt-out win: a later import or add of a present key holds it, never replaces it', async () => {
      const owner = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org']);
      const later = await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'c@x.org']);
      const add = await addKey(store, ACCOUNT_WIDE, 'a@x.org', 'A@x.org');
      expect(add.added).toBe(false);
      expect(await owners(store)).toEqual({ '* a@x.org': owner, '* b@x.org': owner, '* c@x.org': later });
      expect((await entries(store)).find((e) => e.key === 'a@x.org')?.address).toBeUndefined();
      expect(await countOf(store, ACCOUNT_WIDE)).toBe(3);
      await expectConsistent(store);
      const removed = await removeKey(store, ACCOUNT_WIDE, 'a@x.org');
      expect(removed.entry.jobId).toBe(owner);
      expect([...removed.heldBy].sort()).toEqual([later, add.job].sort());
      expect(await countOf(store, ACCOUNT_WIDE)).toBe(2);
    });

    describe('rollback', () => {
      it('passes an entry to the earliest remaining holder, by job number', async () => {
        // Job ids 1..7 first, so that holders 9 and 10 order differently as numbers and as text.
        for (let i = 0; i < 7; i++) await store.createJob(importFields('unitX'));
        const owner = await importKeys(store, ACCOUNT_WIDE, ['k@x.org', 'only@x.org']);
        const nine = await importKeys(store, ACCOUNT_WIDE, ['k@x.org']);
        const ten = (await addKey(store, ACCOUNT_WIDE, 'k@x.org')).job;
        const eleven = await importKeys(store, ACCOUNT_WIDE, ['k@x.org']);
        expect([owner, nine, ten, eleven]).toEqual(['8', '9', '10', '11']);

        expect(await rollbackJob(store, owner)).toEqual({ job: owner, removed: 1, kept: 1, holdsReleased: 0 });
        expect(await owners(store)).toEqual({ '* k@x.org': nine });
        // A holder rolled back before the owner only lets go of its hold.
        expect(await rollbackJob(store, ten)).toEqual({ job: ten, removed: 0, kept: 0, holdsReleased: 1 });
        expect(await owners(store)).toEqual({ '* k@x.org': nine });
        expect(await rollbackJob(store, nine)).toEqual({ job: nine, removed: 0, kept: 1, holdsReleased: 0 });
        expect(await owners(store)).toEqual({ '* k@x.org': eleven });
        expect(await countOf(store, ACCOUNT_WIDE)).toBe(1);
        expect(await rollbackJob(store, eleven)).toEqual({ job: eleven, removed: 1, kept: 0, holdsReleased: 0 });
        expect(await owners(store)).toEqual({});
        expect((await countOf(store, ACCOUNT_WIDE)) ?? 0).toBe(0);
        for (const id of [owner, nine, ten, eleven]) expect((await store.getJob(id))?.state).toBe('rolled_back');
        await expectConsistent(store);
      });

      it('releases the job\'s own holds: the entries it held stay with their owners, for good', async () => {
        const first = await importKeys(store, 'unitA', ['a@x.org']);
        const second = await importKeys(store, 'unitA', ['a@x.org', 'b@x.org']);
        expect(await rollbackJob(store, second)).toEqual({ job: second, removed: 1, kept: 0, holdsReleased: 1 });
        expect(await owners(store)).toEqual({ 'unitA a@x.org': first });
        expect(await rollbackJob(store, first)).toEqual({ job: first, removed: 1, kept: 0, holdsReleased: 0 });
        expect(await owners(store)).toEqual({});
        expect((await countOf(store, 'unitA')) ?? 0).toBe(0);
      });

      it('passes nothing to a job whose hold a removal ended', async () => {
        const first = await importKeys(store, ACCOUNT_WIDE, ['a@x.org']);
        const holder = await importKeys(store, ACCOUNT_WIDE, ['a@x.org']);
        expect((await removeKey(store, ACCOUNT_WIDE, 'a@x.org')).heldBy).toEqual([holder]);
        const again = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        expect(again.added).toBe(true);
        expect(await rollbackJob(store, again.job)).toEqual({ job: again.job, removed: 1, kept: 0, holdsReleased: 0 });
        expect(await owners(store)).toEqual({});
        expect(await rollbackJob(store, holder)).toEqual({ job: holder, removed: 0, kept: 0, holdsReleased: 0 });
        expect(await rollbackJob(store, first)).toEqual({ job: first, removed: 0, kept: 0, holdsReleased: 0 });
        await expectConsistent(store);
      });

      it('undoes a single add, and an add that only held its key', async () => {
        const add = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        const held = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        expect(held.added).toBe(false);
        expect(await rollbackJob(store, held.job)).toEqual({ job: held.job, removed: 0, kept: 0, holdsReleased: 1 });
        expect(await owners(store)).toEqual({ '* a@x.org': add.job });
        expect(await rollbackJob(store, add.job)).toEqual({ job: add.job, removed: 1, kept: 0, holdsReleased: 0 });
        expect(await owners(store)).toEqual({});
        expect(await store.getJob(add.job)).toMatchObject({ kind: 'add', state: 'rolled_back' });
        await expectConsistent(store);
      });
    });

    describe('audit', () => {
      it('records every change, in order, readable from an id and by key', async () => {
        const add = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        await addKey(store, 'unitA', 'b@x.org');
        await removeKey(store, 'unitA', 'b@x.org');
        await rollbackJob(store, add.job, 'contract');
        const apiKey = apiKeyRecord('k1');
        await store.putApiKey(apiKey, auditOf(store, 'key.create', null, null));
        await store.putApiKey({ ...apiKey, revokedAt: new Date().toISOString() }, auditOf(store, 'key.revoke', null, null));
        const sync = await store.createSync((id) => syncRecord(id), () => auditOf(store, 'sync.add', null, null));
        await store.deleteSync(sync.id, auditOf(store, 'sync.remove', null, null));
        await store.appendAudit([auditOf(store, 'legal_basis', 'a@x.org', null)]);

        const all = await audits(store);
        expect(all.map((r) => r.action)).toEqual(['add', 'add', 'remove', 'rollback', 'key.create', 'key.revoke', 'sync.add', 'sync.remove', 'legal_basis']);
        expect(all.map((r) => r.id)).toEqual(all.map((r) => r.id).sort());
        expect(all[0]).toMatchObject({ key: 'a@x.org', job: add.job, unit: null });
        expect(all[3]).toMatchObject({ action: 'rollback', key: 'a@x.org', job: add.job });
        expect((await audits(store, (all[4] as AuditRecord).id)).map((r) => r.action)).toEqual(all.slice(4).map((r) => r.action));
        expect((await audits(store, '0', 'a@x.org')).map((r) => r.action)).toEqual(['add', 'rollback', 'legal_basis']);
        expect((await audits(store, '0', 'b@x.org')).map((r) => r.action)).toEqual(['add', 'remove']);
        expect(await audits(store, (all[3] as AuditRecord).id, 'b@x.org')).toEqual([]);
        expect(await audits(store, '0', 'nobody@x.org')).toEqual([]);
      });

      it('writes nothing for a removal of an absent key', async () => {
        await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        const before = { audit: await audits(store), owners: await owners(store), total: await totalOf(store) };
        expect(await failureCode(() => removeKey(store, ACCOUNT_WIDE, 'b@x.org'))).toBe('OPTOUT_ERR_NOT_SUPPRESSED');
        expect(await failureCode(() => removeKey(store, 'unitA', 'a@x.org'))).toBe('OPTOUT_ERR_NOT_SUPPRESSED');
        expect({ audit: await audits(store), owners: await owners(store), total: await totalOf(store) }).toEqual(before);
      });
    });

    it('keeps counts, scans, lookups and the filter in agreement after any changes (model-based)', async () => {
      // One store for every run, each run in scopes of its own: the store grows as runs go by
      // (job ids pass 9, 99, 999), and no run pays for opening a store.
      let run = 0;
      // A view with a key index answers from it: every change below must reach it.
      const view = viewOf(store);
      if (view !== undefined && 'indexKeys' in view) expect(await (view as { indexKeys(): Promise<boolean> }).indexKeys()).toBe(true);
      const key = fc.integer({ min: 0, max: 2 }).map((i) => `k${i}@x.org`);
      const scope = fc.constantFrom(0, 1);
      const command = fc.oneof(
        fc.record({ op: fc.constant('add' as const), scope, key }),
        fc.record({ op: fc.constant('remove' as const), scope, key }),
        fc.record({ op: fc.constant('import' as const), scope, keys: fc.uniqueArray(key, { minLength: 1, maxLength: 3 }) }),
        fc.record({ op: fc.constant('rollback' as const), pick: fc.nat() }),
      );
      await fc.assert(fc.asyncProperty(fc.array(command, { maxLength: 16 }), async (commands) => {
        const scopes = ['a', 'b'].map((s) => `run${++run}${s}`);
        const model = new Model();
        for (const c of commands) {
          if (c.op === 'add') {
            const outcome = await addKey(store, scopes[c.scope] as string, c.key);
            expect(outcome.added).toBe(model.store(scopes[c.scope] as string, c.key, outcome.job));
          } else if (c.op === 'remove') {
            const code = await failureCode(() => removeKey(store, scopes[c.scope] as string, c.key));
            expect(code).toBe(model.remove(scopes[c.scope] as string, c.key) ? undefined : 'OPTOUT_ERR_NOT_SUPPRESSED');
          } else if (c.op === 'import') {
            const id = await importKeys(store, scopes[c.scope] as string, c.keys);
            for (const k of c.keys) model.store(scopes[c.scope] as string, k, id);
          } else {
            const live = model.liveJobs();
            const job = live[c.pick % Math.max(1, live.length)];
            if (job === undefined) continue;
            const { job: _id, ...counts } = await rollbackJob(store, job.id);
            expect(counts).toEqual(model.rollback(job));
          }
        }
        const stored = Object.entries(await owners(store)).filter(([at]) => scopes.some((s) => at.startsWith(s + ' ')));
        expect(Object.fromEntries(stored)).toEqual(model.owners());
        await expectConsistent(store, scopes);
        if (view !== undefined) {
          for (const s of scopes) {
            for (let i = 0; i <= 2; i++) {
              const k = `k${i}@x.org`;
              if (!(`${s} ${k}` in model.owners())) expect(matchOf(view, s, k), `no match of ${s} ${k}`).toBeUndefined();
            }
          }
        }
        // A ledger without a local view (PostgreSQL) pays round trips for every step: the same
        // model runs 300 times on the embedded backends, where the logic is the same.
      }), { numRuns: store.supports.syncLookups ? 300 : 100 });
      await expectConsistent(store);
    }, 240_000);

    describe('jobs', () => {
      it('round-trip, with ids from one increasing sequence shared with single adds', async () => {
        const a = await store.createJob(importFields(ACCOUNT_WIDE), (j) => ({ ...j, source: `job-${j.id}` }));
        const add = await addKey(store, 'unitA', 'a@x.org');
        const b = await store.createJob(importFields('unitB'));
        expect(a.source).toBe(`job-${a.id}`);
        expect(Number(add.job)).toBeGreaterThan(Number(a.id));
        expect(Number(b.id)).toBeGreaterThan(Number(add.job));
        expect(await store.getJob(a.id)).toEqual(a);
        const updated: AnyJob = { ...b, state: 'failed', error: { code: 'OPTOUT_ERR_SOURCE', message: 'gone' } };
        await store.putJob(updated);
        expect(await store.getJob(b.id)).toEqual(updated);
        expect(await store.getJob('999')).toBeUndefined();
        expect((await store.listJobs()).map((j) => [j.id, j.kind])).toEqual([[a.id, 'import'], [add.job, 'add'], [b.id, 'import']]);
        expect((await store.listImports()).map((j) => j.id)).toEqual([a.id, b.id]);
        // Reads are copies: changing one changes nothing stored.
        ((await store.getJob(a.id)) as JobRecord).checkpoint.bucket = 42;
        expect(await store.getJob(a.id)).toEqual(a);
      });

      it.runIf(supports.syncLookups)('give entries their metadata (a placeholder for an unknown job)', async () => {
        const view = viewOf(store) as CheckView;
        const add = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
        const job = await store.getJob(add.job);
        expect(view.jobMetaSync(add.job)).toEqual({ reason: 'manual', source: 'contract', addedAt: job?.createdAt });
        expect(view.jobMetaSync('999')).toEqual({ reason: 'unknown', source: 'unknown', addedAt: '' });
      });
    });

    it('stores API keys: round-trip, revocation, listing in id order', async () => {
      const k2 = apiKeyRecord('b2');
      const k1 = apiKeyRecord('a1');
      await store.putApiKey(k2, auditOf(store, 'key.create', null, null));
      await store.putApiKey(k1, auditOf(store, 'key.create', null, null));
      expect(await store.getApiKey('a1')).toEqual(k1);
      expect(await store.getApiKey('zz')).toBeUndefined();
      const revoked = { ...k1, revokedAt: new Date().toISOString() };
      await store.putApiKey(revoked, auditOf(store, 'key.revoke', null, null));
      expect(await store.listApiKeys()).toEqual([revoked, k2]);
      const view = viewOf(store);
      if (view) {
        expect(view.apiKeySync('a1')).toEqual(revoked);
        expect(view.apiKeySync('zz')).toBeUndefined();
      }
    });

    it('stores syncs: ids from a sequence, round-trip, update, delete', async () => {
      const one = await store.createSync((id) => syncRecord(id), () => auditOf(store, 'sync.add', null, null));
      const two = await store.createSync((id) => syncRecord(id), () => auditOf(store, 'sync.add', null, null));
      expect([one.id, two.id]).toEqual(['1', '2']);
      expect(await store.getSync('1')).toEqual(one);
      const ran: SyncRecord = { ...two, etag: '"v2"', lastStatus: 'fetched', lastRunAt: new Date().toISOString() };
      await store.putSync(ran);
      expect(await store.listSyncs()).toEqual([one, ran]);
      await store.deleteSync('1', auditOf(store, 'sync.remove', null, null));
      expect(await store.getSync('1')).toBeUndefined();
      expect(await store.listSyncs()).toEqual([ran]);
      const three = await store.createSync((id) => syncRecord(id), () => auditOf(store, 'sync.add', null, null));
      expect(three.id).toBe('3');
    });

    it('claims a due sync run once: only from the due time it still has, whatever the others ask', async () => {
      const due = new Date(Date.now() - 1000).toISOString();
      const later = new Date(Date.now() + 60_000).toISOString();
      const sync = await store.createSync((id) => ({ ...syncRecord(id), everyMs: 60_000, nextRunAt: due }), () => auditOf(store, 'sync.add', null, null));
      const claims = await Promise.all([0, 1, 2, 3].map((i) => store.claimSync(sync.id, due, new Date(Date.parse(later) + i).toISOString())));
      expect(claims.filter(Boolean)).toHaveLength(1);
      const winner = claims.indexOf(true);
      expect(await store.getSync(sync.id)).toEqual({ ...sync, nextRunAt: new Date(Date.parse(later) + winner).toISOString() });
      // A claim from a stale read, of an unknown sync, or of an id no backend could hold, moves nothing.
      expect(await store.claimSync(sync.id, due, later)).toBe(false);
      expect(await store.claimSync('99', due, later)).toBe(false);
      expect(await store.claimSync('x', due, later)).toBe(false);
      expect((await store.getSync(sync.id))?.nextRunAt).toBe(new Date(Date.parse(later) + winner).toISOString());
    });

    it('stores records by kind: round-trip, update, list in id order, delete, each audited', async () => {
      const before = (await audits(store)).length;
      await store.putRecord('link-key', 'k2', { secret: 'two', createdAt: 2 }, auditOf(store, 'key.create', null, null));
      await store.putRecord('link-key', 'k1', { secret: 'one' }, auditOf(store, 'key.create', null, null));
      await store.putRecord('inbound', 'k1', { provider: 'mailgun' }, undefined);
      expect(await store.getRecord('link-key', 'k1')).toEqual({ secret: 'one' });
      expect(await store.getRecord('link-key', 'k3')).toBeUndefined();
      await store.putRecord('link-key', 'k1', { secret: 'one', retiredAt: 5 }, undefined);
      expect(await store.listRecords('link-key')).toEqual([
        { id: 'k1', value: { secret: 'one', retiredAt: 5 } }, { id: 'k2', value: { secret: 'two', createdAt: 2 } },
      ]);
      expect(await store.listRecords('inbound')).toEqual([{ id: 'k1', value: { provider: 'mailgun' } }]);
      await store.deleteRecord('link-key', 'k2', auditOf(store, 'key.revoke', null, null));
      await store.deleteRecord('link-key', 'absent', undefined);
      expect(await store.listRecords('link-key')).toEqual([{ id: 'k1', value: { secret: 'one', retiredAt: 5 } }]);
      expect((await audits(store)).length - before).toBe(3);
      // Kinds and ids are checked: a backend's keys never see a separator or an unknown kind.
      expect(await failureCode(() => store.putRecord('nope' as 'inbound', 'a', {}, undefined))).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect(await failureCode(() => store.getRecord('inbound', 'a\u0000b'))).toBe('OPTOUT_ERR_INVALID_OPTION');
    });

    describe('delivered events', () => {
      function event(id: string, ...keys: Array<[string, string]>): DeliveredEvent {
        return {
          id,
          adds: keys.map(([scope, key]) => ({ ...hashed(key), scope, address: key, reason: 'bounced' as const, source: 'contract-webhook', actor: 'contract' })),
        };
      }
      const auditAdd = (add: NewSuppression, outcome: AddOutcome, eventId: string): AuditRecord =>
        store.audit({ actor: 'contract', action: 'add', key: add.key, job: outcome.job, unit: null, details: { event: eventId, alreadySuppressed: !outcome.added } });

      it('writes each event once: a batch again, or an id seen earlier in the batch, adds nothing and audits nothing', async () => {
        await addKey(store, ACCOUNT_WIDE, 'held@x.org');
        const before = (await audits(store)).length;
        const batch = [
          event('ep:1', [ACCOUNT_WIDE, 'a@x.org'], [ACCOUNT_WIDE, 'b@x.org']),
          event('ep:2', [ACCOUNT_WIDE, 'held@x.org']),
          event('ep:1', [ACCOUNT_WIDE, 'c@x.org']),
          event('ep:3'),
          event('ep:4', ['unitA', 'a@x.org'], ['unitA', 'a@x.org']),
        ];
        const first = await store.addEvents(batch, auditAdd);
        expect(first.map((o) => [o.id, o.duplicate, o.adds.map((a) => a.added)])).toEqual([
          ['ep:1', false, [true, true]], ['ep:2', false, [false]], ['ep:1', true, []], ['ep:3', false, []], ['ep:4', false, [true, false]],
        ]);
        expect(Object.keys(await owners(store)).sort()).toEqual(['* a@x.org', '* b@x.org', '* held@x.org', 'unitA a@x.org']);
        const written = (await audits(store)).slice(before);
        expect(written.map((r) => [r.key, r.details['event']])).toEqual([
          ['a@x.org', 'ep:1'], ['b@x.org', 'ep:1'], ['held@x.org', 'ep:2'], ['a@x.org', 'ep:4'], ['a@x.org', 'ep:4'],
        ]);
        // Each add is a job: the entry's reason and source are its own.
        const job = await store.getJob(first[0]?.adds[0]?.job as string);
        expect(job).toMatchObject({ kind: 'add', reason: 'bounced', source: 'contract-webhook', key: 'a@x.org' });
        const head = supports.feed ? await store.head() : 0;

        const again = await store.addEvents(batch, auditAdd);
        expect(again.every((o) => o.duplicate)).toBe(true);
        expect((await audits(store)).length - before).toBe(5);
        if (supports.feed) expect(await store.head()).toBe(head);
        await expectConsistent(store);
      });

      it('writes a batch of 1,000 events as one change', async () => {
        const batch = Array.from({ length: 1000 }, (_, i) => event(`sg:${i}`, [ACCOUNT_WIDE, `u${i}@x.org`]));
        const head = supports.feed ? await store.head() : 0;
        const out = await store.addEvents(batch, auditAdd);
        expect(out.filter((o) => o.adds[0]?.added === true)).toHaveLength(1000);
        expect(await countOf(store, ACCOUNT_WIDE)).toBe(1000);
        if (supports.feed) {
          expect(await store.head()).toBe(head + 1);
          const [change] = await store.changesSince(head, 10);
          expect(change?.put).toHaveLength(1000);
        }
        await expectConsistent(store);
      });

      it('refuses an event id a ledger cannot keep', async () => {
        expect(await failureCode(() => store.addEvents([event('')], auditAdd))).toBe('OPTOUT_ERR_INVALID_OPTION');
        expect(await failureCode(() => store.addEvents([event('a\u0000b')], auditAdd))).toBe('OPTOUT_ERR_INVALID_OPTION');
      });
    });

    it('fails every call with OPTOUT_ERR_STORE_NOT_OPEN once closed', async () => {
      const add = await addKey(store, ACCOUNT_WIDE, 'a@x.org');
      await store.putApiKey(apiKeyRecord('a1'), auditOf(store, 'key.create', null, null));
      const { h1 } = hashed('a@x.org');
      // Read once while open: a cached answer must not outlive the store either.
      const view = viewOf(store);
      view?.jobMetaSync(add.job);
      const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
      const record = auditOf(store, 'legal_basis', 'a@x.org', null);
      const addJob = (await store.getJob(add.job)) as AnyJob;
      await store.close();
      expect(store.isOpen).toBe(false);
      const calls: Record<string, () => unknown> = {
        scopeCounts: () => store.scopeCounts(),
        getJob: () => store.getJob(add.job),
        listJobs: () => store.listJobs(),
        // None stored: an empty answer would hide that the store is closed.
        listImports: () => store.listImports(),
        createJob: () => store.createJob(importFields(ACCOUNT_WIDE)),
        putJob: () => store.putJob({ ...importFields(ACCOUNT_WIDE), id: '99' }),
        presentKeys: () => store.presentKeys([chunkKey(codec, 'a@x.org')]),
        beginChunk: () => store.beginChunk(ACCOUNT_WIDE, add.job),
        addSuppression: () => store.addSuppression({ ...hashed('b@x.org'), scope: ACCOUNT_WIDE, address: 'b@x.org', reason: 'manual', source: 's', actor: 'a' },
          () => { throw new Error('not reached'); }),
        removeSuppression: () => store.removeSuppression(ACCOUNT_WIDE, hashed('a@x.org'), () => { throw new Error('not reached'); }),
        entriesOf: () => store.entriesOf(hashed('a@x.org')),
        entriesOfMany: () => store.entriesOfMany([hashed('a@x.org')]),
        storageBytes: () => store.storageBytes(),
        scanEntries: () => entries(store),
        auditRecords: () => audits(store),
        getApiKey: () => store.getApiKey('a1'),
        listApiKeys: () => store.listApiKeys(),
        appendAudit: () => store.appendAudit([record]),
        rollbackJob: () => store.rollbackJob(addJob, () => record),
        createSync: () => store.createSync((id) => syncRecord(id), () => record),
        listSyncs: () => store.listSyncs(),
        putRecord: () => store.putRecord('inbound', 'a', {}, undefined),
        getRecord: () => store.getRecord('inbound', 'a'),
        listRecords: () => store.listRecords('inbound'),
        deleteRecord: () => store.deleteRecord('inbound', 'a', undefined),
      };
      if (store.supports.feed) Object.assign(calls, { head: () => store.head(), changesSince: () => store.changesSince(0, 10) });
      if (view) {
        Object.assign(calls, {
          filter: () => view.filter(),
          entrySync: () => view.entrySync(ACCOUNT_WIDE, 'a@x.org', h1),
          matchSync: () => view.matchSync(ACCOUNT_WIDE, 'a@x.org', h1, 0),
          jobMetaSync: () => view.jobMetaSync(add.job),
          apiKeySync: () => view.apiKeySync('a1'),
        });
      }
      const codes: Record<string, unknown> = {};
      for (const [method, call] of Object.entries(calls)) codes[method] = await failureCode(call);
      expect(codes).toEqual(Object.fromEntries(Object.keys(calls).map((m) => [m, NOT_OPEN])));
    });
  });
}

/** What a follower of the feed holds: entries, the metadata of their jobs, API keys. */
class Follower {
  readonly #entries = new Map<string, StoredEntry>();
  readonly #metas = new Map<string, unknown>();
  readonly #apiKeys = new Map<string, StoredApiKey>();

  apply(c: Omit<Change, 'seq'>): void {
    for (const d of c.del) this.#entries.delete(`${d.scope} ${d.key}`);
    for (const p of c.put) this.#entries.set(`${p.scope} ${p.key}`, entryOf(p));
    for (const j of c.jobs) this.#metas.set(j.id, j.meta);
    for (const k of c.apiKeys) this.#apiKeys.set(k.id, k);
  }

  /** Applies the changes after `after`, read in pages of three; gives their positions. */
  async follow(store: Ledger, after: number): Promise<number[]> {
    const seqs: number[] = [];
    for (;;) {
      const page: Change[] = await store.changesSince(after, 3);
      if (page.length === 0) return seqs;
      for (const c of page) {
        seqs.push(c.seq);
        this.apply(c);
      }
      after = page.at(-1)?.seq as number;
    }
  }

  keys(): string[] {
    return [...this.#entries.keys()].sort();
  }

  async expectSameAs(store: Ledger): Promise<void> {
    const stored = await entries(store);
    expect(Object.fromEntries(this.#entries)).toStrictEqual(Object.fromEntries(stored.map((e) => [`${e.scope} ${e.key}`, entryOf(e)])));
    for (const e of stored) expect(this.#metas.get(e.jobId), e.jobId).toEqual(jobMetaOf(await store.getJob(e.jobId)));
    expect([...this.#apiKeys.values()]).toEqual(await store.listApiKeys());
  }
}

function apiKeyRecord(id: string): StoredApiKey {
  return { id, unit: null, scope: 'check', rateLimit: null, createdAt: new Date().toISOString(), revokedAt: null, hash: 'ab'.repeat(32) };
}

function syncRecord(id: string): SyncRecord {
  return {
    id, url: 'https://lists.example.org/optouts.csv?token=secret', label: 'https://lists.example.org/optouts.csv', column: null, unit: null,
    reason: 'unsubscribed', everyMs: null, allowPrivate: false, createdAt: new Date().toISOString(), createdBy: 'contract',
    etag: null, lastModified: null, lastRunAt: null, lastStatus: null, lastJobId: null, lastError: null, nextRunAt: null,
  };
}

/** What the store should hold, for the model-based case: owners, holders, and the jobs that may be rolled back. */
class Model {
  readonly #owner = new Map<string, string>();
  readonly #holders = new Map<string, Set<string>>();
  readonly #jobs: Array<{ id: string; scope: string; live: boolean }> = [];

  /** Stores or holds `key` for `job`; true when it was a new entry. */
  store(scope: string, key: string, job: string): boolean {
    if (!this.#jobs.some((j) => j.id === job)) this.#jobs.push({ id: job, scope, live: true });
    const at = `${scope} ${key}`;
    if (!this.#owner.has(at)) {
      this.#owner.set(at, job);
      return true;
    }
    this.#holders.set(at, (this.#holders.get(at) ?? new Set()).add(job));
    return false;
  }

  remove(scope: string, key: string): boolean {
    const at = `${scope} ${key}`;
    this.#holders.delete(at);
    return this.#owner.delete(at);
  }

  liveJobs(): Array<{ id: string; scope: string }> {
    return this.#jobs.filter((j) => j.live);
  }

  rollback(job: { id: string; scope: string }): { removed: number; kept: number; holdsReleased: number } {
    const counts = { removed: 0, kept: 0, holdsReleased: 0 };
    for (const [at, holders] of this.#holders) {
      if (at.startsWith(job.scope + ' ') && holders.delete(job.id)) counts.holdsReleased++;
    }
    for (const [at, owner] of this.#owner) {
      if (owner !== job.id) continue;
      const heirs = [...(this.#holders.get(at) ?? [])].sort((a, b) => Number(a) - Number(b));
      if (heirs[0] === undefined) {
        this.#owner.delete(at);
        counts.removed++;
      } else {
        this.#owner.set(at, heirs[0]);
        this.#holders.get(at)?.delete(heirs[0]);
        counts.kept++;
      }
    }
    (this.#jobs.find((j) => j.id === job.id) as { live: boolean }).live = false;
    return counts;
  }

  owners(): Record<string, string> {
    return Object.fromEntries(this.#owner);
  }
}
