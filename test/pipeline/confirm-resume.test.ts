/**
 * A job cut off while reading, run again with a confirmation: the analysis reads the whole file,
 * and its spool and counts replace the job's partial reading.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

it('an interrupted job resumed under a confirmation counts the whole file, and its reasons', async () => {
  const dir = await tempDir('optout-confirm-resume-');
  const path = join(dir, 'list.csv');
  // Past the reading phase's first checkpoint (every 8 chunks) before the cut.
  writeFileSync(path, ['email,why', ...Array.from({ length: 1_200_000 }, (_, i) => `c${i}@example.com,${i % 4 === 0 ? 'bounce' : ''}`)].join('\n'));
  const db = join(dir, 'db');
  const options = { source: { kind: 'file' as const, path }, db, reasonColumn: 'why', chunkBytes: 4096, threads: 1 };
  const controller = new AbortController();
  let reads = 0;
  const stopped = await runImport({ ...options, confirm: { mode: 'yes' }, signal: controller.signal, onProgress: (p) => {
    if (p.phase === 'reading' && ++reads === 10) controller.abort();
  } }).catch((e: unknown) => e);
  expect((stopped as { code?: string }).code).toBe('OPTOUT_ERR_ABORTED');
  const report = await runImport({ ...options, confirm: { mode: 'count', count: 1_200_000 } });
  expect(report).toMatchObject({
    confirmed: true, rows: 1_200_000, valid: 1_200_000, unique: 1_200_000, added: 1_200_000, reasons: { bounced: 300_000, unsubscribed: 900_000 },
  });
});
