import { mkdtempSync, rmSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LevelStore } from '../../../src/store/level/level-store.js';
import { encodeEntryValue, entryKey } from '../../../src/store/level/keys.js';
import { hashKeyTuple } from '../../../src/filter/hash.js';
import { emptyCounts } from '../../../src/store/counts.js';
import type { JobRecord } from '../../../src/store/jobs.js';
import { isOptoutError } from '../../../src/errors.js';

const dirs: string[] = [];
function tempStoreDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'optout-store-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function job(id: string, scope = '*'): JobRecord {
  const now = new Date().toISOString();
  return {
    id, kind: 'import', state: 'importing', scope, reason: 'unsubscribed', source: 'test', confirmed: 'yes', confirmedCount: null,
    fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
    createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
    checkpoint: {
      phase: 'merge', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0,
      spool: { dir: '', bits: 4, lengths: [] }, bucket: 0,
    },
    error: null,
  };
}

/** Writes keys the way the import does: filter first, then one atomic batch. */
async function addKeys(store: LevelStore, keys: string[], scope = '*', jobId = '1'): Promise<void> {
  const filter = await store.filter();
  filter.ensureCapacity(filter.count + keys.length);
  const batch = store.batch();
  for (const k of keys) {
    const [h1, h2] = hashKeyTuple(k);
    filter.add(h1, h2);
    batch.putEntry(entryKey(scope, k), encodeEntryValue(jobId, undefined));
  }
  await store.commitBatch(batch, new Map([[scope, keys.length]]), job(jobId, scope));
}

function covers(filter: Awaited<ReturnType<LevelStore['filter']>>, keys: string[]): boolean {
  return keys.every((k) => {
    const [h1, h2] = hashKeyTuple(k);
    return filter.mightContain(h1, h2);
  });
}

describe('LevelStore', () => {
  it('keeps per-scope counters and a generation in the same batch as the entries', async () => {
    const dir = tempStoreDir();
    const store = await LevelStore.open(dir);
    expect(store.generation).toBe(0);
    await addKeys(store, ['a@x.org', 'b@x.org']);
    await addKeys(store, ['c@x.org'], 'unitA', '2');
    expect(store.generation).toBe(2);
    expect(Object.fromEntries(store.counts())).toEqual({ '*': 2, unitA: 1 });
    await store.close();
    const again = await LevelStore.open(dir);
    expect(Object.fromEntries(again.counts())).toEqual({ '*': 2, unitA: 1 });
    expect(again.totalEntries()).toBe(3);
    expect(again.generation).toBe(2);
    expect(await again.getMany([entryKey('*', 'c@x.org'), entryKey('unitA', 'c@x.org')])).toEqual([undefined, '2']);
    expect((await again.getJob('2'))?.scope).toBe('unitA');
    await again.close();
  });

  it('loads the filter snapshot only when it names the current generation, else rebuilds it from the entries', async () => {
    const dir = tempStoreDir();
    const store = await LevelStore.open(dir);
    await addKeys(store, ['one@x.org', 'two@x.org']);
    await store.close();
    expect(existsSync(join(dir, 'filter.snapshot'))).toBe(true);

    // A process that writes and dies without closing leaves an older snapshot behind.
    const stale = readFileSync(join(dir, 'filter.snapshot'));
    const writer = await LevelStore.open(dir);
    await addKeys(writer, ['three@x.org'], '*', '2');
    await writer.close();
    writeFileSync(join(dir, 'filter.snapshot'), stale);

    const reopened = await LevelStore.open(dir);
    const filter = await reopened.filter();
    expect(covers(filter, ['one@x.org', 'two@x.org', 'three@x.org'])).toBe(true);
    await reopened.close();
  });

  it('rebuilds the filter when the snapshot is damaged', async () => {
    const dir = tempStoreDir();
    const store = await LevelStore.open(dir);
    await addKeys(store, ['one@x.org']);
    await store.close();
    const snap = readFileSync(join(dir, 'filter.snapshot'));
    snap[snap.length - 1] = (snap[snap.length - 1] as number) ^ 0xff;
    writeFileSync(join(dir, 'filter.snapshot'), snap);
    const reopened = await LevelStore.open(dir);
    expect(covers(await reopened.filter(), ['one@x.org'])).toBe(true);
    await reopened.close();
  });

  it('never answers "absent" for a stored key after reopening (property)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(fc.emailAddress(), { minLength: 1, maxLength: 60 }),
      fc.boolean(),
      async (keys, damageSnapshot) => {
        const dir = tempStoreDir();
        const store = await LevelStore.open(dir);
        await addKeys(store, keys);
        await store.close();
        if (damageSnapshot) rmSync(join(dir, 'filter.snapshot'));
        const reopened = await LevelStore.open(dir);
        const ok = covers(await reopened.filter(), keys);
        await reopened.close();
        rmSync(dir, { recursive: true, force: true });
        return ok;
      }), { numRuns: 15 });
  });

  it('removes the temporary snapshot files a killed save left, and nothing else, when it opens', async () => {
    const dir = tempStoreDir();
    const first = await LevelStore.open(dir);
    await first.close();
    const stale = join(dir, 'filter.snapshot.4242.deadbeef.tmp');
    writeFileSync(stale, 'half a snapshot');
    const staleIndex = join(dir, 'key-index.snapshot.4242.deadbeef.tmp');
    writeFileSync(staleIndex, 'half a key index');
    writeFileSync(join(dir, 'notes.txt'), 'kept');
    const store = await LevelStore.open(dir);
    try {
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(staleIndex)).toBe(false);
      expect(existsSync(join(dir, 'notes.txt'))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('refuses a second opener with OPTOUT_ERR_STORE_LOCKED naming the owner', async () => {
    const dir = tempStoreDir();
    const store = await LevelStore.open(dir, { purpose: 'test owner' });
    // LevelDB's lock is per process too: a second handle in this process is refused the same way.
    const err = await LevelStore.open(dir).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_STORE_LOCKED');
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    await store.close();
    expect(existsSync(join(dir, 'owner.json'))).toBe(false);
  });

  it('rejects a store of another format', async () => {
    const dir = tempStoreDir();
    const store = await LevelStore.open(dir);
    await store.db.put('mformat', '999');
    await store.close();
    const err = await LevelStore.open(dir).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_STORE_CORRUPT');
  });

  it('answers OPTOUT_ERR_STORE_NOT_OPEN after close', async () => {
    const store = await LevelStore.open(tempStoreDir());
    await store.close();
    const err = await store.getMany(['x']).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_STORE_NOT_OPEN');
  });
});
