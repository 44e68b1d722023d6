/**
 * Sessions of a LevelStore for the key-filter tests: import steps written as the import writes
 * them, ended by a clean close or by what a process killed with SIGKILL leaves.
 */
import { hashKeyTuple } from '../../../src/filter/hash.js';
import type { KeyFilter } from '../../../src/filter/bloom.js';
import { emptyCounts } from '../../../src/store/counts.js';
import type { JobRecord } from '../../../src/store/jobs.js';
import { entryKey, entryRange, parseEntryKey } from '../../../src/store/level/keys.js';
import { LevelStore } from '../../../src/store/level/level-store.js';

export function importJob(scope: string): JobRecord {
  const now = new Date().toISOString();
  return {
    id: '1', kind: 'import', state: 'importing', scope, reason: 'unsubscribed', source: 'test', confirmed: 'yes', confirmedCount: null,
    fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
    createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
    checkpoint: { phase: 'merge', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 4, lengths: [] }, bucket: 0 },
    error: null,
  };
}

/** One import step of `keys` into `scope`, as the import writes it: filter first, then the batch. */
export async function commit(store: LevelStore, scope: string, keys: readonly string[]): Promise<void> {
  const filter = await store.filter();
  const batch = store.batch();
  for (const key of keys) {
    const [h1, h2] = hashKeyTuple(key);
    filter.add(h1, h2);
    batch.putEntry(entryKey(scope, key), '1');
  }
  await store.commitBatch(batch, new Map([[scope, keys.length]]), importJob(scope));
}

/** What a process killed with SIGKILL leaves: its writes, no snapshot saved, its owner file. */
export async function crash(store: LevelStore): Promise<void> {
  await store.db.close();
}

/** One process's use of the store: import steps, then a clean close or a crash. */
export async function session(dir: string, steps: ReadonlyArray<readonly [string, readonly string[]]>, end: 'close' | 'crash'): Promise<void> {
  const store = await LevelStore.open(dir);
  for (const [scope, keys] of steps) await commit(store, scope, keys);
  if (end === 'crash') await crash(store);
  else await store.close();
}

/** Every entry key the store holds, read from LevelDB itself rather than from what the test wrote. */
export async function storedKeys(store: LevelStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const dbKey of store.db.keys(entryRange())) keys.push(parseEntryKey(dbKey).key);
  return keys;
}

export function missing(filter: KeyFilter, keys: readonly string[]): string[] {
  return keys.filter((k) => {
    const [h1, h2] = hashKeyTuple(k);
    return !filter.mightContain(h1, h2);
  });
}

/** Opens the store, loads its filter, and checks it against every stored key. */
export async function reopen(dir: string): Promise<{ store: LevelStore; source: string | undefined; missed: string[]; stored: number }> {
  const store = await LevelStore.open(dir);
  const filter = await store.filter();
  const keys = await storedKeys(store);
  return { store, source: store.filterSource, missed: missing(filter, keys), stored: keys.length };
}
