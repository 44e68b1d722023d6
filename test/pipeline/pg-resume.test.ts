/**
 * Resuming imports into PostgreSQL, whose jobs other machines may share: an interrupted job is
 * resumed from its spool on the machine that has it, and a job whose spool is elsewhere is left
 * to that machine while a new job imports the list.
 */
import { rm } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { migrateDatabase, openLedger } from '../../src/store/open.js';
import type { JobRecord } from '../../src/store/jobs.js';
import { ACCOUNT_WIDE } from '../../src/store/store.js';
import { emailRange, removeTempDirs, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';

afterAll(removeTempDirs);

await withPgDatabase('imports into PostgreSQL resumed', (url) => {
  beforeEach(async () => {
    await resetDatabase(url);
    await migrateDatabase(url);
  });

  /** Imports `path` and stops it (Ctrl-C) once its first chunk is written: the job is left interrupted. */
  async function interrupted(path: string): Promise<JobRecord> {
    const stop = new AbortController();
    await expect(runImport({
      source: { kind: 'file', path }, db: url, confirm: { mode: 'yes' }, signal: stop.signal,
      onProgress: (p) => {
        if (p.phase === 'writing') stop.abort();
      },
    })).rejects.toMatchObject({ code: 'OPTOUT_ERR_ABORTED' });
    const ledger = await openLedger(url);
    try {
      const [job] = await ledger.listImports();
      expect(job).toMatchObject({ state: 'interrupted', checkpoint: { phase: 'merge' } });
      expect(job?.checkpoint.counts.added).toBeGreaterThan(0);
      return job as JobRecord;
    } finally {
      await ledger.close();
    }
  }

  it('resumes an interrupted job from its spool, with the counts of an uninterrupted run', async () => {
    const list = writeEmails(await tempDir('optout-pg-resume-'), 'list.csv', emailRange(0, 4000));
    await interrupted(list);
    const report = await runImport({ source: { kind: 'file', path: list }, db: url, confirm: { mode: 'yes' } });
    expect(report).toMatchObject({ resumed: true, jobId: '1', unique: 4000, added: 4000, alreadySuppressed: 0 });
    // Each run took the job (its fencing epoch): the interrupted one can no longer write it.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query<{ epoch: string }>('SELECT epoch FROM jobs WHERE id = 1')).rows).toEqual([{ epoch: '2' }]);
    } finally {
      await client.end();
    }
  });

  it('leaves a job whose spool is on another machine, and imports the list as a new job', async () => {
    const list = writeEmails(await tempDir('optout-pg-resume-'), 'list.csv', emailRange(0, 4000));
    const job = await interrupted(list);
    // As seen from another machine: the job's spool is not here.
    await rm(job.checkpoint.spool.dir, { recursive: true, force: true });
    const report = await runImport({ source: { kind: 'file', path: list }, db: url, confirm: { mode: 'yes' } });
    expect(report).toMatchObject({ resumed: false, jobId: '2', unique: 4000 });
    expect(report.added + report.alreadySuppressed).toBe(4000);
    expect(report.alreadySuppressed).toBe(job.checkpoint.counts.added);
    const ledger = await openLedger(url);
    try {
      expect((await ledger.getJob('1'))?.state).toBe('interrupted');
      expect((await ledger.scopeCounts()).get(ACCOUNT_WIDE)).toBe(4000);
    } finally {
      await ledger.close();
    }
  });
});
