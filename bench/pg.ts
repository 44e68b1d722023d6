/**
 * PostgreSQL and API replicas, each figure beside its anchor in the same run:
 * - chunk commits (an import's writing phase: exactly-once chunks of 32,768 new keys) into
 *   PostgreSQL against the same chunks into the embedded LevelDB store;
 * - whole imports (`runImport` with its worker threads: read, spool, dedup, write) of one
 *   generated list into PostgreSQL and into the embedded store, wall time and rows/s;
 * - an empty replica's start-up (`openReplicaView` + `FeedFollower.start`) from a database of
 *   many entries (10M by default), with the process's peak RSS while it loads;
 * - loading an empty replica's view from a snapshot of the database (keys/s);
 * - checks answered from a replica's view against the embedded store holding the same entries
 *   (in-process, half of the addresses suppressed);
 * - feed lag under single adds at a fixed rate: from each add's acknowledgement to the moment a
 *   replica has applied it, and the add's own latency from its scheduled time.
 *
 * `npm run bench:pg -- [--entries 2000000] [--import-rows 2000000] [--replica-entries 10000000] [--runs 3] [--rate 200] [--duration 10] [--update-readme]`
 *
 * PostgreSQL: `$OPTOUT_BENCH_PG_URL` (a database this benchmark may empty), else a throwaway
 * cluster of the installed server (fsync off, as the tests' clusters: the figures then leave out
 * the WAL flush a production commit waits for; and {@link CLUSTER_SETTINGS}). The table states
 * the server's settings that bear on the figures. Progress goes to stderr,
 * the markdown result to stdout. Exit 1 on a failure (a wrong count or answer), 2 on bad arguments.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Checker } from '../src/check/checker.js';
import { hashHex, hashKeyTuple } from '../src/filter/hash.js';
import { FeedFollower } from '../src/replica/follower.js';
import { openReplicaView } from '../src/replica/open-view.js';
import { runImport } from '../src/pipeline/run-import.js';
import { emptyCounts } from '../src/store/counts.js';
import type { JobRecord } from '../src/store/jobs.js';
import { LevelStore } from '../src/store/level/level-store.js';
import { entryHash } from '../src/store/pg/entry-hash.js';
import { migrate } from '../src/store/pg/migrate.js';
import { PgLedger } from '../src/store/pg/pg-ledger.js';
import { ACCOUNT_WIDE, type Ledger } from '../src/store/store.js';
import { Latencies } from './lib/load.js';
import { formatBytes, formatNumber, formatRate, formatSeconds, markdownTable, median } from './lib/measure.js';
import { BenchFailure, makeLog, packageRoot, parseCount, runIfMain, updateReadme } from './lib/harness.js';
import { writeList } from './generate.js';
import { admin, serverBinaries, startCluster, waitForServer } from './lib/pg-cluster.js';

const log = makeLog('bench:pg');
const USAGE = 'Usage: npm run bench:pg -- [--entries N] [--import-rows N] [--replica-entries N] [--runs R] [--rate ADDS_PER_S] [--duration S] [--update-readme]';
const SECTION = 'bench:pg';
const CHUNK = 32_768;
const CHECKS = 400_000;

interface Options { entries: number; importRows: number; replicaEntries: number; runs: number; rate: number; duration: number; updateReadme: boolean }

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv], strict: true,
    options: {
      entries: { type: 'string', default: '2000000' }, 'import-rows': { type: 'string', default: '2000000' },
      'replica-entries': { type: 'string', default: '10000000' }, runs: { type: 'string', default: '3' }, rate: { type: 'string', default: '200' },
      duration: { type: 'string', default: '10' }, 'update-readme': { type: 'boolean', default: false },
    },
  });
  return {
    entries: parseCount('--entries', values.entries, CHUNK, 50_000_000),
    importRows: parseCount('--import-rows', values['import-rows'], 1_000, 50_000_000),
    replicaEntries: parseCount('--replica-entries', values['replica-entries'], 1_000, 100_000_000),
    runs: parseCount('--runs', values.runs, 1, 20),
    rate: parseCount('--rate', values.rate, 1, 5_000),
    duration: parseCount('--duration', values.duration, 1, 600),
    updateReadme: values['update-readme'] === true,
  };
}

/** The i-th key of the benchmark: already what the address policy makes of it. */
function keyOf(i: number): string {
  return `u${i}@ex${i % 1000}.example`;
}

