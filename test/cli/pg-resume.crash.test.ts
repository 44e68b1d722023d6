/**
 * An import into PostgreSQL killed with SIGKILL while reading and while writing, then run again
 * with the same command: it resumes the job (its session's lock went with the process) and ends
 * with the same entries and the same counts as an uninterrupted run into another database.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { writeList } from '../../bench/generate.js';
import type { ImportReport } from '../../src/report/summary.js';
import { parseJson, removeTempDirs, runCli, startCli, tempDir } from '../helpers.js';
import { pgTestDatabase, resetDatabase, withPgDatabase } from '../store/pg-cluster.js';

const ROWS = 80_000;
const COUNTS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;
const countsOf = (r: ImportReport): Record<string, number> => Object.fromEntries(COUNTS.map((k) => [k, r[k]]));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The stored job's checkpoint, read the way any other process would. */
async function checkpoint(url: string): Promise<{ phase: string; bucket: number } | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ record: { checkpoint: { phase: string; bucket: number } } }>(
      `SELECT record FROM jobs WHERE kind = 'import' ORDER BY id DESC LIMIT 1`);
    return rows[0]?.record.checkpoint;
  } finally {
    await c.end();
  }
}

/** Every (scope, key) stored, in order. */
async function entries(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ k: string }>(`SELECT scope || ' ' || key AS k FROM entries ORDER BY scope, key`)).rows.map((r) => r.k);
  } finally {
    await c.end();
  }
}

let list = '';
beforeAll(async () => {
  list = join(await tempDir('optout-pg-crash-'), 'list.csv');
  await writeList({ rows: ROWS, seed: 20_261_207, out: list });
});
afterAll(removeTempDirs);

await withPgDatabase('import into PostgreSQL killed and resumed', (url) => {
  it('ends as an uninterrupted run, whether killed while reading or while writing', async () => {
    const clean = await pgTestDatabase();
    if (clean.skip !== undefined) throw new Error(clean.skip);
    try {
      expect((await runCli(['--db', clean.url, 'migrate'])).code).toBe(0);
      const reference = parseJson<ImportReport>(await runCli(['--db', clean.url, 'import', list, '--yes', '--json'], { timeoutMs: 120_000 }));
      expect(reference.unique).toBeGreaterThan(60_000);
      const expected = await entries(clean.url);
      expect(expected).toHaveLength(reference.unique);

      // Killed once its job exists and is reading, then once it has written a chunk.
      const kills: Array<(cp: { phase: string; bucket: number }) => boolean> = [
        (cp) => cp.phase === 'spool',
        (cp) => cp.phase === 'merge' && cp.bucket > 0,
      ];
      for (const killWhen of kills) {
        await resetDatabase(url);
        expect((await runCli(['--db', url, 'migrate'])).code).toBe(0);
        const run = startCli(['--db', url, 'import', list, '--yes', '--json'], { timeoutMs: 120_000 });
        run.child.stdin.end();
        let killed = false;
        for (let i = 0; i < 2000 && run.child.exitCode === null; i++) {
          const cp = await checkpoint(url);
          if (cp !== undefined && killWhen(cp)) {
            run.child.kill('SIGKILL');
            killed = true;
            break;
          }
          await sleep(10);
        }
        await run.done;
        expect(killed, 'the import was killed mid-way').toBe(true);
        const resumed = await runCli(['--db', url, 'import', list, '--yes', '--json'], { timeoutMs: 120_000 });
        expect(resumed.stderr).toMatch(/Resuming interrupted job 1/);
        const report = parseJson<ImportReport>(resumed);
        expect(report).toMatchObject({ resumed: true, jobId: '1' });
        expect(countsOf(report)).toEqual(countsOf(reference));
        expect(await entries(url)).toEqual(expected);
        const again = parseJson<ImportReport>(await runCli(['--db', url, 'import', list, '--yes', '--json'], { timeoutMs: 120_000 }));
        expect(again).toMatchObject({ added: 0, alreadySuppressed: reference.unique });
      }
    } finally {
      await clean.drop();
    }
  }, 900_000);
});
