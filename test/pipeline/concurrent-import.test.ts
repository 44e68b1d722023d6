/**
 * One writer, structurally: imports started at the same time on one opened store (as a server
 * or an embedder would) take turns by themselves. Neither counts a key the other wrote, and a
 * rollback of one keeps every opt-out the other imported.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rollbackJob, openStore, exportRows } from '../../src/index.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

describe('concurrent imports on one store', () => {
  it('count every key once, and a rollback of one keeps all of the other\'s opt-outs', async () => {
    const dir = await tempDir();
    // Overlapping lists: 0..5999 and 3000..8999; 3,000 keys in both.
    const a = join(dir, 'a.csv');
    const b = join(dir, 'b.csv');
    await writeFile(a, 'email\n' + Array.from({ length: 6000 }, (_, i) => `k${i}@example.com`).join('\n') + '\n');
    await writeFile(b, 'email\n' + Array.from({ length: 6000 }, (_, i) => `k${i + 3000}@example.com`).join('\n') + '\n');
    const opened = await openStore(join(dir, 'db'));
    const store = opened.store;
    try {
      const run = (path: string) => runImport({ source: { kind: 'file', path }, store, confirm: { mode: 'yes' }, threads: 1, chunkBytes: 4096 });
      const [ra, rb] = await Promise.all([run(a), run(b)]);
      expect(ra.added + rb.added).toBe(9000);
      expect(ra.alreadySuppressed + rb.alreadySuppressed).toBe(3000);
      expect(store.totalEntries()).toBe(9000);
      const jobs = await store.listImports();
      expect(jobs.map((j) => j.state)).toEqual(['completed', 'completed']);

      const rolled = await rollbackJob(store, String(ra.jobId));
      expect(rolled.removed + rolled.kept).toBe(ra.added);
      // Every key of b is still suppressed, and only a's own keys are gone.
      const left = new Set<string>();
      for await (const rows of exportRows(store)) for (const r of rows) left.add(r.key);
      expect(left.size).toBe(6000);
      for (let i = 3000; i < 9000; i++) expect(left.has(`k${i}@example.com`), `k${i}`).toBe(true);
      expect(store.totalEntries()).toBe(6000);
    } finally {
      await opened.close();
    }
  });
});