function importJob(): Omit<JobRecord, 'id'> {
  const now = new Date().toISOString();
  return {
    kind: 'import', state: 'importing', scope: ACCOUNT_WIDE, reason: 'unsubscribed', source: 'bench:pg', confirmed: 'yes', confirmedCount: null,
    fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
    createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
    checkpoint: { phase: 'merge', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 0, lengths: [] }, bucket: 0 },
    error: null,
  };
}

/** Commits keys [0, n) as one import job of new keys, in chunks; gives the seconds it took. */
async function commitChunks(store: Ledger, n: number): Promise<number> {
  const started = performance.now();
  let job = await store.createJob(importJob());
  const codec = store.chunkKeyCodec(ACCOUNT_WIDE);
  for (let from = 0, bucket = 0; from < n; from += CHUNK, bucket++) {
    const writer = store.beginChunk(ACCOUNT_WIDE, job.id);
    const to = Math.min(n, from + CHUNK);
    for (let i = from; i < to; i++) {
      const key = keyOf(i);
      writer.putEntry(codec.prefix + (codec.withHash ? hashHex(hashKeyTuple(key)[0]) : '') + key, undefined);
    }
    job = { ...job, checkpoint: { ...job.checkpoint, bucket: bucket + 1 } };
    const result = await writer.commit(job, to - from);
    if (result.added !== to - from) throw new BenchFailure(`a chunk of ${to - from} new keys stored ${result.added}`);
  }
  await store.putJob({ ...job, state: 'completed', finishedAt: new Date().toISOString() });
  return (performance.now() - started) / 1000;
}

/** Seconds `runImport` takes to import `list` into `db` (a folder or a migrated database), with its report. */
async function importSeconds(list: string, db: string): Promise<{ seconds: number; unique: number; rows: number }> {
  const started = performance.now();
  const report = await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' } });
  return { seconds: (performance.now() - started) / 1000, unique: report.unique, rows: report.rows };
}

/**
 * Fills the empty ledger at `url` with `n` entries of one completed import job, straight in SQL
 * (as fast as the server inserts, and without `n` keys in the feed): what a replica starts from.
 * The keys' hashes are made here (the server cannot), and the rows go in in the primary key's
 * order, as an import's chunks append them.
 */
async function fillEntries(url: string, n: number): Promise<void> {
  const ledger = await PgLedger.open(url);
  try {
    const job = await ledger.createJob(importJob());
    await ledger.putJob({ ...job, state: 'completed', finishedAt: new Date().toISOString() });
    // Each key's number under its hash, sorted: the order of the primary key.
    const order = new BigUint64Array(n);
    for (let i = 0; i < n; i++) order[i] = (BigInt(hashKeyTuple(keyOf(i))[0]) << 32n) | BigInt(i);
    order.sort();
    // Batches keep each statement well under the pool's statement timeout.
    const batch = 200_000;
    await admin(url, async (c) => {
      for (let from = 0; from < n; from += batch) {
        const keys: string[] = [];
        const hashes: number[] = [];
        for (let j = from; j < Math.min(n, from + batch); j++) {
          const packed = order[j] as bigint;
          keys.push(keyOf(Number(packed & 0xffff_ffffn)));
          hashes.push(entryHash(Number(packed >> 32n)));
        }
        await c.query('INSERT INTO entries (hash, scope, key, job) SELECT h, $1, k, $2 FROM unnest($3::int[], $4::text[]) AS t(h, k)',
          [ACCOUNT_WIDE, job.id, hashes, keys]);
        if ((from / batch) % 5 === 4 || from + batch >= n) log(`  ${formatNumber(Math.min(n, from + batch))} entries`);
      }
      await c.query('INSERT INTO count_deltas (scope, delta) VALUES ($1, $2)', [ACCOUNT_WIDE, n]);
      await c.query('VACUUM ANALYZE entries');
    });
  } finally {
    await ledger.close();
  }
}

