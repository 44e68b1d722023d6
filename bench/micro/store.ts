import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bench } from 'tinybench';
import { ClassicLevel } from 'classic-level';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { KeyIndex } from '../../src/store/level/key-index.js';
import { entryKey, entryKeyStart } from '../../src/store/level/keys.js';

const BATCH = 10_000;

function keysFor(round: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < BATCH; i++) out.push(entryKey('*', `user${round}.${i}@example${i % 97}.com`));
  return out;
}

/**
 * LevelDB writes the way imports do them (one chained batch per chunk) against the array form,
 * lookups the way the import settles possible filter hits (getMany), and a check's lookup of a
 * key: LevelDB's getSync against the key index (the 10,000 present keys' hashes).
 */
export async function registerStoreBenches(bench: Bench): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'optout-bench-store-'));
  const db = new ClassicLevel<string, string>(join(dir, 'leveldb'), { writeBufferSize: 16 * 1024 * 1024 });
  await db.open();
  let round = 0;
  const present = keysFor(-1);
  await db.batch(present.map((key) => ({ type: 'put' as const, key, value: '1' })));
  const absent = keysFor(-2);

  bench.add(`store: chained batch of ${BATCH} puts`, async () => {
    const b = db.batch();
    for (const k of keysFor(round++)) b.put(k, '1');
    await b.write();
  });
  bench.add(`store: array batch of ${BATCH} puts`, async () => {
    await db.batch(keysFor(round++).map((key) => ({ type: 'put' as const, key, value: '1' })));
  });
  bench.add('store: getMany 1000 present keys', async () => {
    await db.getMany(present.slice(0, 1000));
  });
  bench.add('store: getMany 1000 absent keys', async () => {
    await db.getMany(absent.slice(0, 1000));
  });
  let i = 0;
  bench.add('store: getSync present key', () => {
    db.getSync(present[i++ % BATCH] as string);
  });
  bench.add('store: getSync absent key', () => {
    db.getSync(absent[i++ % BATCH] as string);
  });
  const hashesOf = (keys: readonly string[]): Array<[number, number]> => keys.map((k) => {
    const [h1, h2] = hashKeyTuple(k.slice(entryKeyStart(k)));
    return [h1, h2];
  });
  const presentHashes = hashesOf(present);
  const absentHashes = hashesOf(absent);
  const index = new KeyIndex(new Map([['*', BATCH]]));
  for (const [h1, h2] of presentHashes) index.put('*', h1, h2, '1', undefined);
  bench.add('store: key index match present key', () => {
    const [h1, h2] = presentHashes[i++ % BATCH] as [number, number];
    if (index.match('*', h1, h2) === undefined) throw new Error('a present key was not found');
  });
  bench.add('store: key index match absent key', () => {
    const [h1, h2] = absentHashes[i++ % BATCH] as [number, number];
    if (index.match('*', h1, h2) !== undefined) throw new Error('an absent key was found');
  });
  return async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  };
}
