/**
 * Holders of import jobs outside a shared database: the options that bound them, the id a
 * server folder keeps, and the embedded store, which has neither holders nor liveness records
 * (one process owns its folder). The shared case is test/replica/lost-jobs.test.ts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { openStore } from '../../src/check/open-store.js';
import { ImportJobs, normalizeImportJobsOptions } from '../../src/manage/import-jobs.js';
import { HOLDER_FILE, abandonJob, holderIdOf } from '../../src/manage/job-holders.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';

afterEach(removeTempDirs);

it.each(['lostAfterMs', 'heartbeatMs'])('refuses a %s that is not a whole number of ms from 1', (name) => {
  for (const bad of [0, -5, 1.5, '10m']) {
    expect(() => normalizeImportJobsOptions({ [name]: bad } as never)).toThrow(expect.objectContaining({ code: 'OPTOUT_ERR_INVALID_OPTION' }) as Error);
  }
  expect(normalizeImportJobsOptions({})).toMatchObject({ lostAfterMs: 600_000, heartbeatMs: 5000 });
});

it('keeps a server folder\'s id in the folder: the same folder is the same holder, another folder another', async () => {
  const dir = await tempDir();
  const id = holderIdOf(dir);
  expect(id).toMatch(/^[A-Za-z0-9._-]+$/);
  expect(holderIdOf(dir)).toBe(id);
  expect(existsSync(join(dir, HOLDER_FILE))).toBe(true);
  expect(holderIdOf(await tempDir())).not.toBe(id);
});

it('records no holder on the embedded store, writes no liveness record, and abandons only with --force', async () => {
  const dir = await tempDir();
  const store = await openStore(join(dir, 'db'), { create: true });
  const pool = createInlinePool();
  const jobs = new ImportJobs(store.ledger, { pool, heartbeatMs: 10, onNotice: () => undefined });
  try {
    const view = await jobs.createFromUpload(Readable.from([Buffer.from('email\nemb@example.com\n')]), {}, { via: 'http', actor: 'test' });
    expect(view.holder).toBeNull();
    for (let i = 0; i < 400 && (await jobs.get(view.id))?.state !== 'awaiting_confirmation'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await jobs.list()).toMatchObject([{ id: view.id, state: 'awaiting_confirmation', holder: null }]);
    expect(await store.ledger.listRecords('server')).toEqual([]);
    expect(existsSync(join(dir, 'db', HOLDER_FILE))).toBe(false);
    // This process runs it: not lost, forced or not.
    expect(await failureCode(() => jobs.abandon(view.id, 'test', true))).toBe('OPTOUT_ERR_JOB_STATE');
    await jobs.close();
    // No holder recorded: nothing says it stopped, so only --force ends it.
    expect(await failureCode(() => abandonJob(store.ledger, view.id, { actor: 'cli', force: false, lostAfterMs: 1000 }))).toBe('OPTOUT_ERR_JOB_STATE');
    expect(await abandonJob(store.ledger, view.id, { actor: 'cli', force: true, lostAfterMs: 1000 })).toMatchObject({ state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
  } finally {
    await jobs.close();
    await pool.destroy();
    await store.close();
  }
});