/** An empty replica view loaded from the ledger at `url`: seconds, and the process's peak RSS meanwhile (sampled every 50 ms). */
async function replicaStartup(url: string, dir: string, n: number): Promise<{ seconds: number; peakRss: number; before: number }> {
  const ledger = await PgLedger.open(url);
  const before = process.memoryUsage().rss;
  let peakRss = before;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 50);
  try {
    const started = performance.now();
    const view = await openReplicaView(dir, ledger);
    const follower = new FeedFollower(ledger, view);
    try {
      await follower.start();
      const seconds = (performance.now() - started) / 1000;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      if (view.totalEntries() !== n) throw new BenchFailure(`the replica view holds ${view.totalEntries()} entries, not ${n}`);
      return { seconds, peakRss, before };
    } finally {
      await follower.stop();
      await view.close();
    }
  } finally {
    clearInterval(sampler);
    await ledger.close();
  }
}

/** Checks/s of `checker` over `n` keys spread over [0, 2 * entries): half of them stored. */
function checkRate(checker: Checker, entries: number, n = CHECKS): number {
  const emails = Array.from({ length: n }, (_, i) => keyOf((i * 7919) % (2 * entries)));
  const expected = Array.from({ length: n }, (_, i) => (i * 7919) % (2 * entries)).filter((k) => k < entries).length;
  const started = performance.now();
  let suppressed = 0;
  for (const email of emails) if (!checker.decide({ email }).eligible) suppressed++;
  const seconds = (performance.now() - started) / 1000;
  if (suppressed !== expected) throw new BenchFailure(`${suppressed} checks answered suppressed, ${expected} expected`);
  return n / seconds;
}

/**
 * The throwaway cluster's settings besides fsync off: memory for the server's pages as a server
 * given to the ledger would have (the default, 128 MB, is sized for small machines; the entries'
 * table and key index outgrow it at 2M keys, and every chunk then evicts pages the next one reads
 * back), and WAL between checkpoints enough that a whole import does not checkpoint every few
 * chunks (after each checkpoint, the first change to a page writes the whole page to the WAL).
 */
const CLUSTER_SETTINGS = { shared_buffers: '1GB', max_wal_size: '4GB' };
/** The server settings the table states. */
const SHOWN = ['fsync', 'synchronous_commit', 'shared_buffers', 'max_wal_size'] as const;

interface Cluster { url: string; settings: Record<string, string>; stop(): Promise<void> }

async function settingsOf(url: string): Promise<Record<string, string>> {
  return admin(url, async (c) => {
    const shown: Record<string, string> = {};
    for (const name of SHOWN) shown[name] = String(Object.values((await c.query(`SHOW ${name}`)).rows[0] ?? {})[0] ?? '?');
    return shown;
  });
}

async function cluster(): Promise<Cluster> {
  const given = process.env['OPTOUT_BENCH_PG_URL'];
  if (given !== undefined && given !== '') {
    await waitForServer(given);
    return { url: given, settings: await settingsOf(given), stop: async () => undefined };
  }
  const bin = serverBinaries();
  if (bin === undefined) throw new BenchFailure('No PostgreSQL: set OPTOUT_BENCH_PG_URL or install the server (apt-get install postgresql)');
  log('starting a throwaway PostgreSQL cluster');
  const started = await startCluster(bin, CLUSTER_SETTINGS);
  await waitForServer(started.url);
  return { ...started, settings: await settingsOf(started.url) };
}

async function emptyDatabase(url: string): Promise<void> {
  await admin(url, (c) => c.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public'));
  await migrate(url);
}

interface Spread { median: number; min: number; max: number }
function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}
const rate = (s: Spread, unit: string): string => `${formatRate(s.median)} ${unit} (${formatRate(s.min)}-${formatRate(s.max)})`;

