/**
 * The whole PostgreSQL server killed (SIGKILL, every process of the cluster) in the middle of an
 * import, while it reads and once some chunks have committed: the import ends with a clear error and a non-zero
 * exit, without hanging; the server is started again on the same data folder (crash recovery),
 * and the same command resumes the job and ends with exactly the keys and counts of an
 * uninterrupted run into a fresh database.
 */
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { writeList } from '../../bench/generate.js';
import type { StartedCluster } from '../../bench/lib/pg-cluster.js';
import { waitForServer } from '../../bench/lib/pg-cluster.js';
import type { ImportReport } from '../../src/report/summary.js';
import { defaultWorkDir } from '../../src/store/pg/pg-ledger.js';
import { errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir } from '../helpers.js';
import { createDatabase, ownCluster } from '../store/pg-cluster.js';

const ROWS = 200_000;
const COUNTS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;
const countsOf = (r: ImportReport | Record<string, unknown>): Record<string, unknown> => Object.fromEntries(COUNTS.map((k) => [k, r[k]]));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` on a connection of its own to `url`, or gives undefined when the server does not answer. */
async function read<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T | undefined> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await fn(c);
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The last import job's checkpoint. */
function checkpoint(url: string): Promise<{ phase: string; bucket: number } | undefined> {
  return read(url, async (c) => (await c.query<{ record: { checkpoint: { phase: string; bucket: number } } }>(
    `SELECT record FROM jobs WHERE kind = 'import' ORDER BY id DESC LIMIT 1`)).rows[0]?.record.checkpoint);
}

/** Every (scope, key, address) stored, in order, with the holds. */
async function stored(url: string): Promise<{ entries: string[]; holds: number }> {
  const got = await read(url, async (c) => ({
    entries: (await c.query<{ k: string }>(`SELECT scope || ' ' || key || ' ' || coalesce(address, '') AS k FROM entries ORDER BY scope, key`)).rows.map((r) => r.k),
    holds: Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM holds')).rows[0]?.n),
  }));
  if (got === undefined) throw new Error(`${url} does not answer`);
  return got;
}

/** What `stats --json` and `export` print that does not depend on the run (ids, times and sizes left out). */
async function printed(url: string): Promise<unknown> {
  const stats = parseJson<{ entries: number; scopes: Record<string, number>; jobs: Array<Record<string, unknown>> }>(await runCli(['--db', url, 'stats', '--json']));
  const exported = await runCli(['--db', url, 'export']);
  expect(exported.code).toBe(0);
  return {
    entries: stats.entries,
    scopes: stats.scopes,
    jobs: stats.jobs.map((j) => ({ state: j['state'], ...countsOf(j) })),
    export: exported.stdout.trim().split('\n').map((line) => line.split(',').slice(0, 5).join(',')),
  };
}

let list = '';
let cluster: StartedCluster | undefined;
let skip: string | undefined;
beforeAll(async () => {
  list = join(await tempDir('optout-pg-server-kill-'), 'list.csv');
  await writeList({ rows: ROWS, seed: 20_261_208, out: list });
  const own = await ownCluster();
  if ('skip' in own) skip = own.skip;
  else cluster = own;
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  await removeTempDirs();
});

/** When to kill the server: once the job is reading, and once it has committed some chunks. */
const KILLS: Array<{ name: string; when: (cp: { phase: string; bucket: number }) => boolean }> = [
  { name: 'while reading', when: (cp) => cp.phase === 'spool' },
  { name: 'after some chunks', when: (cp) => cp.phase === 'merge' && cp.bucket >= 2 },
];

it('an import whose server is killed fails clearly, and the same command ends it exactly once the server is back', async (ctx) => {
  if (skip !== undefined) {
    process.stderr.write(`${skip}\n`);
    ctx.skip();
  }
  const server = cluster as StartedCluster;
  const clean = await createDatabase(server.url, 'optout_clean');
  const drills = await Promise.all(KILLS.map((_, i) => createDatabase(server.url, `optout_drill_${i}`)));
  try {
    for (const db of [clean, ...drills]) expect((await runCli(['--db', db, 'migrate'])).code).toBe(0);
    const reference = parseJson<ImportReport>(await runCli(['--db', clean, 'import', list, '--yes', '--json'], { timeoutMs: 300_000 }));
    expect(reference.unique).toBeGreaterThan(150_000);
    const expected = await stored(clean);
    expect(expected.entries).toHaveLength(reference.unique);

    for (const [i, kill] of KILLS.entries()) {
      const drill = drills[i] as string;
      const run = startCli(['--db', drill, 'import', list, '--yes', '--json'], { timeoutMs: 300_000 });
      run.child.stdin.end();
      let killed = false;
      for (let n = 0; n < 6000 && run.child.exitCode === null; n++) {
        const cp = await checkpoint(drill);
        if (cp !== undefined && kill.when(cp)) {
          await server.signal('SIGKILL');
          killed = true;
          break;
        }
        await sleep(10);
      }
      expect(killed, `the server was killed ${kill.name}`).toBe(true);
      // The pool's bounds (connect 10 s, statements 60 s) end it; the helper's 300 s would say it hung.
      const first = await run.done;
      expect(first.stderr).not.toMatch(/test helper: killed/);
      expect(first.code, first.stderr).not.toBe(0);
      expect(first.code, first.stderr).not.toBeNull();
      expect(errorCodes(first.stderr), first.stderr).toEqual(['OPTOUT_ERR_STORE']);
      expect(first.stderr).toMatch(/PostgreSQL failed to [^\n]+: /);
      expect(first.stderr).toMatch(/run the same import again to resume it/i);
      expect(first.stderr, 'no stack trace or unhandled error').not.toMatch(/\n\s+at |Unhandled|uncaught/i);

      await server.start();
      await waitForServer(server.url);
      const resumed = await runCli(['--db', drill, 'import', list, '--yes', '--json'], { timeoutMs: 300_000 });
      expect(resumed.stderr, kill.name).toMatch(/Resuming interrupted job 1/);
      const report = parseJson<ImportReport>(resumed);
      expect(report).toMatchObject({ resumed: true, jobId: '1' });
      expect(countsOf(report), kill.name).toEqual(countsOf(reference));
      expect(await stored(drill), kill.name).toEqual(expected);
      expect(await printed(drill), kill.name).toEqual(await printed(clean));
      const again = parseJson<ImportReport>(await runCli(['--db', drill, 'import', list, '--yes', '--json'], { timeoutMs: 300_000 }));
      expect(again).toMatchObject({ added: 0, alreadySuppressed: reference.unique });
    }
  } finally {
    await Promise.all([clean, ...drills].map((db) => rm(defaultWorkDir(db), { recursive: true, force: true })));
  }
}, 900_000);
