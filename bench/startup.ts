/**
 * Start-up benchmark: how long a store of 10M entries takes to be ready, for every way its key
 * filter can be loaded (filter-rebuild.ts): the snapshot, an older snapshot plus the filter log
 * (what a killed import or server leaves), the log alone (no snapshot), and the full scan of the
 * entry keys (the fallback when the log has a gap). Each is timed in a fresh process, through the
 * library (LevelStore.open + filter) and through `optout serve` until GET /readyz answers 200.
 * Then how long `optout serve` takes to hold its key index (key-index.ts), which it builds once
 * ready: from a scan of the entries (a first start, or one after a crash), and from the index's
 * snapshot (a restart after a clean stop).
 *
 * `npm run bench:startup -- [--entries 10000000] [--seed S] [--runs 3] [--update-readme]`
 *
 * The list and the store are built once under data/bench/ (not committed) with the real CLI and
 * reused. The store is left as it was: scenarios change only its snapshot file, which is put back.
 * Progress goes to stderr, the markdown result to stdout. Exit 1 on a failure (a wrong or
 * incomplete filter included), 2 on bad arguments.
 * Internal: `node dist/bench/startup.js --load <db> <filter|scan>` is the measured child process.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { KeyFilter } from '../src/filter/bloom.js';
import { hashKey } from '../src/filter/hash.js';
import { saveFilterSnapshot } from '../src/store/level/filter-snapshot.js';
import { generationToken, replayFilterLog, scanEntryKeys } from '../src/store/level/filter-rebuild.js';
import { entryKeyStart, entryRange, filterLogKey } from '../src/store/level/keys.js';
import { LevelStore } from '../src/store/level/level-store.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { formatBytes, formatNumber, markdownTable, median, timeChild } from './lib/measure.js';
import { BenchFailure, ensureList, ensureStore, freePort, makeLog, packageRoot, parseCount, runIfMain, updateReadme } from './lib/harness.js';
import { startChildServer } from './lib/load.js';

const log = makeLog('bench:startup');
const USAGE = 'Usage: npm run bench:startup -- [--entries N] [--seed S] [--runs R] [--update-readme]';
const SECTION = 'bench:startup';
/** Generated rows per wanted entry: the generator's lists hold ~6% duplicates and invalid rows. */
const ROWS_PER_ENTRY = 1.07;
/** Stored keys the child checks against the filter it loaded, before its time means anything. */
const VERIFY_KEYS = 200_000;
const TARGET_SECONDS = 5;

interface LoadResult {
  source: string;
  entries: number;
  openMs: number;
  filterMs: number;
  verified: number;
}

/**
 * The child: opens the store, loads the filter the way `mode` says, checks it, prints timings.
 * The snapshot is left as it was (the store is not closed through LevelStore, which would save one).
 */
