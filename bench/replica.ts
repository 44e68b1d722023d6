/**
 * API replica benchmark: `optout serve --db <postgres> --replica <dir>` against the embedded
 * `optout serve --db <folder>` of the same list, in one run: how soon each is ready after a start
 * (the replica from its own folder, as after a restart, and from an empty folder, where it first
 * loads a snapshot of the database), and how many checks each answers over HTTP (single GETs on
 * 64 connections, POST batches of 1,000). Each server runs alone while it is measured.
 *
 * `npm run bench:replica -- [--entries 2000000] [--seed S] [--runs 3] [--duration 5] [--update-readme]`
 *
 * The database is `$OPTOUT_BENCH_PG_URL`'s cluster (a database `optout_bench_replica_<entries>` is
 * made there and kept for the next run), or a throwaway cluster of the installed server. The
 * list and the embedded store are built once under data/generated/ and reused (as bench:check).
 * Progress goes to stderr, the markdown result to stdout. Exit 1 on a failure, 2 on bad arguments.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { createKey } from '../src/auth/api-keys.js';
import { OptoutClient } from '../src/client/client.js';
import { LevelStore } from '../src/store/level/level-store.js';
import { migrate } from '../src/store/pg/migrate.js';
import { PgLedger } from '../src/store/pg/pg-ledger.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { closedLoop, firstColumn } from './lib/load.js';
import { formatBytes, formatNumber, formatRate, markdownTable, median, timeChild } from './lib/measure.js';
import { BenchFailure, ensureList, ensureOk, ensureStore, freePort, makeLog, packageRoot, parseCount, runIfMain, tail, updateReadme } from './lib/harness.js';
import { admin, serverBinaries, startCluster, waitForServer, withDatabase } from './lib/pg-cluster.js';

const log = makeLog('bench:replica');
const USAGE = 'Usage: npm run bench:replica -- [--entries N] [--seed S] [--runs R] [--duration S] [--update-readme]';
const SECTION = 'bench:replica';
const CONNECTIONS = 64;
const BATCH = 1_000;
const BATCH_CONCURRENCY = 8;
const POOL = 10_000;
const READY_TARGET_S = 5;

interface Started {
  child: ChildProcess;
  url: string;
  /** Seconds from the spawn until /readyz answered 200. */
  readySeconds: number;
  /**
   * Settles, with the server's line about it and the seconds from the spawn, once its key index
   * is built (checks are answered from it from then on).
   */
  indexed: Promise<{ line: string; seconds: number }>;
  stop(): Promise<void>;
}