/** Adds in flight at once: enough to hold the rate when one commit waits on another. */
const IN_FLIGHT = 16;

/**
 * Single adds at a fixed rate through `writer` (at most IN_FLIGHT at once); the follower's
 * reports of applied positions give each add's lag from its acknowledgement.
 */
async function feedLag(url: string, writer: PgLedger, follower: FeedFollower, applied: Map<number, number>, o: Options):
  Promise<{ lag: Latencies; add: Latencies }> {
  const lag = new Latencies();
  const add = new Latencies();
  const head = await writer.head();
  const total = o.rate * o.duration;
  const acked = new Map<string, number>();
  const interval = 1000 / o.rate;
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now() + 50;
  const tag = Date.now();
  for (let i = 0; i < total; i++) {
    const scheduled = t0 + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    const key = `lag${i}.${tag}@feed.example`;
    const [h1, h2] = hashKeyTuple(key);
    const sent: Promise<void> = writer.addSuppression({ key, h1, h2, scope: ACCOUNT_WIDE, address: key, reason: 'manual', source: 'bench:pg', actor: 'bench' },
      (outcome) => writer.audit({ actor: 'bench', action: 'add', key, job: outcome.job, unit: null, details: {} }))
      .then(() => {
        const now = performance.now();
        acked.set(key, now);
        add.add(now - scheduled);
      })
      .finally(() => inFlight.delete(sent));
    inFlight.add(sent);
  }
  await Promise.all(inFlight);
  // Each add is one change that puts its key: its position, read back from the feed.
  const positions = await admin(url, async (c) => (await c.query<{ seq: string; key: string }>(
    `SELECT seq, body->'put'->0->>'key' AS key FROM changes WHERE seq > $1`, [head])).rows);
  if (positions.length !== total) throw new BenchFailure(`${positions.length} changes for ${total} adds`);
  const last = Math.max(...positions.map((p) => Number(p.seq)));
  if (!(await follower.waitFor(last, 30_000))) throw new BenchFailure(`the replica did not reach position ${last}`);
  for (const p of positions) {
    const at = applied.get(Number(p.seq));
    const ack = acked.get(p.key);
    if (at === undefined || ack === undefined) throw new BenchFailure(`position ${p.seq} (${p.key}) was not acknowledged and applied`);
    // Applied before the writer heard its commit acknowledged: no lag.
    lag.add(Math.max(0, at - ack));
  }
  return { lag, add };
}

