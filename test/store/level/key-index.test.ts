/**
 * The key index (src/store/level/key-index.ts): never "absent" for a stored entry, against a
 * model with fingerprints made to collide; and in a LevelStore, built from a scan while
 * changes commit, or loaded from its snapshot (key-index-snapshot.ts) only when the snapshot is
 * the store's current generation, agreeing with LevelDB entry for entry.
 */
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KeyIndex, KeyIndexChanges, UNSURE } from '../../../src/store/level/key-index.js';
import { encodeEntryValue, filterLogKey } from '../../../src/store/level/keys.js';
import { LevelStore } from '../../../src/store/level/level-store.js';
import { SUPPRESSION_REASONS, type SuppressionReason } from '../../../src/store/jobs.js';
import { ACCOUNT_WIDE, type EntryMatch } from '../../../src/store/store.js';
import { hashed, importKeys, addKey, removeKey, entries } from '../ledger-writes.js';
import { rollbackJob } from '../../../src/manage/rollback.js';
import { removeTempDirs, tempDir } from '../../helpers.js';

afterEach(removeTempDirs);

/**
 * Key `i`'s fingerprint: keys 0-4 share one (h1, h2), 5-9 another, and so on, so that puts and
 * removals of distinct keys meet in one slot; the h2s are also close, so that probes run on.
 */
function fingerprint(i: number): [number, number] {
  const f = Math.floor(i / 5);
  return [(f * 0x9e3779b1) >>> 0, f & 3];
}

describe('KeyIndex', () => {
  it('answers every stored key with its own entry or "unsure", and an unstored one with nothing, "unsure" or a colliding entry (model-based)', () => {
    const scope = fc.constantFrom('*', 'unitA');
    const value = fc.record({ jobId: fc.constantFrom('1', '2', '17'), reason: fc.option(fc.constantFrom(...SUPPRESSION_REASONS), { nil: undefined }) });
    const key = fc.integer({ min: 0, max: 29 });
    const command = fc.oneof(
      fc.record({ op: fc.constant('put' as const), scope, key, value }),
      fc.record({ op: fc.constant('remove' as const), scope, key }),
    );
    fc.assert(fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
      const index = new KeyIndex();
      const model = new Map<string, EntryMatch>();
      for (const c of commands) {
        const [h1, h2] = fingerprint(c.key);
        if (c.op === 'put') {
          index.put(c.scope, h1, h2, c.value.jobId, c.value.reason);
          model.set(`${c.scope} ${c.key}`, c.value.reason === undefined ? { jobId: c.value.jobId } : c.value);
        } else {
          index.remove(c.scope, h1, h2);
          model.delete(`${c.scope} ${c.key}`);
        }
      }
      for (const s of ['*', 'unitA']) {
        for (let k = 0; k < 30; k++) {
          const [h1, h2] = fingerprint(k);
          const got = index.match(s, h1, h2);
          const own = model.get(`${s} ${k}`);
          if (own !== undefined) {
            expect(got, `stored ${s} ${k}`).not.toBeUndefined();
            if (got !== UNSURE) expect(got).toEqual(own);
          } else if (got !== undefined && got !== UNSURE) {
            const sharing = [...model].filter(([at]) => at.startsWith(`${s} `) && Math.floor(Number(at.split(' ')[1]) / 5) === Math.floor(k / 5));
            expect(sharing.map(([, v]) => v), `${s} ${k} answered as a key it collides with`).toContainEqual(got);
          }
        }
      }
    }), { numRuns: 2000 });
  });

  it('answers exactly, with nothing unsure, while no two keys collide and none was removed, through growth', () => {
    const index = new KeyIndex();
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      const { h1, h2 } = hashed(`u${i}@x.org`);
      index.put(i % 2 === 0 ? ACCOUNT_WIDE : 'unitA', h1, h2, String(i % 7), SUPPRESSION_REASONS[i % 5]);
    }
    expect(index.size).toBe(n);
    for (let i = 0; i < n; i++) {
      const { h1, h2 } = hashed(`u${i}@x.org`);
      const reason = SUPPRESSION_REASONS[i % 5];
      expect(index.match(i % 2 === 0 ? ACCOUNT_WIDE : 'unitA', h1, h2)).toEqual(reason === undefined ? { jobId: String(i % 7) } : { jobId: String(i % 7), reason });
      expect(index.match(i % 2 === 0 ? 'unitA' : ACCOUNT_WIDE, h1, h2)).toBeUndefined();
    }
  });

  it('applies recorded changes in order, values as LevelDB holds them (a chunk\'s shared bytes, an address, a reason)', () => {
    const index = new KeyIndex();
    const changes = new KeyIndexChanges();
    const plain = Buffer.from('12');
    const [a, b, c] = ['a@x.org', 'b@x.org', 'c@x.org'].map(hashed) as [ReturnType<typeof hashed>, ReturnType<typeof hashed>, ReturnType<typeof hashed>];
    changes.put('*', a.h1, a.h2, plain);
    changes.put('*', b.h1, b.h2, plain);
    changes.put('*', c.h1, c.h2, encodeEntryValue('13', 'C+x@x.org', 'bounced'));
    changes.put('u', a.h1, a.h2, encodeEntryValue('14', 'A@x.org'));
    changes.remove('*', b.h1, b.h2);
    index.apply(changes);
    expect(index.match('*', a.h1, a.h2)).toEqual({ jobId: '12' });
    expect(index.match('*', b.h1, b.h2)).toBe(UNSURE);
    expect(index.match('*', c.h1, c.h2)).toEqual({ jobId: '13', reason: 'bounced' });
    expect(index.match('u', a.h1, a.h2)).toEqual({ jobId: '14' });
    expect(index.match('u', b.h1, b.h2)).toBeUndefined();
  });

  it('leaves a reason it does not know to the store', () => {
    const index = new KeyIndex();
    const a = hashed('a@x.org');
    index.putStored('*', a.h1, a.h2, encodeEntryValue('1', undefined, 'lost' as SuppressionReason));
    expect(index.match('*', a.h1, a.h2)).toBe(UNSURE);
  });
});

