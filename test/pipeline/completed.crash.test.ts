/**
 * An import killed after its job is recorded completed, before the process exits: the same
 * command run again is a new import of a list the store already holds, exactly as when the
 * first run had exited on its own. It adds nothing, holds every address, says which job
 * imported the list before, and leaves the same store and counts as a clean run run twice.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { dumpStore, durableEntries, parseJson, removeTempDirs, runCli, seededRandom, startCli, tempDir, type CliResult } from '../helpers.js';
import type { ImportReport } from '../../src/report/summary.js';
import type { StoreStats } from '../../src/cli/commands/stats.js';

const ROWS = 60_000;
const SEED = 20_261_207;
const COUNT_FIELDS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;
const counts = (r: ImportReport | StoreStats['jobs'][number]): Record<string, number> =>
  Object.fromEntries(COUNT_FIELDS.map((k) => [k, r[k]]));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Job spool folders under the store: a job's own exists from its start until it is recorded completed. */
function jobSpools(db: string): string[] {
  const root = join(db, 'spool');
  return existsSync(root) ? readdirSync(root).filter((n) => n.startsWith('job-')) : [];
}

/**
 * Runs the import and kills it `delayMs` after its job's spool is gone: the completion is
 * stored just before (see finishJob), the process has still to close the store and exit.
 * Resolves undefined when the run exited on its own first.
 */
async function killAfterCompletion(args: string[], db: string, delayMs: number): Promise<CliResult | undefined> {
  const run = startCli(args);
  run.child.stdin.end();
  let seen = false;
  for (let i = 0; i < 60_000 && run.child.exitCode === null; i++) {
    const spools = jobSpools(db);
    if (spools.length > 0) seen = true;
    else if (seen) break;
    await sleep(1);
  }
  if (delayMs > 0) await sleep(delayMs);
  run.child.kill('SIGKILL');
  const res = await run.done;
  return res.signal === 'SIGKILL' ? res : undefined;
}

async function stats(db: string): Promise<StoreStats> {
  const res = await runCli(['--db', db, 'stats', '--json']);
  expect(res.code, res.stderr).toBe(0);
  return parseJson<StoreStats>(res);
}

let dir: string;
let list: string;
let first: ImportReport;
let second: ImportReport;
let dumpA: Array<[string, string]>;
let statsA: StoreStats;

beforeAll(async () => {
  dir = await tempDir('optout-completed-');
  list = join(dir, 'list.csv');
  await writeList({ rows: ROWS, seed: SEED, out: list });
  // The clean case: the same command twice, each run left to exit.
  const db = join(dir, 'A');
  const a1 = await runCli(['--db', db, 'import', list, '--yes', '--json']);
  expect(a1.code, a1.stderr).toBe(0);
  first = parseJson<ImportReport>(a1);
  const a2 = await runCli(['--db', db, 'import', list, '--yes', '--json']);
  expect(a2.code, a2.stderr).toBe(0);
  second = parseJson<ImportReport>(a2);
  expect(a2.stderr).toContain(`already imported by job ${first.jobId as string}`);
  dumpA = await dumpStore(db);
  statsA = await stats(db);
});

afterAll(removeTempDirs);

describe('an import killed after its job completed, run again', () => {
  it('is a new import that adds nothing, as after a clean run, and leaves no spool behind', async () => {
    expect(counts(second)).toEqual({ ...counts(first), added: 0, alreadySuppressed: first.unique });
    const random = seededRandom(SEED);
    let killed = 0;
    for (let attempt = 0; attempt < 6 && killed < 2; attempt++) {
      const db = join(dir, `B${attempt}`);
      const args = ['--db', db, 'import', list, '--yes', '--json'];
      const res = await killAfterCompletion(args, db, Math.floor(random() * 3));
      if (res === undefined) continue;
      killed++;
      const afterKill = await stats(db);
      expect(afterKill.jobs.map((j) => j.state)).toEqual(['completed']);
      expect(counts(afterKill.jobs[0] as StoreStats['jobs'][number])).toEqual(counts(first));

      const again = await runCli(args);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).not.toContain('Resuming');
      expect(again.stderr).toContain(`already imported by job ${afterKill.jobs[0]?.id as string}`);
      const report = parseJson<ImportReport>(again);
      expect(report.resumed).toBe(false);
      expect(counts(report)).toEqual(counts(second));
      expect(durableEntries(await dumpStore(db))).toEqual(durableEntries(dumpA));
      const s = await stats(db);
      expect(s.jobs.map((j) => [j.state, counts(j)])).toEqual(statsA.jobs.map((j) => [j.state, counts(j)]));
      expect(jobSpools(db)).toEqual([]);
    }
    expect(killed, 'kills that landed after the completion and before the exit').toBeGreaterThan(0);
  });
});
