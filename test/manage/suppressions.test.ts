import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelStore, openStore, addSuppression, removeSuppression, lookupSuppressions, readAudit, isOptoutError } from '../../src/index.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

async function storeWith(rows: string[]): Promise<string> {
  const dir = await tempDir('optout-manage-');
  const list = join(dir, 'list.csv');
  writeFileSync(list, ['email', ...rows].join('\n') + '\n');
  await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'db'), confirm: { mode: 'yes' }, sourceLabel: 'crm' });
  return join(dir, 'db');
}

async function audit(store: LevelStore, email?: string): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for await (const r of readAudit(store, { email })) out.push(r as unknown as Record<string, unknown>);
  return out;
}

function codeOf(err: unknown): string | undefined {
  return isOptoutError(err) ? err.code : undefined;
}

describe('single suppressions', () => {
  it('adds an address with an audit record, and checks see it at once', async () => {
    const db = await storeWith(['a@x.org']);
    const opened = await openStore(db);
    try {
      expect((await opened.check({ email: 'New@X.org', unit: 'emea' })).eligible).toBe(true);
      const r = await addSuppression(opened.store, { email: ' New@X.org ', unit: 'emea', reason: 'complaint', actor: 'key-9' });
      expect(r).toMatchObject({ key: 'new@x.org', scope: 'emea', added: true });
      // The checker shares the store's filter: the new key is covered without a restart.
      expect(await opened.check({ email: 'new@x.org', unit: 'emea' })).toMatchObject({
        eligible: false, reason: 'suppressed', suppression: { scope: 'emea', reason: 'complaint', source: 'key-9', jobId: r.job },
      });
      expect((await opened.check({ email: 'new@x.org', unit: 'apac' })).eligible).toBe(true);
      expect(opened.store.counts().get('emea')).toBe(1);
      const records = await audit(opened.store, 'NEW@x.org');
      expect(records).toEqual([expect.objectContaining({ action: 'add', actor: 'key-9', key: 'new@x.org', unit: 'emea', job: r.job })]);
    } finally {
      await opened.close();
    }
  });

  it('writes a single add to the filter log: a store reopened without its snapshot still covers it', async () => {
    const db = await storeWith(['a@x.org']);
    const store = await LevelStore.open(db);
    await store.filter();
    await addSuppression(store, { email: 'single@x.org', unit: 'emea' });
    await removeSuppression(store, { email: 'a@x.org', why: 'test' });
    await store.close();
    rmSync(join(db, 'filter.snapshot'), { force: true });
    const opened = await openStore(db);
    try {
      expect(opened.store.filterSource).toBe('log');
      expect(await opened.check({ email: 'single@x.org', unit: 'emea' })).toMatchObject({ eligible: false, reason: 'suppressed' });
      expect((await opened.check({ email: 'a@x.org' })).eligible).toBe(true);
    } finally {
      await opened.close();
    }
  });

  it('records an add of an address already suppressed as a hold, not a second entry', async () => {
    const db = await storeWith(['a@x.org']);
    const store = await LevelStore.open(db);
    try {
      const r = await addSuppression(store, { email: 'a@x.org' });
      expect(r.added).toBe(false);
      expect(store.counts().get('*')).toBe(1);
      const found = await lookupSuppressions(store, 'A@X.ORG');
      expect(found).toEqual([expect.objectContaining({ scope: '*', job: '1', source: 'crm', reason: 'unsubscribed' })]);
    } finally {
      await store.close();
    }
  });

  it('lists every scope that suppresses an address', async () => {
    const db = await storeWith(['a@x.org']);
    const store = await LevelStore.open(db);
    try {
      await addSuppression(store, { email: 'a@x.org', unit: 'emea', reason: 'bounced' });
      await addSuppression(store, { email: 'a@x.org', unit: 'apac' });
      const found = await lookupSuppressions(store, 'a@x.org');
      expect(found.map((s) => [s.scope, s.reason])).toEqual([['*', 'unsubscribed'], ['apac', 'manual'], ['emea', 'bounced']]);
      expect(await lookupSuppressions(store, 'other@x.org')).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('removes one scope\'s suppression with every hold on it, audited with the reason given', async () => {
    const db = await storeWith(['a@x.org', 'b@x.org']);
    const opened = await openStore(db);
    try {
      await addSuppression(opened.store, { email: 'a@x.org' });
      await addSuppression(opened.store, { email: 'a@x.org', unit: 'emea' });
      const r = await removeSuppression(opened.store, { email: 'A@x.org', why: 'resubscribed on the web form 2026-11-29', actor: 'key-1' });
      expect(r.removed).toMatchObject({ scope: '*', job: '1', source: 'crm' });
      // Account-wide gone, the unit's own suppression stays.
      expect((await opened.check({ email: 'a@x.org' })).eligible).toBe(true);
      expect((await opened.check({ email: 'a@x.org', unit: 'emea' })).eligible).toBe(false);
      expect(opened.store.counts().get('*')).toBe(1);
      const removal = (await audit(opened.store, 'a@x.org')).find((x) => x['action'] === 'remove');
      expect(removal).toMatchObject({ actor: 'key-1', unit: null, job: '1', details: { why: 'resubscribed on the web form 2026-11-29', heldBy: ['2'] } });
      // No hold is left behind to bring it back on a rollback.
      const holds = await opened.store.db.keys({ gt: 'h', lt: 'i' }).all();
      expect(holds.filter((k) => k.includes('a@x.org') && k.startsWith('h*'))).toEqual([]);
    } finally {
      await opened.close();
    }
  });

  it('refuses bad input and writes nothing', async () => {
    const db = await storeWith(['a@x.org']);
    const store = await LevelStore.open(db);
    try {
      const before = store.generation;
      expect(codeOf(await addSuppression(store, { email: 'not-an-address' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_INVALID_EMAIL');
      expect(codeOf(await addSuppression(store, { email: 'b@x.org', unit: 'no spaces' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect(codeOf(await addSuppression(store, { email: 'b@x.org', reason: 'spam' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect(codeOf(await removeSuppression(store, { email: 'a@x.org', why: '  ' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect(codeOf(await removeSuppression(store, { email: 'b@x.org', why: 'x' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_NOT_SUPPRESSED');
      expect(codeOf(await removeSuppression(store, { email: 'a@x.org', unit: 'emea', why: 'x' }).catch((e: unknown) => e))).toBe('OPTOUT_ERR_NOT_SUPPRESSED');
      expect(store.generation).toBe(before);
      expect((await audit(store)).map((r) => r['action'])).toEqual(['import']);
    } finally {
      await store.close();
    }
  });

  it('keeps adds and an import in the same process consistent (counters match the entries)', async () => {
    const dir = await tempDir('optout-manage-');
    const list = join(dir, 'list.csv');
    const rows = Array.from({ length: 20_000 }, (_, i) => `u${i}@x.org`);
    writeFileSync(list, ['email', ...rows].join('\n') + '\n');
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      const adds: Array<Promise<unknown>> = [];
      // Adds issued while the import writes its buckets, so that they interleave with its batches.
      const importing = runImport({
        source: { kind: 'file', path: list }, store, confirm: { mode: 'yes' },
        onProgress: (p) => {
          if (p.phase !== 'writing' || adds.length > 0) return;
          for (let i = 0; i < 20_000; i += 97) adds.push(addSuppression(store, { email: `u${i}@x.org` }));
          for (let i = 0; i < 20; i++) adds.push(addSuppression(store, { email: `extra${i}@x.org` }));
        },
      });
      await importing;
      expect(adds.length).toBeGreaterThan(20);
      const report = await importing;
      await Promise.all(adds);
      const entries = (await store.db.keys({ gt: 'e*\u0000', lt: 'e*\u0001' }).all()).length;
      expect(entries).toBe(20_020);
      expect(store.counts().get('*')).toBe(entries);
      expect((report as { added: number; alreadySuppressed: number }).added + (report as { alreadySuppressed: number }).alreadySuppressed).toBe(20_000);
    } finally {
      await store.close();
    }
  });
});