async function main(argv: readonly string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const root = packageRoot();
  const pg = await cluster();
  const work = await mkdtemp(join(tmpdir(), 'optout-bench-pg-'));
  const load = loadavg()[0] ?? 0;
  try {
    const pgCommit: number[] = [];
    const levelCommit: number[] = [];
    const bootstrap: number[] = [];
    const replicaChecks: number[] = [];
    const embeddedChecks: number[] = [];
    let lagResult: Awaited<ReturnType<typeof feedLag>> | undefined;
    const pgImport: number[] = [];
    const levelImport: number[] = [];
    const list = join(work, 'list.csv');
    log(`generating a list of ${formatNumber(o.importRows)} rows`);
    await writeList({ rows: o.importRows, seed: 20_261_207, out: list });
    let importUnique = 0;
    for (let run = 1; run <= o.runs; run++) {
      log(`run ${run}/${o.runs}: importing ${formatNumber(o.importRows)} rows into PostgreSQL and into LevelDB`);
      await emptyDatabase(pg.url);
      const level = join(work, `import-${run}`);
      // The order alternates from run to run: neither always gets the cooler machine.
      const order = run % 2 === 1 ? ['pg', 'level'] as const : ['level', 'pg'] as const;
      const got: Record<string, { seconds: number; unique: number }> = {};
      for (const which of order) got[which] = await importSeconds(list, which === 'pg' ? pg.url : level);
      await rm(level, { recursive: true, force: true });
      const [onPg, onLevel] = [got['pg'], got['level']] as [{ seconds: number; unique: number }, { seconds: number; unique: number }];
      if (onPg.unique !== onLevel.unique) throw new BenchFailure(`PostgreSQL counted ${onPg.unique} distinct keys, LevelDB ${onLevel.unique}`);
      importUnique = onPg.unique;
      pgImport.push(onPg.seconds);
      levelImport.push(onLevel.seconds);
    }
    for (let run = 1; run <= o.runs; run++) {
      log(`run ${run}/${o.runs}: ${formatNumber(o.entries)} keys into PostgreSQL and into LevelDB`);
      await emptyDatabase(pg.url);
      const ledger = await PgLedger.open(pg.url);
      const level = await LevelStore.open(join(work, `level-${run}`));
      try {
        pgCommit.push(o.entries / (await commitChunks(ledger, o.entries)));
        levelCommit.push(o.entries / (await commitChunks(level, o.entries)));
        log('loading an empty replica view');
        const started = performance.now();
        const view = await openReplicaView(join(work, `replica-${run}`), ledger);
        // Every position up to the one reported was applied then (a page holds several changes).
        const applied = new Map<number, number>();
        let reported = 0;
        const onApplied = (seq: number): void => {
          const now = performance.now();
          for (let s = reported + 1; s <= seq; s++) applied.set(s, now);
          reported = seq;
        };
        const follower = new FeedFollower(ledger, view, { onApplied });
        try {
          await follower.start();
          bootstrap.push(o.entries / ((performance.now() - started) / 1000));
          if (view.totalEntries() !== o.entries) throw new BenchFailure(`the view holds ${view.totalEntries()} entries, not ${o.entries}`);
          log('checks: the replica view and the embedded store, in turns');
          const onView = new Checker(view, await view.filter(), ledger);
          const onLevel = new Checker(level, await level.filter());
          // Both warmed up first; then the order alternates from run to run.
          checkRate(onView, o.entries, CHECKS / 10);
          checkRate(onLevel, o.entries, CHECKS / 10);
          if (run % 2 === 1) {
            replicaChecks.push(checkRate(onView, o.entries));
            embeddedChecks.push(checkRate(onLevel, o.entries));
          } else {
            embeddedChecks.push(checkRate(onLevel, o.entries));
            replicaChecks.push(checkRate(onView, o.entries));
          }
          if (run === o.runs) {
            log(`feed lag: ${o.rate} adds/s for ${o.duration} s`);
            const writer = await PgLedger.open(pg.url);
            try {
              lagResult = await feedLag(pg.url, writer, follower, applied, o);
            } finally {
              await writer.close();
            }
          }
        } finally {
          await follower.stop();
          await view.close();
        }
      } finally {
        await ledger.close();
        await level.close();
        await rm(join(work, `level-${run}`), { recursive: true, force: true });
        await rm(join(work, `replica-${run}`), { recursive: true, force: true });
      }
    }
    log(`replica start-up: filling a database with ${formatNumber(o.replicaEntries)} entries`);
    await emptyDatabase(pg.url);
    await fillEntries(pg.url, o.replicaEntries);
    log('loading an empty replica view from it');
    const startup = await replicaStartup(pg.url, join(work, 'replica-startup'), o.replicaEntries);
    await rm(join(work, 'replica-startup'), { recursive: true, force: true });

    const commitPg = spread(pgCommit);
    const importPg = spread(pgImport);
    const importLevel = spread(levelImport);
    const wall = (t: Spread): string => `${formatSeconds(t.median)} s (${formatSeconds(t.min)}-${formatSeconds(t.max)}), ` +
      `${formatRate(o.importRows / t.median)} rows/s (${formatRate(o.importRows / t.max)}-${formatRate(o.importRows / t.min)})`;
    const commitLevel = spread(levelCommit);
    const checksReplica = spread(replicaChecks);
    const checksEmbedded = spread(embeddedChecks);
    const lag = (lagResult as NonNullable<typeof lagResult>).lag.summary();
    const add = (lagResult as NonNullable<typeof lagResult>).add.summary();
    const ms = (v: number): string => `${formatNumber(v, 1)} ms`;
    const table = markdownTable(['what', 'PostgreSQL / replica', 'embedded, same run', 'ratio', 'target'], [
      ['chunk commits, 32,768 new keys each', rate(commitPg, 'keys/s'), rate(commitLevel, 'keys/s'), `${(commitPg.median / commitLevel.median).toFixed(2)}x`, ''],
      [`whole import, ${formatNumber(o.importRows)} rows (\`runImport\`)`, wall(importPg), wall(importLevel),
        `${(importLevel.median / importPg.median).toFixed(2)}x`, '>= 0.5x'],
      ['checks in-process, half suppressed', rate(checksReplica, 'checks/s'), rate(checksEmbedded, 'checks/s'), `${(checksReplica.median / checksEmbedded.median).toFixed(2)}x`, '>= 0.9x'],
      ['empty replica loaded from a snapshot', rate(spread(bootstrap), 'keys/s'), '', '', ''],
      [`replica start-up, ${formatNumber(o.replicaEntries)} entries`, `${formatSeconds(startup.seconds)} s, ${formatRate(o.replicaEntries / startup.seconds)} keys/s, ` +
        `peak RSS ${formatBytes(startup.peakRss)}`, '', '', ''],
      [`feed lag, ${o.rate} single adds/s: ack -> applied`, `p50 ${ms(lag.p50)}, p99 ${ms(lag.p99)}`, '', '', 'p99 <= 100 ms'],
      [`single add, from its scheduled time`, `p50 ${ms(add.p50)}, p99 ${ms(add.p99)}`, '', '', ''],
    ], ['left', 'right', 'right', 'right', 'left']);
    const block = [
      `\`npm run bench:pg -- --entries ${o.entries} --import-rows ${o.importRows} --replica-entries ${o.replicaEntries} --runs ${o.runs} ` +
      `--rate ${o.rate} --duration ${o.duration} --update-readme\``,
      '',
      table,
      '',
      `Chunk commits, snapshot loads and checks: ${formatNumber(o.entries)} distinct keys, median of ${o.runs} runs (min-max). ` +
      `Whole imports: one generated list of ${formatNumber(o.importRows)} rows (${formatNumber(importUnique)} distinct keys; duplicates, invalid cells, ` +
      `mixed case) into an empty database and an empty folder, worker threads as \`optout import\` uses them, the two in turns; ` +
      `the ratio is LevelDB's time over PostgreSQL's. Replica start-up: one run, \`openReplicaView\` and \`FeedFollower.start\` on an empty folder until ` +
      `the view holds every entry, RSS sampled every 50 ms (${formatBytes(startup.before)} before). Feed lag from the last run: ${formatNumber(o.rate * o.duration)} adds from another pool (up to ${IN_FLIGHT} in flight), ` +
      `the replica woken by LISTEN/NOTIFY and polling every 100 ms. PostgreSQL ${pg.settings['fsync'] === 'on' ? 'with fsync on' : 'with fsync off (commits skip the WAL flush a production commit waits for)'}, on the same machine, ` +
      `${SHOWN.filter((n) => n !== 'fsync').map((n) => `${n} ${pg.settings[n] ?? '?'}`).join(', ')}. ` +
      `Checks: \`Checker.decide\` on ${formatNumber(CHECKS)} addresses. Load average ${load.toFixed(1)} before, ${(loadavg()[0] ?? 0).toFixed(1)} after. ` +
      `Machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? '?'}), ${(totalmem() / 1e9).toFixed(1)} GB RAM, Node ${process.version}, ${platform()} ${arch()}.`,
    ].join('\n');
    process.stdout.write(`${block}\n`);
    if (o.updateReadme) await updateReadme(root, SECTION, block, log);
    return 0;
  } finally {
    await rm(work, { recursive: true, force: true });
    await pg.stop();
  }
}

runIfMain(import.meta.url, 'bench:pg', main);