/** matchSync agrees with LevelDB for every key ever written, stored or not. */
function expectAgreement(store: LevelStore, keys: readonly string[], scopes: readonly string[]): void {
  for (const scope of scopes) {
    for (const key of keys) {
      const { h1, h2 } = hashed(key);
      const stored = store.entrySync(scope, key, h1);
      const got = store.matchSync(scope, key, h1, h2);
      expect(got && { jobId: got.jobId, reason: got.reason }, `${scope} ${key}`).toEqual(stored && { jobId: stored.jobId, reason: stored.reason });
    }
  }
}

/** Counts the LevelDB reads of `store`'s checks from now on. */
function countReads(store: LevelStore): { n: number } {
  const reads = { n: 0 };
  const getSync = store.db.getSync.bind(store.db);
  store.db.getSync = ((key: string) => {
    reads.n++;
    return getSync(key);
  }) as typeof store.db.getSync;
  return reads;
}

describe('LevelStore key index', () => {
  it('is built from a scan while imports, adds, removals and rollbacks commit, and misses none of them', async () => {
    const store = await LevelStore.open(await tempDir('optout-key-index-'));
    try {
      const keys = Array.from({ length: 30_000 }, (_, i) => `u${i}@x.org`);
      const first = await importKeys(store, ACCOUNT_WIDE, keys.slice(0, 20_000), new Map([['u7@x.org', 'complaint']]));
      await importKeys(store, 'unitA', keys.slice(0, 100));
      expect(store.keyIndexed).toBe(false);

      const build = store.indexKeys();
      let duringScan = 0;
      const writes = (async () => {
        // Small changes first: they commit while the scan has pages to go.
        await removeKey(store, ACCOUNT_WIDE, 'u3@x.org');
        if (!store.keyIndexed) duringScan++;
        await addKey(store, 'unitA', 'u25001@x.org', 'U25001+a@x.org');
        if (!store.keyIndexed) duringScan++;
        const late = await importKeys(store, ACCOUNT_WIDE, keys.slice(20_000, 25_000));
        if (!store.keyIndexed) duringScan++;
        await rollbackJob(store, late, 'test');
        if (!store.keyIndexed) duringScan++;
        await importKeys(store, 'unitB', keys.slice(25_000, 25_010), new Map([['u25003@x.org', 'bounced']]));
      })();
      expect(await build).toBe(true);
      await writes;
      // The point of the test: changes that committed while the scan ran.
      expect(duringScan).toBeGreaterThan(0);
      expect(store.keyIndexed).toBe(true);

      await removeKey(store, ACCOUNT_WIDE, 'u4@x.org');
      await rollbackJob(store, first, 'test');
      await addKey(store, ACCOUNT_WIDE, 'u8@x.org');
      await importKeys(store, ACCOUNT_WIDE, keys.slice(29_990));
      expectAgreement(store, keys, [ACCOUNT_WIDE, 'unitA', 'unitB']);
      // Not vacuous: the stores hold what the writes left.
      expect((await entries(store)).length).toBe(100 + 1 + 10 + 1 + 10);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('answers from the index where it can: a stored entry, or one never stored, without a read of LevelDB', async () => {
    const store = await LevelStore.open(await tempDir('optout-key-index-'));
    try {
      await importKeys(store, ACCOUNT_WIDE, ['a@x.org', 'b@x.org']);
      await store.indexKeys();
      const reads = countReads(store);
      const a = hashed('a@x.org');
      expect(store.matchSync(ACCOUNT_WIDE, 'a@x.org', a.h1, a.h2)).toEqual({ jobId: '1' });
      const never = hashed('never@x.org');
      expect(store.matchSync(ACCOUNT_WIDE, 'never@x.org', never.h1, never.h2)).toBeUndefined();
      expect(store.matchSync('unitA', 'a@x.org', a.h1, a.h2)).toBeUndefined();
      expect(reads.n).toBe(0);
      await removeKey(store, ACCOUNT_WIDE, 'a@x.org');
      reads.n = 0;
      expect(store.matchSync(ACCOUNT_WIDE, 'a@x.org', a.h1, a.h2)).toBeUndefined();
      expect(reads.n, 'a removed key is read from LevelDB').toBe(1);
    } finally {
      await store.close();
    }
  });

  it('rejects with OPTOUT_ERR_STORE when a read fails mid-scan, and checks go on reading LevelDB', async () => {
    const store = await LevelStore.open(await tempDir('optout-key-index-'));
    try {
      const keys = Array.from({ length: 3_000 }, (_, i) => `f${i}@x.org`);
      await importKeys(store, ACCOUNT_WIDE, keys);
      const iterator = store.db.iterator.bind(store.db);
      store.db.iterator = ((options: Parameters<typeof iterator>[0]) => {
        const it = iterator(options);
        const nextv = it.nextv.bind(it);
        let pages = 0;
        it.nextv = ((size: number) => (++pages === 2 ? Promise.reject(new Error('disk on fire')) : nextv(size))) as typeof it.nextv;
        return it;
      }) as typeof store.db.iterator;
      const err = await store.indexKeys().then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: 'OPTOUT_ERR_STORE', message: expect.stringContaining('disk on fire') as unknown });
      expect(store.keyIndexed).toBe(false);
      const reads = countReads(store);
      for (const key of keys.slice(0, 100)) {
        const { h1, h2 } = hashed(key);
        expect(store.matchSync(ACCOUNT_WIDE, key, h1, h2), key).toEqual({ jobId: '1' });
      }
      expect(reads.n, 'every listed key read from LevelDB').toBe(100);
    } finally {
      await store.close();
    }
  });

  it('stops building when the store closes', async () => {
    const store = await LevelStore.open(await tempDir('optout-key-index-'));
    await importKeys(store, ACCOUNT_WIDE, Array.from({ length: 20_000 }, (_, i) => `u${i}@x.org`));
    const build = store.indexKeys();
    await store.close();
    expect(await build).toBe(false);
  });
});

describe('LevelStore key index snapshot', () => {
  const keys = Array.from({ length: 5_000 }, (_, i) => `s${i}@x.org`);
  const snapshotOf = (dir: string): string => join(dir, 'key-index.snapshot');

  /** A store whose index was built and saved: two scopes, an entry's own reason, a removed key (an unsure slot). */
  async function savedStore(): Promise<string> {
    const dir = await tempDir('optout-key-index-snapshot-');
    const store = await LevelStore.open(dir);
    await importKeys(store, ACCOUNT_WIDE, keys.slice(0, 4_000), new Map([['s7@x.org', 'complaint']]));
    await importKeys(store, 'unitA', keys.slice(0, 50));
    expect(await store.indexKeys()).toBe(true);
    expect(store.keyIndexSource).toBe('scan');
    await removeKey(store, ACCOUNT_WIDE, 's3@x.org');
    await store.close();
    return dir;
  }

  async function reopened(dir: string): Promise<LevelStore> {
    const store = await LevelStore.open(dir);
    expect(await store.indexKeys()).toBe(true);
    return store;
  }

  /** Reopens the store, whose index must come from `source` and agree with LevelDB on `keyList`; closes it. */
  async function expectReopened(dir: string, source: 'scan' | 'snapshot', keyList: readonly string[], scopes: readonly string[], what?: string): Promise<void> {
    const store = await reopened(dir);
    try {
      expect(store.keyIndexSource, what).toBe(source);
      expectAgreement(store, keyList, scopes);
    } finally {
      await store.close();
    }
  }

  it('is saved when the store closes, and the next build loads it: the same answers, unsure slots still read from LevelDB', async () => {
    const dir = await savedStore();
    const saved = statSync(snapshotOf(dir));
    const store = await reopened(dir);
    try {
      expect(store.keyIndexSource).toBe('snapshot');
      expect(store.keyIndexSize).toBe(4_000 + 50);
      expectAgreement(store, keys, [ACCOUNT_WIDE, 'unitA', 'unitB']);
      const reads = countReads(store);
      const removed = hashed('s3@x.org');
      expect(store.matchSync(ACCOUNT_WIDE, 's3@x.org', removed.h1, removed.h2)).toBeUndefined();
      expect(reads.n, 'the removed key\'s slot stayed unsure').toBe(1);
      const kept = hashed('s7@x.org');
      expect(store.matchSync(ACCOUNT_WIDE, 's7@x.org', kept.h1, kept.h2)).toEqual({ jobId: '1', reason: 'complaint' });
      expect(reads.n, 'a stored key is answered from the loaded index').toBe(1);
    } finally {
      await store.close();
    }
    // Nothing changed: the snapshot on disk is the same file.
    expect(statSync(snapshotOf(dir)).ino).toBe(saved.ino);
  });

  it('is not used once the store has changed without the index (an import, an add, a removal): the index is scanned', async () => {
    const dir = await savedStore();
    const other = await LevelStore.open(dir);
    await removeKey(other, ACCOUNT_WIDE, 's10@x.org');
    await addKey(other, 'unitA', 's4999@x.org');
    await importKeys(other, 'unitB', keys.slice(4_500, 4_600));
    await other.close();
    const store = await reopened(dir);
    try {
      expect(store.keyIndexSource).toBe('scan');
      // The saved index would answer the removed key as stored and the new ones as absent.
      expectAgreement(store, keys, [ACCOUNT_WIDE, 'unitA', 'unitB']);
      const added = hashed('s4999@x.org');
      expect(store.matchSync('unitA', 's4999@x.org', added.h1, added.h2)).toBeDefined();
    } finally {
      await store.close();
    }
    // Saved again at this close: the next build loads it.
    await expectReopened(dir, 'snapshot', keys, [ACCOUNT_WIDE, 'unitA', 'unitB']);
  });

  it('is not used when damaged, truncated, or another store\'s of the same generation', async () => {
    const dir = await savedStore();
    const whole = readFileSync(snapshotOf(dir));
    const damaged = Buffer.from(whole);
    // A slot's byte, past the header and the job ids.
    damaged[damaged.length - 100] = (damaged[damaged.length - 100] as number) ^ 0x40;
    const other = await savedStore();
    for (const [what, write] of [
      ['damaged', () => writeFileSync(snapshotOf(dir), damaged)],
      ['truncated', () => writeFileSync(snapshotOf(dir), whole.subarray(0, whole.length - 12))],
      // Same writes, same generation: only the token tells the stores apart.
      ['another store\'s', () => copyFileSync(snapshotOf(other), snapshotOf(dir))],
    ] as const) {
      write();
      const written = statSync(snapshotOf(dir)).ino;
      await expectReopened(dir, 'scan', keys.slice(0, 200), [ACCOUNT_WIDE, 'unitA'], what);
      expect(statSync(snapshotOf(dir)).ino, `${what}: the scanned index is saved at close`).not.toBe(written);
    }
    await expectReopened(dir, 'snapshot', keys, [ACCOUNT_WIDE, 'unitA']);
  });

  it('loadKeyIndex loads a current snapshot and scans nothing; indexKeys then scans when there was none', async () => {
    const dir = await savedStore();
    const loaded = await LevelStore.open(dir);
    try {
      expect(await loaded.loadKeyIndex()).toBe(true);
      expect(loaded.keyIndexSource).toBe('snapshot');
      expect(await loaded.indexKeys()).toBe(true);
      expect(loaded.keyIndexSource).toBe('snapshot');
      await addKey(loaded, 'unitA', 's4997@x.org');
    } finally {
      await loaded.close();
    }
    // A change without the index leaves the saved one stale.
    const other = await LevelStore.open(dir);
    await addKey(other, 'unitA', 's4996@x.org');
    await other.close();
    const store = await LevelStore.open(dir);
    try {
      expect(await store.loadKeyIndex()).toBe(false);
      expect(store.keyIndexed).toBe(false);
      expect(await store.indexKeys()).toBe(true);
      expect(store.keyIndexSource).toBe('scan');
      expectAgreement(store, keys, [ACCOUNT_WIDE, 'unitA']);
    } finally {
      await store.close();
    }
  });

  it('closes the store when the snapshot cannot be saved, and the next build scans', async () => {
    const dir = await tempDir('optout-key-index-snapshot-');
    const store = await LevelStore.open(dir);
    await importKeys(store, ACCOUNT_WIDE, keys.slice(0, 100));
    expect(await store.indexKeys()).toBe(true);
    // A folder where the file goes: the rename over it fails.
    mkdirSync(join(snapshotOf(dir), 'in-the-way'), { recursive: true });
    await store.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp')), 'no temporary file left').toEqual([]);
    rmSync(snapshotOf(dir), { recursive: true });
    await expectReopened(dir, 'scan', keys.slice(0, 200), [ACCOUNT_WIDE]);
  });

  it('replays the changes committed while it loads', async () => {
    const dir = await savedStore();
    const store = await LevelStore.open(dir);
    try {
      // The load waits, at its read of the generation's token, until the writes are done (the
      // key filter, which the writes use, reads that record too: it is loaded first).
      await store.filter();
      const tokenKey = filterLogKey(store.generation);
      let release = (): void => undefined;
      const held = new Promise<void>((r) => {
        release = r;
      });
      const get = store.db.get.bind(store.db);
      store.db.get = (async (key: string, options?: object) => {
        if (key === tokenKey) await held;
        return get(key, options as never);
      }) as typeof store.db.get;
      const build = store.indexKeys();
      let duringLoad = 0;
      const writes = (async () => {
        await removeKey(store, ACCOUNT_WIDE, 's11@x.org');
        if (!store.keyIndexed) duringLoad++;
        await addKey(store, ACCOUNT_WIDE, 's4998@x.org');
        if (!store.keyIndexed) duringLoad++;
        await importKeys(store, 'unitA', keys.slice(4_900, 4_950));
        if (!store.keyIndexed) duringLoad++;
        release();
      })();
      expect(await build).toBe(true);
      await writes;
      expect(duringLoad).toBe(3);
      expect(store.keyIndexSource).toBe('snapshot');
      expectAgreement(store, keys, [ACCOUNT_WIDE, 'unitA']);
    } finally {
      await store.close();
    }
  });
});
