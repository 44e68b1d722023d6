/**
 * Eligibility check benchmark: the library in-process, then the HTTP API (`optout serve` in a
 * child process) under load from this process through {@link OptoutClient}, next to the simplest
 * alternative: a plain node:http server answering from an in-memory `Set` of the same addresses,
 * driven by the same client and the same load, so that the ratio is the price of the product
 * (auth, validation, normalization, metrics, fail-closed store) over a bare lookup.
 *
 * `npm run bench:check -- [--entries 1000000] [--duration 5] [--seed S] [--update-readme]`
 *
 * Progress goes to stderr, the markdown result to stdout. Exit 1 on a failure, 2 on bad arguments.
 * Internal: `node dist/bench/check.js --set-server FILE` is the baseline server's child process.
 */
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch, cpus, platform, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createKey } from '../src/auth/api-keys.js';
import { openStore } from '../src/check/open-store.js';
import type { Decision } from '../src/check/rules.js';
import { OptoutClient } from '../src/client/client.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import {
  formatBytes,
  formatNumber,
  formatRate,
  markdownTable,
  timeChild,
} from './lib/measure.js';
import { Latencies, closedLoop, firstColumn, startChildServer } from './lib/load.js';
import { BenchFailure, ensureList, ensureStore, makeLog, packageRoot, parseCount, updateReadme } from './lib/harness.js';
import { REDIS_CLIENTS, REDIS_PIPELINE, measureRedis } from './lib/redis.js';

const log = makeLog('bench:check');

const USAGE = 'Usage: npm run bench:check -- [--entries N] [--duration S] [--seed S] [--update-readme]';
const SECTION = 'bench:check';
const BATCH = 1_000;
const FIXED_RATE = 5_000;
const CONNECTIONS = 64;
/** Batches in flight at once: enough to keep one server process busy without 64 × 1,000 queued. */
const BATCH_CONCURRENCY = 8;
/** Distinct addresses of each kind cycled through; more would only cost the bench memory. */
const POOL = 200_000;
/** Addresses the HTTP load cycles through: few enough to keep the load worker's heap small. */
const LOAD_POOL = 20_000;





async function onPath(command: string): Promise<boolean> {
  const r = await timeChild('sh', ['-c', `command -v '${command}'`]);
  return r.exitCode === 0;
}

// ---------------------------------------------------------------------------------------------
// Data

/** Trimmed and lower-cased, as the baseline server keeps them. */
async function* lowerCased(cells: AsyncIterable<string>): AsyncGenerator<string> {
  for await (const cell of cells) yield cell.trim().toLowerCase();
}



function absentAddresses(n: number, seed: number): string[] {
  return Array.from({ length: n }, (_, i) => `nobody.${seed}.${i}@absent-bench-domain.com`);
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Row {
  tool: string;
  scenario: string;
  rate: number;
  unit: string;
  p50?: number | undefined;
  p99?: number | undefined;
  /** The baseline row of the same scenario, for the ratio. */
  baseline?: Row | undefined;
  target: string;
}

/** Batches of {@link BATCH} for `seconds`; checks a second. */
async function inProcess(run: (batch: readonly string[]) => Promise<unknown> | unknown, pool: readonly string[], seconds: number): Promise<number> {
  let done = 0;
  let at = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    if (at + BATCH > pool.length) at = 0;
    await run(pool.slice(at, at + BATCH));
    at += BATCH;
    done += BATCH;
  }
  return done / ((performance.now() - started) / 1000);
}

/**
 * An open-loop load: requests go out on schedule whether or not earlier ones have come back (a
 * slow server makes them queue in the pool, and that wait counts), so a stalled server shows in
 * p99 instead of slowing the load down (coordinated omission). Latency is counted from the call
 * to `check`; from the scheduled time it also holds this process's own timer granularity and GC
 * pauses, reported apart with the event loop's delay so the two can be told apart.
 */