async function loadChild(db: string, mode: string): Promise<void> {
  const t0 = performance.now();
  const store = await LevelStore.open(db, { purpose: 'bench:startup' });
  const t1 = performance.now();
  let filter: KeyFilter;
  let source: string;
  if (mode === 'scan') {
    filter = KeyFilter.create(Math.max(1 << 20, Math.ceil(store.totalEntries() * 1.5)));
    await scanEntryKeys(store.db, filter, store.counts().keys());
    source = 'scan';
  } else {
    filter = await store.filter();
    source = store.filterSource ?? '?';
  }
  const t2 = performance.now();
  const hashes = new Uint32Array(3);
  let verified = 0;
  for await (const dbKey of store.db.keys({ ...entryRange(), limit: VERIFY_KEYS })) {
    hashKey(dbKey, hashes, 0, entryKeyStart(dbKey));
    if (!filter.mightContain(hashes[0] as number, hashes[1] as number)) throw new BenchFailure(`the ${source} filter misses ${dbKey}`);
    verified++;
  }
  if (filter.count < store.totalEntries()) throw new BenchFailure(`the ${source} filter holds ${filter.count} keys, the store ${store.totalEntries()}`);
  const entries = store.totalEntries();
  await store.db.close();
  rmSync(join(db, 'owner.json'), { force: true });
  const result: LoadResult = { source, entries, openMs: t1 - t0, filterMs: t2 - t1, verified };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * A snapshot saved half-way through the store's history: what a writer killed after that point
 * leaves behind (its later batches are in the store and in the log, not in the snapshot).
 */
async function makeOlderSnapshot(db: string, out: string): Promise<{ older: number; current: number }> {
  const store = await LevelStore.open(db, { purpose: 'bench:startup' });
  const dir = await mkdtemp(join(tmpdir(), 'optout-bench-startup-'));
  try {
    const current = store.generation;
    const older = Math.floor(current / 2);
    const filter = KeyFilter.create(Math.max(1 << 20, Math.ceil(store.totalEntries() * 1.5)));
    if (!(await replayFilterLog(store.db, filter, 0, older))) throw new BenchFailure('the store has no complete filter log');
    const token = await generationToken(store.db, older);
    if (token === undefined) throw new BenchFailure(`the filter log record of generation ${older} is damaged`);
    await saveFilterSnapshot(dir, filter, older, token);
    copyFileSync(join(dir, 'filter.snapshot'), out);
    return { older, current };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` while the log record of generation 1 is out of the store (as in a store written
 * before the log existed), then puts it back as it was.
 */
async function withLogGap<T>(db: string, fn: () => Promise<T>): Promise<T> {
  const edit = async (change: (level: ClassicLevel<string, Buffer>) => Promise<void>): Promise<void> => {
    const level = new ClassicLevel<string, Buffer>(join(db, 'leveldb'), { createIfMissing: false, valueEncoding: 'buffer' });
    await level.open();
    try {
      await change(level);
    } finally {
      await level.close();
    }
  };
  let record: Buffer | undefined;
  await edit(async (level) => {
    record = await level.get(filterLogKey(1));
    if (record === undefined) throw new BenchFailure('the store has no filter log record of generation 1');
    await level.del(filterLogKey(1));
  });
  try {
    return await fn();
  } finally {
    await edit((level) => level.put(filterLogKey(1), record as Buffer, { sync: true }));
  }
}

/** Seconds from spawning `optout serve` to the first 200 on /readyz, and the filter's source. */
async function serveUntilReady(cli: string, db: string): Promise<{ seconds: number; source: string }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--db', db], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => { stderr += s; });
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  try {
    const deadline = started + 120_000;
    for (;;) {
      if (child.exitCode !== null) throw new BenchFailure(`optout serve exited with ${child.exitCode}:\n${stderr}`);
      if (performance.now() > deadline) throw new BenchFailure(`optout serve was not ready within 120 s:\n${stderr}`);
      const status = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (performance.now() - started) / 1000;
    return { seconds, source: /key filter from (\w+)/.exec(stderr)?.[1] ?? '?' };
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Seconds from spawning `optout serve` to its line saying the key index is in memory, which must
 * say it came from `index` ('built': a scan; 'loaded': the snapshot); then a clean stop, which
 * saves the index's snapshot when it was scanned.
 */
async function serveUntilIndexed(cli: string, db: string, index: 'built' | 'loaded'): Promise<{ seconds: number; source: string; detail: string }> {
  const child = await startChildServer([cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--db', db], { readyWhen: /^key index: /m });
  try {
    const line = /^key index: (\d+) entries in memory \((\d+) MiB\), (built|loaded from its snapshot) in \d+ ms$/m.exec(child.stderr());
    if (line === null) throw new BenchFailure(`optout serve did not say how it made its key index:\n${child.stderr()}`);
    if (!line[3]?.startsWith(index)) throw new BenchFailure(`the key index was ${line[3] ?? '?'}, expected ${index}`);
    return {
      seconds: child.secondsToReady, source: /key filter from (\w+)/.exec(child.stderr())?.[1] ?? '?',
      detail: `${formatNumber(Number(line[1]))} entries, ${line[2] ?? '?'} MiB`,
    };
  } finally {
    await child.stop();
  }
}

interface Scenario {
  name: string;
  expect: string;
  /** The target column; by default a serve row's readiness target. */
  target?: string;
  /** Puts the snapshot file in the state the scenario starts from. */
  prepare: () => void;
  run: () => Promise<{ seconds: number; source: string; detail?: string }>;
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--load' && argv[1] !== undefined && argv[2] !== undefined) {
    await loadChild(argv[1], argv[2]);
    return 0;
  }
  let entries: number;
  let seed: number;
  let runs: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: {
        entries: { type: 'string' }, seed: { type: 'string' }, runs: { type: 'string' },
        'update-readme': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 10_000_000 : parseCount('--entries', values.entries, 1_000, Math.floor(MAX_ROWS / ROWS_PER_ENTRY));
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    runs = values.runs === undefined ? 3 : parseCount('--runs', values.runs, 1, 100);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:startup: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const self = join(root, 'dist', 'bench', 'startup.js');
  if (!existsSync(cli)) throw new BenchFailure(`the CLI is not built: ${cli} is missing (npm run build)`);
  const rows = Math.ceil(entries * ROWS_PER_ENTRY);
  const benchDir = join(root, 'data', 'bench');
  const file = join(benchDir, `list-${rows}-${seed}.csv`);
  const db = join(benchDir, `store-${rows}-${seed}`);
  await ensureList(file, rows, seed, log);
  await ensureStore(cli, file, db, log);

  const snapshot = join(db, 'filter.snapshot');
  const pristine = join(benchDir, `store-${rows}-${seed}.snapshot`);
  const older = join(benchDir, `store-${rows}-${seed}.older-snapshot`);
  if (!existsSync(pristine)) {
    if (!existsSync(snapshot)) throw new BenchFailure(`${snapshot} is missing: remove ${db} to rebuild the store`);
    copyFileSync(snapshot, pristine);
  }
  const generations = await makeOlderSnapshot(db, older);

  // Measured without it but in its own rows: the readiness rows build the index from a scan,
  // in the background of the first /readyz, as they did before the index had a snapshot.
  const indexSnapshot = join(db, 'key-index.snapshot');
  const useSnapshot = (from: string | undefined) => (): void => {
    if (from === undefined) rmSync(snapshot, { force: true });
    else copyFileSync(from, snapshot);
    rmSync(indexSnapshot, { force: true });
  };
  const library = (mode: string) => async (): Promise<{ seconds: number; source: string; detail: string }> => {
    const r = await timeChild(process.execPath, [self, '--load', db, mode]);
    if (r.exitCode !== 0) throw new BenchFailure(`the load child exited with ${r.exitCode ?? r.signal ?? '?'}:\n${r.stderr.slice(-2000)}`);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as LoadResult;
    if (result.entries < entries) throw new BenchFailure(`the store holds ${result.entries} entries, fewer than ${entries}`);
    return {
      seconds: (result.openMs + result.filterMs) / 1000, source: result.source,
      detail: `${(r.seconds).toFixed(2)} s with process start; peak RSS ${r.peakRssBytes === undefined ? 'n/a' : formatBytes(r.peakRssBytes)}`,
    };
  };
  const serve = async (): Promise<{ seconds: number; source: string }> => serveUntilReady(cli, db);

  const olderLabel = `snapshot of generation ${formatNumber(generations.older)} of ${formatNumber(generations.current)} (a killed writer)`;
  const scenarios: Scenario[] = [
    { name: 'library: open + filter, snapshot at the store\'s generation', expect: 'snapshot', prepare: useSnapshot(pristine), run: library('filter') },
    { name: `library: open + filter, ${olderLabel}`, expect: 'replay', prepare: useSnapshot(older), run: library('filter') },
    { name: 'library: open + filter, no snapshot', expect: 'log', prepare: useSnapshot(undefined), run: library('filter') },
    { name: 'library: open + full scan of the entry keys (the fallback)', expect: 'scan', prepare: useSnapshot(pristine), run: library('scan') },
    { name: '`optout serve` to /readyz 200, snapshot at the store\'s generation', expect: 'snapshot', prepare: useSnapshot(pristine), run: serve },
    { name: `\`optout serve\` to /readyz 200, ${olderLabel}`, expect: 'replay', prepare: useSnapshot(older), run: serve },
    { name: '`optout serve` to /readyz 200, no snapshot', expect: 'log', prepare: useSnapshot(undefined), run: serve },
    {
      name: '`optout serve` to /readyz 200, no snapshot and a gap in the log (the fallback)', expect: 'scan', prepare: useSnapshot(undefined),
      run: async () => withLogGap(db, serve),
    },
    {
      name: '`optout serve` to its key index in memory, built from a scan (a first start, or one after a crash)', expect: 'snapshot', target: '',
      prepare: useSnapshot(pristine), run: async () => serveUntilIndexed(cli, db, 'built'),
    },
    {
      // The snapshot is the one the scanning server saved as it stopped.
      name: '`optout serve` to its key index in memory, loaded from its snapshot (a restart after a clean stop)', expect: 'snapshot', target: '',
      prepare: () => {
        copyFileSync(pristine, snapshot);
        if (!existsSync(indexSnapshot)) throw new BenchFailure(`${indexSnapshot} is missing: the scanning server did not save it as it stopped`);
      },
      run: async () => serveUntilIndexed(cli, db, 'loaded'),
    },
  ];

  const loadBefore = loadavg()[0] ?? 0;
  const results: Array<{ scenario: Scenario; seconds: number[]; detail: string }> = [];
  try {
    for (const scenario of scenarios) {
      const seconds: number[] = [];
      let detail = '';
      for (let run = 1; run <= runs; run++) {
        scenario.prepare();
        const r = await scenario.run();
        if (r.source !== scenario.expect) throw new BenchFailure(`${scenario.name}: the filter came from ${r.source}, expected ${scenario.expect}`);
        seconds.push(r.seconds);
        detail = r.detail ?? '';
        log(`${scenario.name} (run ${run}/${runs}): ${r.seconds.toFixed(2)} s${detail === '' ? '' : ` (${detail})`}`);
      }
      results.push({ scenario, seconds, detail });
    }
  } finally {
    copyFileSync(pristine, snapshot);
    rmSync(indexSnapshot, { force: true });
  }
  const loadAfter = loadavg()[0] ?? 0;

  const table = markdownTable(
    ['scenario', 'filter from', 'median s', 'min-max s', 'target'],
    results.map(({ scenario, seconds }) => [
      scenario.name, scenario.expect, median(seconds).toFixed(2),
      `${Math.min(...seconds).toFixed(2)}-${Math.max(...seconds).toFixed(2)}`,
      scenario.target ?? (scenario.name.startsWith('`optout serve`') ? `<= ${TARGET_SECONDS} s` : ''),
    ]),
    ['left', 'left', 'right', 'right', 'left'],
  );
  const command = `npm run bench:startup -- --entries ${entries}${seed === DEFAULT_SEED ? '' : ` --seed ${seed}`} --runs ${runs}${toReadme ? ' --update-readme' : ''}`;
  const cpu = cpus();
  const block = [
    `\`${command}\``,
    '',
    table,
    '',
    `Store: ${formatNumber(rows)} generated rows (seed ${seed}) imported with \`optout import\`: ${formatNumber(entries)}+ entries. ` +
      'Library rows: `LevelStore.open` + `filter()` inside a fresh process (the full scan calls `scanEntryKeys` directly and leaves the store as it is); ' +
      '`optout serve` rows: from spawning the process to the first 200 on GET /readyz, polled every 10 ms on 127.0.0.1, ' +
      'or to its line on stderr saying its key index is in memory (a scan, or the snapshot a clean stop saved). ' +
      `Every loaded filter was checked against ${formatNumber(VERIFY_KEYS)} stored keys and the store's entry count. ` +
      `Median of ${runs} run${runs > 1 ? 's' : ''}; load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after. ` +
      `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${formatBytes(totalmem())} RAM, Node ${process.version}, ${platform()} ${arch()}.`,
  ].join('\n');
  process.stdout.write(`${block}\n`);
  if (toReadme) await updateReadme(root, SECTION, block, log);
  return 0;
}

runIfMain(import.meta.url, 'bench:startup', main);
