/**
 * A store that fails in the middle of an import's writing phase (a database that went away, a
 * connection that broke): the import ends with the store's error and how to go on, the job is
 * left interrupted with its spool, and the same import again resumes it to the counts of an
 * uninterrupted run.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { OptoutError } from '../../src/errors.js';
import { openStore } from '../../src/index.js';
import type { ChunkWriter, Ledger } from '../../src/store/store.js';
import { emailRange, removeTempDirs, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

/** `store`, whose `failAt`-th chunk commit (from 1) fails as a broken connection would. */
function failingAt(store: Ledger, failAt: number): Ledger {
  let commits = 0;
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop === 'beginChunk') {
        return (scope: string, jobId: string): ChunkWriter => {
          const writer = target.beginChunk(scope, jobId);
          return {
            ...writer,
            putEntry: (k, a) => writer.putEntry(k, a),
            putHold: (k, a) => writer.putHold(k, a),
            discard: () => writer.discard(),
            commit: async (job, added) => {
              if (++commits === failAt) {
                await writer.discard();
                throw new OptoutError('OPTOUT_ERR_STORE', 'PostgreSQL failed to commit an import chunk: Connection terminated unexpectedly');
              }
              return writer.commit(job, added);
            },
          };
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

it('a store failure mid-import leaves the job interrupted and resumable, with the counts of an uninterrupted run', async () => {
  const dir = await tempDir('optout-store-failure-');
  const list = writeEmails(dir, 'list.csv', emailRange(0, 5000));
  const opened = await openStore(join(dir, 'db'));
  const store = opened.store;
  try {
    const failing = failingAt(store, 3);
    const err = await runImport({ source: { kind: 'file', path: list }, store: failing, confirm: { mode: 'yes' } })
      .then(() => undefined, (e: unknown) => e as OptoutError);
    expect(err).toMatchObject({ code: 'OPTOUT_ERR_STORE' });
    expect(err?.message).toMatch(/^PostgreSQL failed to commit an import chunk: Connection terminated unexpectedly\. Job 1 keeps what it wrote: run the same import again to resume it$/);
    const [job] = await store.listImports();
    expect(job).toMatchObject({ state: 'interrupted', error: { code: 'OPTOUT_ERR_STORE' }, checkpoint: { phase: 'merge', bucket: 2 } });
    expect(existsSync(job?.checkpoint.spool.dir ?? ''), 'the spool is kept for the resume').toBe(true);

    const report = await runImport({ source: { kind: 'file', path: list }, store, confirm: { mode: 'yes' } });
    expect(report).toMatchObject({ resumed: true, jobId: '1', unique: 5000, added: 5000, alreadySuppressed: 0 });
    expect(store.totalEntries()).toBe(5000);
    expect((await store.listImports()).map((j) => j.state)).toEqual(['completed']);
  } finally {
    await opened.close();
  }
});
