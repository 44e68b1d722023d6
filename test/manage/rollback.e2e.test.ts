import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, removeTempDirs, runCli, tempDir, writeEmails as csv, emailRange as range } from '../helpers.js';

/** `optout rollback` and `optout jobs` over a store imported by the built package. */
const { LevelStore, runImport, rollbackJob } = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');

afterAll(removeTempDirs);

describe('rollback', () => {
  it('releases the holds of a rolled-back job on entries that stay', async () => {
    const dir = await tempDir('optout-rollback-');
    const db = join(dir, 'db');
    await runImport({ source: { kind: 'file', path: csv(dir, 'a.csv', range(0, 100)) }, db, confirm: { mode: 'yes' } });
    await runImport({ source: { kind: 'file', path: csv(dir, 'b.csv', range(50, 150)) }, db, confirm: { mode: 'yes' } });
    const r = await runCli(['--db', db, 'rollback', '2', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ job: '2', removed: 50, kept: 0, holdsReleased: 50 });
    const store = await LevelStore.open(db);
    try {
      expect(await store.db.keys({ gt: 'h', lt: 'i' }).all()).toEqual([]);
      expect(store.counts().get('*')).toBe(100);
      // Job 1 rolled back afterwards removes everything: nothing holds its entries any more.
      expect(await rollbackJob(store, '1')).toMatchObject({ removed: 100, kept: 0 });
    } finally {
      await store.close();
    }
    const jobs = await runCli(['--db', db, 'jobs', '--json']);
    expect((JSON.parse(jobs.stdout) as { jobs: Array<{ state: string }> }).jobs.map((j) => j.state)).toEqual(['rolled_back', 'rolled_back']);
  });
});
