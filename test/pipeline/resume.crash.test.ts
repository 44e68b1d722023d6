/**
 * Crash safety: an import killed with SIGKILL at seeded random moments and run again with the
 * same command must end with the same store, the same counts and the same rejects file as an
 * uninterrupted run, and nothing it had stored may read as absent in between.
 */
import { readFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { dumpStore, durableEntries, parseJson, removeTempDirs, runCli, seededRandom, startCli, tempDir, type CliResult } from '../helpers.js';
import type { ImportReport } from '../../src/report/summary.js';
import type { StoreStats } from '../../src/cli/commands/stats.js';
import { parseEntryKey } from '../../src/store/level/keys.js';

const ROWS = 300_000;
const SEED = 20_261_127;

type Report = ImportReport;

type StatsJob = StoreStats['jobs'][number];

type Stats = StoreStats;

const COUNT_FIELDS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;
const counts = (r: Report | StatsJob): Record<string, number> => Object.fromEntries(COUNT_FIELDS.map((k) => [k, r[k]]));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stats(db: string): Promise<Stats> {
  const res = await runCli(['--db', db, 'stats', '--json']);
  expect(res.code, res.stderr).toBe(0);
  return parseJson<Stats>(res);
}

/** Resolves when `<db>/owner.json` names `pid` (a killed run leaves its own behind). */
async function ownedBy(db: string, pid: number, timeoutMs = 20_000): Promise<void> {
  const path = join(db, 'owner.json');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (existsSync(path) && (JSON.parse(readFileSync(path, 'utf8')) as { pid: number }).pid === pid) return;
    } catch {
      // Half-written: try again.
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not take ${db} within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** Bytes of every file in `<db>/leveldb`: grows when a batch reaches the write-ahead log. */
function levelBytes(db: string): number {
  const dirPath = join(db, 'leveldb');
  if (!existsSync(dirPath)) return 0;
  let total = 0;
  for (const name of readdirSync(dirPath)) {
    try {
      total += statSync(join(dirPath, name)).size;
    } catch {
      // Removed by a compaction meanwhile.
    }
  }
  return total;
}

type KillPoint =
  /** `ms` after the run owns the store. */
  | { after: 'owned'; ms: number }
  /** `ms` after the store's files have grown by `bytes` since the run took it: a batch is durable. */
  | { after: 'growth'; bytes: number; ms: number };

/**
 * Starts the import, waits for the kill point, and kills it with SIGKILL. Returns the run's
 * output; fails the test when the run ended on its own first.
 */
async function killDuring(args: string[], db: string, at: KillPoint): Promise<CliResult> {
  const run = startCli(args);
  run.child.stdin.end();
  try {
    await ownedBy(db, run.child.pid as number);
    if (at.after === 'growth') {
      const start = levelBytes(db);
      const deadline = Date.now() + 30_000;
      while (levelBytes(db) - start < at.bytes && run.child.exitCode === null && Date.now() < deadline) await sleep(2);
    }
    await sleep(at.ms);
  } finally {
    run.child.kill('SIGKILL');
  }
  const res = await run.done;
  if (res.signal !== 'SIGKILL') {
    throw new Error(`the import ended before it was killed (exit ${String(res.code)}): ${res.stderr}`);
  }
  return res;
}

/**
 * A job stopped part-way: in the reading phase (some rows read) or in the writing phase (all
 * rows read, some buckets written).
 */
function isPartial(job: StatsJob): boolean {
  return (job.rows > 0 && job.rows < ROWS) || (job.unique > 0 && job.unique < reportA.unique);
}

/** The audit records of a dump without their times: a resumed import is audited once, when it ends. */
function auditActions(dump: Array<[string, string]>): Array<{ action: string; details: unknown }> {
  return dump.filter(([k]) => k.startsWith('a')).map(([, v]) => {
    const r = JSON.parse(v) as { action: string; details: unknown };
    return { action: r.action, details: r.details };
  });
}

let dir: string;
let list: string;
/** The uninterrupted run every interrupted one is compared with. */
let reportA: Report;
let dumpA: Array<[string, string]>;
let rejectsBytesA: Buffer;

beforeAll(async () => {
  dir = await tempDir('optout-resume-');
  list = join(dir, 'list.csv');
  await writeList({ rows: ROWS, seed: SEED, out: list });
  const dbA = join(dir, 'A');
  const rejectsA = join(dir, 'rejects-A.csv');
  const clean = await runCli(['--db', dbA, 'import', list, '--yes', '--json', '--rejects', rejectsA]);
  expect(clean.code, clean.stderr).toBe(0);
  reportA = parseJson<Report>(clean);
  expect(reportA.rows).toBe(ROWS);
  expect(reportA.resumed).toBe(false);
  dumpA = await dumpStore(dbA);
  rejectsBytesA = await readFile(rejectsA);
});

afterAll(removeTempDirs);

/** The last run of an interrupted import: it resumes and ends exactly like the clean run. */
async function expectResumedLikeClean(args: string[], db: string, rejects: string): Promise<void> {
  const final = await runCli(args);
  expect(final.code, final.stderr).toBe(0);
  expect(final.stderr).toContain('Resuming interrupted job');
  const report = parseJson<Report>(final);
  expect(report.resumed).toBe(true);
  expect(report.confirmed).toBe(true);
  expect(counts(report)).toEqual(counts(reportA));

  const dump = await dumpStore(db);
  expect(durableEntries(dump).length).toBe(durableEntries(dumpA).length);
  expect(durableEntries(dump)).toEqual(durableEntries(dumpA));
  expect(dump.some(([k]) => k.startsWith('e'))).toBe(true);
  expect(auditActions(dump)).toEqual(auditActions(dumpA));
  expect(auditActions(dump)).toHaveLength(1);
  expect((await readFile(rejects)).equals(rejectsBytesA)).toBe(true);

  const after = await stats(db);
  expect(after.jobs).toHaveLength(1);
  expect(after.jobs[0]?.state).toBe('completed');
  expect(counts(after.jobs[0] as StatsJob)).toEqual(counts(reportA));
  expect(after.entries).toBe(reportA.added);
}

describe('an interrupted import run again', () => {
  it('resumes and ends with the same store, counts and rejects as an uninterrupted run', async () => {
    // The interrupted runs: same command, another store.
    const dbB = join(dir, 'B');
    const rejectsB = join(dir, 'rejects-B.csv');
    const args = ['--db', dbB, 'import', list, '--yes', '--json', '--rejects', rejectsB];
    const random = seededRandom(SEED);
    const importMs = Math.max(500, reportA.durationMs);
    const killed: CliResult[] = [];
    // Rows read plus keys written: grows with every durable checkpoint of either phase.
    const progress: number[] = [];
    let midWrite = false;
    // The first kill lands early (usually before the first batch: the job exists, at offset 0);
    // the others a random moment after a batch has reached the disk, so they land mid-write.
    const schedule: KillPoint[] = [
      { after: 'owned', ms: Math.round((0.02 + random() * 0.1) * importMs) },
      { after: 'growth', bytes: 256 * 1024, ms: Math.round(random() * 200) },
      { after: 'growth', bytes: 256 * 1024, ms: Math.round(random() * 200) },
    ];
    for (const at of schedule) {
      killed.push(await killDuring(args, dbB, at));
      const s = await stats(dbB);
      expect(s.jobs.map((j) => j.state).filter((st) => st === 'completed'), 'no run may have completed').toEqual([]);
      const job = s.jobs[0];
      progress.push(job ? job.rows + job.unique : 0);
      if (job && isPartial(job)) midWrite = true;
    }
    expect(midWrite, `rows read + keys written after each kill: ${progress.join(', ')}`).toBe(true);
    // Progress never goes back: every batch is durable.
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(killed.slice(1).some((r) => r.stderr.includes('Resuming interrupted job')),
      killed.map((r) => r.stderr).join('\n---\n')).toBe(true);

    // Before the last run: every key the killed runs committed reads as suppressed, although
    // the filter was never saved (the processes were killed) and is rebuilt from the store.
    const s = await stats(dbB);
    expect(s.jobs).toHaveLength(1);
    expect(s.entries).toBeGreaterThan(0);
    const stored = (await dumpStore(dbB)).filter(([k]) => k.startsWith('e*\u0000')).map(([k]) => parseEntryKey(k).key);
    const rng2 = seededRandom(SEED + 3);
    const sample = Array.from({ length: 5 }, () => stored[Math.floor(rng2() * stored.length)] as string);
    for (const email of sample) {
      const res = await runCli(['--db', dbB, 'check', email]);
      expect(res.code, `${email}: ${res.stdout}${res.stderr}`).toBe(1);
    }

    // The last run completes the job.
    await expectResumedLikeClean(args, dbB, rejectsB);
  });

  it('after Ctrl-C (SIGINT) the job holds its last checkpoint, and a re-run ends like the clean run', async () => {
    const db = join(dir, 'D');
    const rejects = join(dir, 'rejects-D.csv');
    const args = ['--db', db, 'import', list, '--yes', '--json', '--rejects', rejects];
    const run = startCli(args);
    run.child.stdin.end();
    try {
      await ownedBy(db, run.child.pid as number);
      const start = levelBytes(db);
      while (levelBytes(db) - start < 256 * 1024 && run.child.exitCode === null) await sleep(2);
      await sleep(Math.round(seededRandom(SEED + 2)() * 200));
    } finally {
      run.child.kill('SIGINT');
    }
    const stopped = await run.done;
    expect(stopped.code, stopped.stderr).toBe(1);
    expect(stopped.stderr).toContain('[OPTOUT_ERR_ABORTED]');
    const s = await stats(db);
    expect(s.jobs).toHaveLength(1);
    const job = s.jobs[0] as StatsJob;
    expect(job.state).toBe('interrupted');
    expect(isPartial(job), `read ${job.rows} rows, wrote ${job.unique} keys`).toBe(true);
    // The job record and the entries were written in the same batches: they agree.
    expect.soft(s.entries, 'entries written vs the job record\'s added count').toBe(job.added);
    await expectResumedLikeClean(args, db, rejects);
  });

  it('a --dry-run or a wrong --confirm after a crash does not resume the job or write anything', async () => {
    const small = join(dir, 'small.csv');
    await writeList({ rows: 100_000, seed: SEED + 1, out: small });
    const db = join(dir, 'C');
    const rejects = join(dir, 'rejects-C.csv');
    const common = ['--db', db, 'import', small, '--json', '--rejects', rejects];
    // Kill once a job record exists (it is written right after the store is opened).
    let job: StatsJob | undefined;
    for (let delay = 100; job === undefined && delay < 5_000; delay *= 2) {
      await killDuring([...common, '--yes'], db, { after: 'owned', ms: delay });
      job = (await stats(db)).jobs[0];
    }
    expect(job?.state).toBe('importing');
    const before = await dumpStore(db);

    const dry = await runCli([...common, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(parseJson<Report>(dry)).toMatchObject({ dryRun: true, confirmed: false, resumed: false, jobId: null });
    expect(dry.stderr).not.toContain('Resuming');
    expect(await dumpStore(db)).toEqual(before);

    const wrong = await runCli([...common, '--confirm', '1']);
    expect(wrong.code, wrong.stderr).toBe(3);
    expect(parseJson<Report>(wrong)).toMatchObject({ confirmed: false, jobId: null });
    expect(await dumpStore(db)).toEqual(before);
  });
});