async function fixedRate(client: OptoutClient, emails: readonly string[], rate: number, seconds: number): Promise<{ rate: number; p50: number; p99: number; errors: number; scheduledP99: number; loopMaxMs: number }> {
  const total = Math.floor(rate * seconds);
  const lat = new Latencies();
  const scheduled = new Latencies();
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let sent = 0;
  let errors = 0;
  const pending: Array<Promise<void>> = [];
  const started = performance.now();
  await new Promise<void>((done) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      while (sent < due) {
        const intended = started + (sent * 1000) / rate;
        const email = emails[sent % emails.length] as string;
        const sentAt = performance.now();
        pending.push(client.check({ email }).then(
          () => {
            const now = performance.now();
            scheduled.add(now - intended);
            lat.add(now - sentAt);
          },
          () => void errors++,
        ));
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
      else done();
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  loop.disable();
  return { rate: lat.count / elapsed, ...lat.summary(), errors, scheduledP99: scheduled.summary().p99, loopMaxMs: loop.max / 1e6 };
}


/** Counts only batches that came back whole. */
function countDecisions(decisions: readonly Decision[], emails: readonly string[]): number {
  if (decisions.length !== emails.length) throw new BenchFailure(`expected ${emails.length} decisions, got ${decisions.length}`);
  return decisions.length;
}

// ---------------------------------------------------------------------------------------------
// Servers

/**
 * The baseline: the whole list's addresses lower-cased in a `Set`, behind node:http with no
 * framework, auth, validation or normalization beyond trim + lower case. It answers in the API's
 * shape so that the same client drives both servers.
 */
async function serveSet(file: string): Promise<void> {
  const set = new Set<string>();
  for await (const cell of firstColumn(file)) set.add(cell.trim().toLowerCase());
  const decide = (email: string): Decision => {
    const address = email.trim().toLowerCase();
    const hit = set.has(address);
    return { address, key: null, eligible: !hit, reason: hit ? 'suppressed' : 'not_suppressed' };
  };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const server = createHttpServer({ keepAliveTimeout: 65_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v1/eligibility') return send(res, 404, { code: 'NOT_FOUND' });
    if (req.method === 'GET') return send(res, 200, decide(url.searchParams.get('email') ?? ''));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { emails: string[] };
        send(res, 200, { results: body.emails.map(decide) });
      } catch {
        send(res, 400, { code: 'BAD_JSON' });
      }
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.stderr.write(`set-server: ${set.size} addresses\nlistening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
  });
}

interface HttpResults {
  fixed?: { rate: number; p50: number; p99: number; errors: number; scheduledP99: number; loopMaxMs: number };
  max: { rate: number; p50: number; p99: number; errors: number };
  batch: { rate: number; p50: number; p99: number; errors: number };
}

async function drive(name: string, url: string, key: string, mixed: readonly string[], seconds: number, withFixed: boolean): Promise<HttpResults> {
  const client = new OptoutClient({ url, key, connections: CONNECTIONS, timeoutMs: 30_000 });
  try {
    const single = (i: number): Promise<number> => client.check({ email: mixed[i % mixed.length] as string }).then(() => 1);
    // Connections, JIT and the heap settle under both kinds of load before anything counts: a
    // first open-loop second on a fresh process shows p99s in the hundreds of ms.
    log(`${name}: warm-up (2 s)`);
    await closedLoop(CONNECTIONS, 1, single);
    await fixedRate(client, mixed, FIXED_RATE, 1);
    let fixed: HttpResults['fixed'];
    if (withFixed) {
      log(`${name}: ${FIXED_RATE} req/s for ${seconds} s`);
      fixed = await fixedRate(client, mixed, FIXED_RATE, seconds);
    }
    log(`${name}: single GETs, ${CONNECTIONS} connections, ${seconds} s`);
    const max = await closedLoop(CONNECTIONS, seconds, single);
    log(`${name}: POST batches of ${BATCH}, ${BATCH_CONCURRENCY} in flight, ${seconds} s`);
    const batch = await closedLoop(BATCH_CONCURRENCY, seconds, async (i) => {
      const at = (i * BATCH) % Math.max(1, mixed.length - BATCH);
      const emails = mixed.slice(at, at + BATCH);
      return countDecisions(await client.checkMany(emails), emails);
    });
    const errors = (fixed?.errors ?? 0) + max.errors + batch.errors;
    if (errors > 0) log(`${name}: ${errors} requests failed`);
    return { ...(fixed === undefined ? {} : { fixed }), max, batch };
  } finally {
    await client.close();
  }
}

interface LoadJob {
  role: 'bench-check-load';
  name: string;
  url: string;
  key: string;
  mixed: string[];
  seconds: number;
}

/**
 * Runs {@link drive} in a worker thread: its heap holds only the client and a small address
 * pool, so that its GC pauses (which delay reading answers, and so show as server latency) stay
 * those of a small client, not of this process with the whole list read in.
 */
function driveInWorker(job: Omit<LoadJob, 'role'>): Promise<HttpResults> {
  return new Promise((resolveRun, reject) => {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { role: 'bench-check-load', ...job } satisfies LoadJob });
    let result: HttpResults | undefined;
    worker.once('message', (m: HttpResults) => {
      result = m;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (result !== undefined) resolveRun(result);
      else reject(new BenchFailure(`the load worker exited with ${code} without a result`));
    });
  });
}

// ---------------------------------------------------------------------------------------------

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--set-server' && argv[1] !== undefined) {
    await serveSet(argv[1]);
    return 0;
  }
  let entries: number;
  let seconds: number;
  let seed: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        entries: { type: 'string' },
        duration: { type: 'string' },
        seed: { type: 'string' },
        'update-readme': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 1_000_000 : parseCount('--entries', values.entries, 1_000, MAX_ROWS);
    seconds = values.duration === undefined ? 5 : parseCount('--duration', values.duration, 1, 3_600);
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:check: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const self = fileURLToPath(import.meta.url);
  if (!existsSync(cli)) throw new BenchFailure(`the CLI is not built: ${cli} is missing (npm run build)`);
  const file = join(root, 'data', 'generated', `list-${entries}-${seed}.csv`);
  const db = join(root, 'data', 'generated', `check-db-${entries}-${seed}`);
  await ensureList(file, entries, seed, log);
  await ensureStore(cli, file, db, log);

  // Every listed cell (as written: case and spaces vary) goes into the in-process Set; a slice
  // of them, spread over the file, is what the checks ask about.
  log('reading the list');
  const set = new Set<string>();
  const present: string[] = [];
  const stride = Math.max(1, Math.floor(entries / POOL));
  let row = 0;
  for await (const cell of firstColumn(file)) {
    set.add(cell.trim().toLowerCase());
    if (row++ % stride === 0 && present.length < POOL) present.push(cell);
  }
  const absent = absentAddresses(POOL, seed);
  // Half on the list, half not, interleaved: the HTTP scenarios ask about both.
  const mixed = present.flatMap((p, i) => [absent[i] as string, p]);

  const rows: Row[] = [];
  const store = await openStore(db, { purpose: 'bench:check' });
  let key: string;
  let presentSuppressed = 0;
  try {
    key = (await createKey(store.store, { scope: 'check' })).key;
    // The answers must be right before their speed means anything.
    const probe = await store.checkMany(absent.slice(0, 10_000).map((email) => ({ email })));
    if (probe.some((d) => d.reason !== 'not_suppressed')) throw new BenchFailure('an address not on the list was not answered not_suppressed');
    const onList = await store.checkMany(present.map((email) => ({ email })));
    presentSuppressed = onList.filter((d) => d.reason === 'suppressed').length;
    if (presentSuppressed < present.length * 0.95) throw new BenchFailure(`only ${presentSuppressed} of ${present.length} listed addresses were answered suppressed`);

    const inSet = (batch: readonly string[]): boolean[] => batch.map((e) => set.has(e.trim().toLowerCase()));
    const check = (batch: readonly string[]): Promise<Decision[]> => store.checkMany(batch.map((email) => ({ email })));
    for (const [label, pool, target] of [['not on the list', absent, '>= 2M/s'], ['on the list', present, '>= 300k/s']] as const) {
      log(`in-process, ${label}: Set.has, then optout checkMany (${seconds} s each)`);
      const base = await inProcess(inSet, pool, seconds);
      const mine = await inProcess(check, pool, seconds);
      const baseline: Row = { tool: 'JS Set (trim + lower case)', scenario: `in-process, batches of ${BATCH}, ${label}`, rate: base, unit: 'checks/s', target: '' };
      rows.push({ tool: 'optout `checkMany`', scenario: baseline.scenario, rate: mine, unit: 'checks/s', baseline, target }, baseline);
    }
  } finally {
    await store.close();
  }
  set.clear();

  const loadPool = mixed.slice(0, LOAD_POOL);
  const redisProbe = (present[0] ?? '').trim().toLowerCase();
  const counts = { present: present.length, absent: absent.length };
  // Dropped before the load: a large live heap here means long GC pauses on a core the server
  // and the load worker share.
  present.length = 0;
  absent.length = 0;
  mixed.length = 0;
  const serve = await startChildServer([cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
  let optout: HttpResults;
  try {
    optout = await driveInWorker({ name: 'optout serve', url: serve.url, key, mixed: loadPool, seconds });
  } finally {
    await serve.stop();
  }
  log('starting the node:http + Set server');
  const plain = await startChildServer([self, '--set-server', file]);
  let baseline: HttpResults;
  try {
    baseline = await driveInWorker({ name: 'node:http + Set', url: plain.url, key: 'none', mixed: loadPool, seconds });
  } finally {
    await plain.stop();
  }

  const http = (r: HttpResults['max'], scenario: string, tool: string, unit: string, target: string, base?: Row): Row =>
    ({ tool, scenario, rate: r.rate, unit, p50: r.p50, p99: r.p99, baseline: base, target });
  const fixedScenario = `HTTP GET, fixed ${formatNumber(FIXED_RATE)} req/s, ${CONNECTIONS} connections`;
  const maxScenario = `HTTP GET, max throughput, ${CONNECTIONS} connections`;
  const batchScenario = `HTTP POST, batches of ${BATCH}, ${BATCH_CONCURRENCY} in flight`;
  for (const [scenario, pick, unit, target] of [
    [fixedScenario, (r: HttpResults) => r.fixed, 'req/s', 'p99 <= 2 ms'],
    [maxScenario, (r: HttpResults) => r.max, 'req/s', '>= 20k req/s'],
    [batchScenario, (r: HttpResults) => r.batch, 'checks/s', '>= 1M checks/s'],
  ] as const) {
    const b = pick(baseline);
    const o = pick(optout);
    if (b === undefined || o === undefined) continue;
    const base = http(b, scenario, 'node:http + Set', unit, '');
    rows.push(http(o, scenario, 'optout serve', unit, target, base), base);
  }

  const redis = (await onPath('redis-server')) && (await onPath('redis-cli')) && (await onPath('redis-benchmark'));
  let redisNote = 'redis-server / redis-cli / redis-benchmark were not installed: no Redis SISMEMBER row. ';
  if (redis) {
    const r = await measureRedis(lowerCased(firstColumn(file)), redisProbe, seconds, log);
    const maxBase = rows.find((row) => row.tool === 'node:http + Set' && row.scenario === maxScenario);
    const batchBase = rows.find((row) => row.tool === 'node:http + Set' && row.scenario === batchScenario);
    rows.push(
      { tool: 'Redis 7 SISMEMBER', scenario: `TCP, ${REDIS_CLIENTS} connections, one command per round trip`, rate: r.single.rate, unit: 'req/s', p50: r.single.p50, p99: r.single.p99, baseline: maxBase, target: '' },
      { tool: 'Redis 7 SISMEMBER', scenario: `TCP, ${REDIS_CLIENTS} connections, pipelined ${REDIS_PIPELINE}`, rate: r.pipelined.rate, unit: 'checks/s', p50: r.pipelined.p50, p99: r.pipelined.p99, baseline: batchBase, target: '' },
    );
    redisNote = `Redis: the same lower-cased cells in one set (${formatNumber(r.size)} members), asked by redis-benchmark (a C client) about one listed address; ` +
      'its ratio is to the node:http + Set row of the same kind (single requests, batches). ';
  }
  const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '' : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
  const table = markdownTable(
    ['tool', 'scenario', 'rate', 'p50', 'p99', 'ratio to baseline', 'target (optout)'],
    rows.map((r) => [
      r.tool,
      r.scenario,
      `${formatRate(r.rate)} ${r.unit}`,
      ms(r.p50),
      ms(r.p99),
      r.baseline === undefined ? 'baseline' : `${(r.rate / r.baseline.rate).toFixed(2)}x`,
      r.target,
    ]),
    ['left', 'left', 'right', 'right', 'right', 'right', 'left'],
  );
  const errors = [optout, baseline].reduce((n, r) => n + (r.fixed?.errors ?? 0) + r.max.errors + r.batch.errors, 0);
  const command = `npm run bench:check -- --entries ${entries} --duration ${seconds}${seed === DEFAULT_SEED ? '' : ` --seed ${seed}`}${toReadme ? ' --update-readme' : ''}`;
  const cpu = cpus();
  const block = [
    `\`${command}\``,
    '',
    table,
    '',
    `Store: ${formatNumber(entries)} generated rows (seed ${seed}); ${formatNumber(counts.present)} listed addresses ` +
      `(${formatNumber(presentSuppressed)} answered suppressed, the rest invalid cells) and ${formatNumber(counts.absent)} unlisted ones, ` +
      `cycled (the HTTP load: ${formatNumber(loadPool.length)} of them, alternating). The load runs in a worker thread of the benchmark, on the same machine as the server, ` +
      `through \`OptoutClient\` (undici Pool, ${CONNECTIONS} keep-alive connections) for both servers. ` +
      'The baseline server has no auth, validation or normalization beyond trim + lower case. ' +
      `Fixed rate: latency from the call to \`check\`; from the scheduled send time (adding this process's 1 ms timer steps and pauses) ` +
      `p99 is ${ms(optout.fixed?.scheduledP99)} for optout and ${ms(baseline.fixed?.scheduledP99)} for the baseline, ` +
      `with the load generator's event loop delayed by up to ${ms(optout.fixed?.loopMaxMs)} and ${ms(baseline.fixed?.loopMaxMs)}. ` +
      `Ratio: rate over the baseline's rate. ${errors === 0 ? 'No request failed.' : `${errors} requests failed.`} ` +
      redisNote +
      `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${formatBytes(totalmem())} RAM, Node ${process.version}, ${platform()} ${arch()}.`,
  ].join('\n');
  process.stdout.write(`${block}\n`);

  if (toReadme) {
    await updateReadme(root, SECTION, block, log);
  }
  return errors === 0 ? 0 : 1;
}

const job = isMainThread ? undefined : (workerData as Partial<LoadJob> | undefined);
if (job?.role === 'bench-check-load') {
  const j = job as LoadJob;
  drive(j.name, j.url, j.key, j.mixed, j.seconds, true).then(
    (r) => parentPort?.postMessage(r),
    (err: unknown) => {
      throw err;
    },
  );
}

const entry = process.argv[1];
// A worker sees the same argv: only the main thread is the command.
if (isMainThread && entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      // The set server keeps running on its listening socket; everything else exits.
      if (process.argv[2] !== '--set-server') process.exitCode = code;
    },
    (err: unknown) => {
      const message = err instanceof BenchFailure ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`bench:check: FAILED: ${message}\n`);
      process.exitCode = 1;
    },
  );
}
