import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelStore, addSuppression, lookupSuppressions, rollbackJob, readAudit } from '../../src/index.js';
import { removeTempDirs, tempDir, writeEmails as csv, emailRange as range } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

describe('rollback', () => {
  it('removes exactly what the job added that no other job also holds', async () => {
    const dir = await tempDir('optout-rollback-');
    const db = join(dir, 'db');
    // Job 1: u0..u2999; job 2: u2000..u4999 (holds u2000..u2999); then a single add of u10
    // and an add of u2500 in a unit (another scope, untouched by rolling back account-wide jobs).
    await runImport({ source: { kind: 'file', path: csv(dir, 'a.csv', range(0, 3000)) }, db, confirm: { mode: 'yes' } });
    await runImport({ source: { kind: 'file', path: csv(dir, 'b.csv', range(2000, 5000)) }, db, confirm: { mode: 'yes' } });
    const store = await LevelStore.open(db);
    try {
      await addSuppression(store, { email: 'u10@x.org' });
      await addSuppression(store, { email: 'u2500@x.org', unit: 'emea' });
      const r = await rollbackJob(store, '1', 'key-7');
      expect(r).toEqual({ job: '1', removed: 1999, kept: 1001, holdsReleased: 0 });
      const owners = new Map<string, string>();
      for await (const [k, v] of store.db.iterator({ gt: 'e*\u0000', lt: 'e*\u0001' })) owners.set(k.slice(11), v);
      expect(owners.size).toBe(3001);
      expect(owners.get('u10@x.org')).toBe('3');
      expect(owners.get('u2000@x.org')).toBe('2');
      expect(owners.has('u0@x.org')).toBe(false);
      expect(store.counts().get('*')).toBe(3001);
      expect((await lookupSuppressions(store, 'u2500@x.org')).map((s) => s.scope)).toEqual(['*', 'emea']);
      // The holds that passed ownership on are gone; job 2's other holds are none.
      expect(await store.db.keys({ gt: 'h*\u0000', lt: 'h*\u0001' }).all()).toEqual([]);
      expect((await store.getJob('1'))?.state).toBe('rolled_back');
      const audit = [];
      for await (const a of readAudit(store)) if (a.action === 'rollback') audit.push(a);
      expect(audit).toEqual([expect.objectContaining({ actor: 'key-7', job: '1', details: expect.objectContaining({ removed: 1999, kept: 1001 }) })]);

      // Rolling back job 2 now: u3000.. go, u10 stays (job 3), and job 2 had no holds left.
      const r2 = await rollbackJob(store, '2');
      expect(r2).toEqual({ job: '2', removed: 3000, kept: 0, holdsReleased: 0 });
      expect(store.counts().get('*')).toBe(1);
      await expect(rollbackJob(store, '2')).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_STATE' });
      await expect(rollbackJob(store, '99')).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_NOT_FOUND' });
    } finally {
      await store.close();
    }
  });
});