/** Starts `optout serve` and waits until /readyz answers 200 (polled every 10 ms). */
async function startServe(cli: string, args: readonly string[]): Promise<Started> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'silent', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let onIndexed = (_line: string): void => undefined;
  const indexed = new Promise<{ line: string; seconds: number }>((r) => {
    onIndexed = (line) => r({ line, seconds: (performance.now() - t0) / 1000 });
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-50_000);
    const line = /^(key index: |cannot build the key index).*$/m.exec(stderr);
    if (line !== null) onIndexed(line[0]);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = t0 + 30 * 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new BenchFailure(`optout serve exited with ${child.exitCode}:\n${tail(stderr)}`);
    if (performance.now() > deadline) {
      await stop();
      throw new BenchFailure(`optout serve was not ready within 30 minutes:\n${tail(stderr)}`);
    }
    try {
      const res = await request(`${url}/readyz`);
      await res.body.dump();
      if (res.statusCode === 200) return { child, url, readySeconds: (performance.now() - t0) / 1000, indexed, stop };
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface HttpRates {
  get: number;
  post: number;
}

/** Single GETs on 64 connections, then POST batches of 1,000 (8 in flight), `seconds` each; only whole answers count. */
async function drive(url: string, key: string, mixed: readonly string[], seconds: number): Promise<HttpRates> {
  const client = new OptoutClient({ url, key, connections: CONNECTIONS, timeoutMs: 30_000 });
  try {
    const single = (i: number): Promise<number> => client.check({ email: mixed[i % mixed.length] as string }).then(() => 1);
    const batch = async (i: number): Promise<number> => {
      const at = (i * BATCH) % Math.max(1, mixed.length - BATCH);
      const emails = mixed.slice(at, at + BATCH);
      const decisions = await client.checkMany(emails);
      if (decisions.length !== emails.length) throw new BenchFailure(`expected ${emails.length} decisions, got ${decisions.length}`);
      return decisions.length;
    };
    // Connections, JIT and the heap settle first.
    await closedLoop(CONNECTIONS, 1, single);
    await closedLoop(BATCH_CONCURRENCY, 1, batch);
    const get = await closedLoop(CONNECTIONS, seconds, single);
    const post = await closedLoop(BATCH_CONCURRENCY, seconds, batch);
    if (get.errors + post.errors > 0) throw new BenchFailure(`${get.errors + post.errors} requests failed`);
    return { get: get.rate, post: post.rate };
  } finally {
    await client.close();
  }
}

/** The database of the run, with the list imported by the CLI; reused when a previous run left it whole. */
async function ensureDatabase(cli: string, clusterUrl: string, file: string, entries: number, expected: number): Promise<string> {
  const name = `optout_bench_replica_${entries}`;
  const url = withDatabase(clusterUrl, name);
  const exists = await admin(clusterUrl, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
  if (exists) {
    const stored = await admin(url, async (c) => Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM entries')).rows[0]?.n ?? -1)).catch(() => -1);
    if (stored === expected) {
      log(`reusing the database ${name} (${formatNumber(stored)} entries)`);
      return url;
    }
    await admin(clusterUrl, (c) => c.query(`DROP DATABASE ${name} WITH (FORCE)`));
  }
  await admin(clusterUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  await migrate(url);
  log(`importing ${file} into ${name}`);
  const r = await timeChild(process.execPath, [cli, 'import', file, '--yes', '--db', url]);
  ensureOk('optout import into PostgreSQL', r);
  log(`imported in ${r.seconds.toFixed(1)} s`);
  // Now rather than by autovacuum while a server is measured: on the same cores, its pass over
  // a freshly imported table took CPU from the replica's checks (10M entries: 0.64x the embedded
  // server's POST rate, 1.12x at 1M).
  const t = performance.now();
  await admin(url, (c) => c.query('VACUUM (ANALYZE)'));
  log(`vacuumed in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return url;
}

/** The median with min-max, then the unit: `2.31 s (2.20-2.52)`. */
function range(values: readonly number[], format: (n: number) => string, unit: string): string {
  return `${format(median(values))} ${unit} (${format(Math.min(...values))}-${format(Math.max(...values))})`;
}

export async function main(argv: readonly string[]): Promise<number> {
  let entries: number;
  let seed: number;
  let runs: number;
  let seconds: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: {
        entries: { type: 'string' }, seed: { type: 'string' }, runs: { type: 'string' }, duration: { type: 'string' },
        'update-readme': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 2_000_000 : parseCount('--entries', values.entries, 1_000, MAX_ROWS);
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    runs = values.runs === undefined ? 3 : parseCount('--runs', values.runs, 1, 50);
    seconds = values.duration === undefined ? 5 : parseCount('--duration', values.duration, 1, 600);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:replica: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new BenchFailure(`the CLI is not built: ${cli} is missing (npm run build)`);
  const loadBefore = loadavg()[0] ?? 0;
  const file = join(root, 'data', 'generated', `list-${entries}-${seed}.csv`);
  const db = join(root, 'data', 'generated', `check-db-${entries}-${seed}`);
  await ensureList(file, entries, seed, log);
  await ensureStore(cli, file, db, log);

  const present: string[] = [];
  const stride = Math.max(1, Math.floor(entries / POOL));
  let row = 0;
  for await (const cell of firstColumn(file)) if (row++ % stride === 0 && present.length < POOL) present.push(cell);
  const mixed = present.flatMap((p, i) => [`nobody.${seed}.${i}@absent-bench-domain.com`, p]);

  let stopCluster = async (): Promise<void> => {};
  let clusterUrl = process.env['OPTOUT_BENCH_PG_URL'];
  let settings = 'PostgreSQL at `$OPTOUT_BENCH_PG_URL`';
  if (clusterUrl === undefined || clusterUrl === '') {
    const bin = serverBinaries();
    if (bin === undefined) throw new BenchFailure('no $OPTOUT_BENCH_PG_URL and no PostgreSQL server binaries (apt-get install postgresql)');
    log('starting a throwaway PostgreSQL cluster (fsync off)');
    ({ url: clusterUrl, stop: stopCluster } = await startCluster(bin));
    settings = 'A throwaway PostgreSQL cluster on the same machine, fsync off';
  }
  const views: string[] = [];
  try {
    await waitForServer(clusterUrl);
    const store = await LevelStore.open(db, { purpose: 'bench:replica' });
    let stored: number;
    let embeddedKey: string;
    let embeddedBytes: number;
    try {
      stored = store.totalEntries();
      embeddedBytes = store.sizeOnDisk();
      embeddedKey = (await createKey(store, { scope: 'check' })).key;
    } finally {
      await store.close();
    }
    const url = await ensureDatabase(cli, clusterUrl, file, entries, stored);
    const ledger = await PgLedger.open(url);
    let replicaKey: string;
    try {
      replicaKey = (await createKey(ledger, { scope: 'check' })).key;
    } finally {
      await ledger.close();
    }

    const embeddedReady: number[] = [];
    const embeddedIndex: number[] = [];
    const replicaIndex: number[] = [];
    /** Seconds from the spawn to the key index in memory, from the snapshot the last clean stop saved. */
    const restartIndexed = async (args: readonly string[]): Promise<number> => {
      const server = await startServe(cli, args);
      try {
        const { line, seconds } = await server.indexed;
        log(`  ${line}`);
        if (!line.includes('loaded from its snapshot')) throw new BenchFailure(`the key index was not loaded from its snapshot: ${line}`);
        return seconds;
      } finally {
        await server.stop();
      }
    };
    const firstLoad: number[] = [];
    const ownFolder: number[] = [];
    const viewBytes: number[] = [];
    const http = { embedded: [] as HttpRates[], replica: [] as HttpRates[] };
    for (let run = 1; run <= runs; run++) {
      log(`run ${run}/${runs}: embedded server start`);
      // Every run's first start builds its key index from a scan; the restart below loads it.
      rmSync(join(db, 'key-index.snapshot'), { force: true });
      const embedded = await startServe(cli, ['--db', db]);
      embeddedReady.push(embedded.readySeconds);
      log(`  ready in ${embedded.readySeconds.toFixed(2)} s; HTTP checks, ${seconds} s each, once its key index is built`);
      log(`  ${(await embedded.indexed).line}`);
      http.embedded.push(await drive(embedded.url, embeddedKey, mixed, seconds));
      await embedded.stop();
      log(`run ${run}/${runs}: embedded server restart, until its key index is in memory`);
      embeddedIndex.push(await restartIndexed(['--db', db]));

      const view = join(await mkdtemp(join(tmpdir(), 'optout-bench-replica-')), 'view');
      views.push(view);
      log(`run ${run}/${runs}: replica start on an empty folder (snapshot load)`);
      const first = await startServe(cli, ['--db', url, '--replica', view]);
      firstLoad.push(first.readySeconds);
      log(`  ready in ${first.readySeconds.toFixed(2)} s`);
      await first.stop();
      const loaded = await LevelStore.open(view, { view: true, purpose: 'bench:replica' });
      viewBytes.push(loaded.sizeOnDisk());
      await loaded.close();
      log(`run ${run}/${runs}: replica start on its own folder`);
      const again = await startServe(cli, ['--db', url, '--replica', view]);
      ownFolder.push(again.readySeconds);
      log(`  ready in ${again.readySeconds.toFixed(2)} s; HTTP checks, ${seconds} s each, once its key index is built`);
      log(`  ${(await again.indexed).line}`);
      http.replica.push(await drive(again.url, replicaKey, mixed, seconds));
      await again.stop();
      log(`run ${run}/${runs}: replica restart, until its key index is in memory`);
      replicaIndex.push(await restartIndexed(['--db', url, '--replica', view]));
      await rm(join(view, '..'), { recursive: true, force: true });
    }

    const secondsOf = (n: number): string => n.toFixed(2);
    const getE = http.embedded.map((h) => h.get);
    const getR = http.replica.map((h) => h.get);
    const postE = http.embedded.map((h) => h.post);
    const postR = http.replica.map((h) => h.post);
    const ratio = (a: number[], b: number[]): string => `${(median(a) / median(b)).toFixed(2)}x`;
    const table = markdownTable(
      ['what', 'replica', 'embedded server, same run', 'ratio', 'target'],
      [
        ['ready after a start on its own folder (a restart)', range(ownFolder, secondsOf, 's'), range(embeddedReady, secondsOf, 's'),
          ratio(ownFolder, embeddedReady), `<= ${READY_TARGET_S} s`],
        ['key index in memory after a restart (loaded from its snapshot)', range(replicaIndex, secondsOf, 's'), range(embeddedIndex, secondsOf, 's'),
          ratio(replicaIndex, embeddedIndex), ''],
        ['ready after a start on an empty folder (snapshot load)', `${range(firstLoad, secondsOf, 's')}, ${formatRate(stored / median(firstLoad))} entries/s`, '', '', ''],
        ['disk: the view folder, and the embedded store', `${formatBytes(median(viewBytes))}, ${Math.round(median(viewBytes) / stored)} B an entry`,
          `${formatBytes(embeddedBytes)}, ${Math.round(embeddedBytes / stored)} B an entry`, ratio(viewBytes, [embeddedBytes]), ''],
        [`HTTP GET, ${CONNECTIONS} connections`, range(getR, formatRate, 'req/s'), range(getE, formatRate, 'req/s'), ratio(getR, getE), '>= 0.9x'],
        [`HTTP POST, batches of ${formatNumber(BATCH)}, ${BATCH_CONCURRENCY} in flight`, range(postR, formatRate, 'checks/s'), range(postE, formatRate, 'checks/s'),
          ratio(postR, postE), '>= 0.9x'],
      ],
      ['left', 'right', 'right', 'right', 'left'],
    );
    const loadAfter = loadavg()[0] ?? 0;
    const cpu = cpus()[0]?.model.trim() ?? '?';
    const block = [
      `\`npm run bench:replica -- --entries ${entries} --runs ${runs} --duration ${seconds}${toReadme ? ' --update-readme' : ''}\``,
      '',
      table,
      '',
      `${formatNumber(stored)} entries, median of ${runs} run${runs === 1 ? '' : 's'} (min-max). Ready: from the spawn of \`optout serve\` until \`/readyz\` answers 200 ` +
      `(a replica: once its view has caught up with the database). Key index: from the spawn until the server says its key index is in memory, ` +
      `at a start after a clean stop of a server that had built it (each run's first start builds it from a scan). HTTP: the same ${formatNumber(mixed.length)} addresses, half of them on the list, ` +
      `through the project's HTTP client, each server alone on the machine while measured. ${settings}. ` +
      `Load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after. Machine: ${cpus().length} cores (${cpu}), ` +
      `${(totalmem() / 1e9).toFixed(1)} GB RAM, Node ${process.version}, ${platform()} ${arch()}.`,
    ].join('\n');
    process.stdout.write(`${block}\n`);
    if (toReadme) await updateReadme(root, SECTION, block, log);
    return 0;
  } finally {
    for (const v of views) await rm(join(v, '..'), { recursive: true, force: true });
    await stopCluster();
  }
}

runIfMain(import.meta.url, 'bench:replica', main);
