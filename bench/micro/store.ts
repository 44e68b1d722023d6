import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bench } from 'tinybench';
import { ClassicLevel } from 'classic-level';
import { entryKey } from '../../src/store/level/keys.js';

const BATCH = 10_000;

function keysFor(round: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < BATCH; i++) out.push(entryKey('*', `user${round}.${i}@example${i % 97}.com`));
  return out;
}

/**
 * LevelDB writes the way imports do them (one chained batch per chunk) against the array form,
 * and lookups the way the import settles possible filter hits (getMany).
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
  return async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  };
}
