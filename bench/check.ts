/**
 * Eligibility check benchmark: the library in-process, then the HTTP API (`optout serve` in a
 * child process) under load, next to the simplest alternative: a plain node:http server
 * answering from an in-memory `Set` of the same addresses, in the same JSON shape, under the same
 * load, so that the ratio is the price of the product (auth, validation, normalization, metrics,
 * request log, fail-closed store) over a bare lookup. Redis, asked about the same addresses,
 * is the reference a shared list is usually built on.
 *
 * Load: wrk (one thread) for the closed-loop HTTP rows when it is on the PATH, else a Node
 * generator (undici, through {@link OptoutClient}); the fixed-rate row always comes from the Node
 * generator (wrk has no fixed rate), its latency counted from each request's scheduled send time.
 *
 * `npm run bench:check -- [--entries 1000000] [--duration 5] [--runs 3] [--seed S] [--update-readme]`
 *
 * Progress goes to stderr, the markdown result to stdout. Exit 1 on a failure, 2 on bad arguments.
 * Internal: `node dist/bench/check.js --set-server FILE` is the baseline server's child process.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createKey } from '../src/auth/api-keys.js';
import { openStore } from '../src/check/open-store.js';
import type { Decision } from '../src/check/rules.js';
import { Pool } from 'undici';
import { OptoutClient } from '../src/client/client.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { formatBytes, formatNumber, formatRate, markdownTable, median, timeChild } from './lib/measure.js';
import { Latencies, closedLoop, cpuSeconds, firstColumn, runWrk, startChildServer, wrkScript, type ChildServer, type LoadResult } from './lib/load.js';
import { BenchFailure, ensureList, ensureStore, makeLog, packageRoot, parseCount, updateReadme } from './lib/harness.js';
import { REDIS_CLIENTS, REDIS_PIPELINE, sismemberLoad, startLoadedRedis } from './lib/redis.js';

const log = makeLog('bench:check');

const USAGE = 'Usage: npm run bench:check -- [--entries N] [--duration S] [--runs R] [--seed S] [--update-readme]';
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
/** A short load before each measured one: connections, JIT and heap settle first. */
const WARM_UP_SECONDS = 1;

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

/** One scenario of one tool, over every run. */
interface Row {
  tool: string;
  scenario: string;
  generator: string;
  unit: string;
  runs: LoadResult[];
  /** Server CPU seconds per item (request or check), per run, where measured. */
  cpu: number[];
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

interface FixedResult extends LoadResult {
  /** From the call to `check`, which leaves out the time a request waited for its turn. */
  callP99: number;
  loopMaxMs: number;
}

/**
 * An open-loop load: request `n` is due at `n / rate` seconds and goes out then whether or not
 * earlier ones have come back, so a stalled server shows in the latency instead of slowing the
 * load down. Latency is counted from the scheduled send time (coordinated omission): a request
 * this process sent late, behind its 1 ms timer steps or a pause, counts its wait too.
 */
async function fixedRate(client: OptoutClient, emails: readonly string[], rate: number, seconds: number): Promise<FixedResult> {
  const total = Math.floor(rate * seconds);
  const scheduled = new Latencies();
  const called = new Latencies();
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
        const calledAt = performance.now();
        pending.push(client.check({ email }).then(
          () => {
            const now = performance.now();
            scheduled.add(now - intended);
            called.add(now - calledAt);
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
  return { rate: scheduled.count / elapsed, ...scheduled.summary(), errors, callP99: called.summary().p99, loopMaxMs: loop.max / 1e6 };
}

// ---------------------------------------------------------------------------------------------
// Servers

/**
 * The baseline: the whole list's addresses lower-cased in a `Set`, behind node:http with no
 * framework, auth, validation or normalization beyond trim + lower case. It answers in the API's
 * shape, field for field (the key is the lower-cased address; a hit carries the one import's
 * suppression, as every entry of the benchmark's store does), so both send the same bytes.
 */
async function serveSet(file: string): Promise<void> {
  const set = new Set<string>();
  for await (const cell of firstColumn(file)) set.add(cell.trim().toLowerCase());
  const suppression = { scope: '*', jobId: '1', reason: 'unsubscribed', source: basename(file), addedAt: new Date().toISOString() };
  const decide = (email: string): Decision => {
    const address = email.trim().toLowerCase();
    return set.has(address)
      ? { address, key: address, eligible: false, reason: 'suppressed', suppression }
      : { address, key: address, eligible: true, reason: 'not_suppressed' };
  };
  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
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
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { emails: string[]; compact?: boolean };
        const results = body.emails.map(decide);
        send(res, 200, { results: body.compact === true ? results.map((d) => ({ eligible: d.eligible, reason: d.reason })) : results });
      } catch {
        send(res, 400, { code: 'BAD_JSON' });
      }
    });
  });
  // A SIGTERM ends the process the usual way, so that `--cpu-prof` writes its profile.
  process.once('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
  server.listen(0, '127.0.0.1', () => {
    process.stderr.write(`set-server: ${set.size} addresses\nlistening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
  });
}

interface HttpResults {
  fixed: FixedResult & { cpu: number | undefined };
  max?: LoadResult & { cpu: number | undefined };
  batch?: LoadResult & { cpu: number | undefined };
}

/** Server CPU seconds per item over `run`, where /proc tells. */
async function withCpu<T extends LoadResult>(pid: number, items: (r: T) => number, run: () => Promise<T>): Promise<T & { cpu: number | undefined }> {
  const before = cpuSeconds(pid);
  const r = await run();
  const after = cpuSeconds(pid);
  return { ...r, cpu: before === undefined || after === undefined ? undefined : (after - before) / Math.max(1, items(r)) };
}

interface HttpJob {
  role: 'bench-check-load';
  kind: 'http';
  name: string;
  url: string;
  pid: number;
  key: string;
  mixed: string[];
  seconds: number;
  /** Also the closed-loop GETs and batches (no wrk). */
  closedLoops: boolean;
}

interface RedisJob {
  role: 'bench-check-load';
  kind: 'redis';
  port: number;
  mixed: string[];
  pipeline: number;
  seconds: number;
}

type LoadJob = HttpJob | RedisJob;

async function drive(j: HttpJob): Promise<HttpResults> {
  const { name, mixed, seconds } = j;
  const client = new OptoutClient({ url: j.url, key: j.key, connections: CONNECTIONS, timeoutMs: 30_000 });
  // Batches ask for the compact form, which the client does not: the same bodies as wrk's.
  const batches = new Pool(j.url, { connections: BATCH_CONCURRENCY });
  try {
    const single = (i: number): Promise<number> => client.check({ email: mixed[i % mixed.length] as string }).then(() => 1);
    const batchOf = async (i: number): Promise<number> => {
      const at = (i * BATCH) % Math.max(1, mixed.length - BATCH);
      const emails = mixed.slice(at, at + BATCH);
      const res = await batches.request({
        method: 'POST', path: '/v1/eligibility', body: JSON.stringify({ emails, compact: true }),
        headers: { authorization: `Bearer ${j.key}`, 'content-type': 'application/json' },
      });
      const body = (await res.body.json()) as { results?: unknown[] };
      if (res.statusCode !== 200 || body.results?.length !== emails.length) throw new BenchFailure(`a batch of ${emails.length} was answered ${res.statusCode} with ${body.results?.length ?? 'no'} decisions`);
      return emails.length;
    };
    // The answers of both kinds must be whole before their speed means anything.
    await batchOf(0);
    // A first open-loop second on a fresh process shows p99s in the hundreds of ms.
    log(`${name}: warm-up`);
    await closedLoop(CONNECTIONS, WARM_UP_SECONDS, single);
    await fixedRate(client, mixed, FIXED_RATE, WARM_UP_SECONDS);
    log(`${name}: ${FIXED_RATE} req/s for ${seconds} s`);
    const timed = <T extends LoadResult>(items: (r: T) => number, run: () => Promise<T>) => withCpu(j.pid, items, run);
    const fixed = await timed((r) => r.rate * seconds, () => fixedRate(client, mixed, FIXED_RATE, seconds));
    if (!j.closedLoops) return { fixed };
    log(`${name}: single GETs, ${CONNECTIONS} connections, ${seconds} s`);
    const max = await timed((r) => r.rate * seconds, () => closedLoop(CONNECTIONS, seconds, single));
    log(`${name}: POST batches of ${BATCH}, ${BATCH_CONCURRENCY} in flight, ${seconds} s`);
    const batch = await timed((r) => r.rate * seconds, () => closedLoop(BATCH_CONCURRENCY, seconds, batchOf));
    return { fixed, max, batch };
  } finally {
    await Promise.all([client.close(), batches.close()]);
  }
}

/**
 * Runs a load in a worker thread: its heap holds only the client and a small address pool, so
 * that its GC pauses (which delay reading answers, and so show as server latency) stay those of
 * a small client, not of this process with the whole list read in.
 */
function inWorker<T>(job: LoadJob): Promise<T> {
  return new Promise((resolveRun, reject) => {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    let result: T | undefined;
    worker.once('message', (m: T) => {
      result = m;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (result !== undefined) resolveRun(result);
      else reject(new BenchFailure(`the load worker exited with ${code} without a result`));
    });
  });
}

/** wrk scripts for both servers: GETs cycling through the pool, and batches of it. */
async function writeWrkScripts(dir: string, pool: readonly string[], key: string): Promise<{ get: string; post: string }> {
  const auth = { authorization: `Bearer ${key}` };
  const get = join(dir, 'get.lua');
  const post = join(dir, 'post.lua');
  await writeFile(get, wrkScript('GET', pool.map((email) => ({ path: `/v1/eligibility?email=${encodeURIComponent(email)}` })), auth));
  const batches: Array<{ path: string; body: string }> = [];
  for (let at = 0; at + BATCH <= pool.length; at += BATCH) {
    batches.push({ path: '/v1/eligibility', body: JSON.stringify({ emails: pool.slice(at, at + BATCH), compact: true }) });
  }
  await writeFile(post, wrkScript('POST', batches, { ...auth, 'content-type': 'application/json' }));
  return { get, post };
}

/** One run of every HTTP scenario against `server`. */
async function httpRun(name: string, server: ChildServer, key: string, pool: string[], seconds: number, scripts: { get: string; post: string } | undefined): Promise<HttpResults> {
  const r = await inWorker<HttpResults>({ role: 'bench-check-load', kind: 'http', name, url: server.url, pid: server.pid, key, mixed: pool, seconds, closedLoops: scripts === undefined });
  if (scripts === undefined) return r;
  const wrk = (script: string, connections: number, perRequest: number) => async (): Promise<LoadResult> => {
    await runWrk(server.url, script, connections, WARM_UP_SECONDS, perRequest);
    return runWrk(server.url, script, connections, seconds, perRequest);
  };
  log(`${name}: wrk, single GETs, ${CONNECTIONS} connections, ${seconds} s`);
  const max = await withCpu(server.pid, (x) => x.rate * seconds, wrk(scripts.get, CONNECTIONS, 1));
  log(`${name}: wrk, POST batches of ${BATCH}, ${BATCH_CONCURRENCY} connections, ${seconds} s`);
  const batch = await withCpu(server.pid, (x) => x.rate * seconds, wrk(scripts.post, BATCH_CONCURRENCY, BATCH));
  return { ...r, max, batch };
}

// ---------------------------------------------------------------------------------------------

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--set-server' && argv[1] !== undefined) {
    await serveSet(argv[1]);
    return 0;
  }
  let entries: number;
  let seconds: number;
  let runs: number;
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
        runs: { type: 'string' },
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
    runs = values.runs === undefined ? 3 : parseCount('--runs', values.runs, 1, 20);
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:check: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const loadBefore = loadavg()[0] ?? 0;

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
  const newRow = (tool: string, scenario: string, generator: string, unit: string, target: string, baseline?: Row): Row => {
    const r: Row = { tool, scenario, generator, unit, runs: [], cpu: [], baseline, target };
    rows.push(r);
    return r;
  };
  const store = await openStore(db, { purpose: 'bench:check' });
  let key: string;
  let presentSuppressed = 0;
  try {
    // As `optout serve` keeps it.
    await store.store.indexKeys();
    key = (await createKey(store.store, { scope: 'check' })).key;
    // The answers must be right before their speed means anything.
    const probe = await store.checkMany(absent.slice(0, 10_000).map((email) => ({ email })));
    if (probe.some((d) => d.reason !== 'not_suppressed')) throw new BenchFailure('an address not on the list was not answered not_suppressed');
    const onList = await store.checkMany(present.map((email) => ({ email })));
    presentSuppressed = onList.filter((d) => d.reason === 'suppressed').length;
    if (presentSuppressed < present.length * 0.95) throw new BenchFailure(`only ${presentSuppressed} of ${present.length} listed addresses were answered suppressed`);

    const inSet = (batch: readonly string[]): boolean[] => batch.map((e) => set.has(e.trim().toLowerCase()));
    const check = (batch: readonly string[]): Promise<Decision[]> => store.checkMany(batch.map((email) => ({ email })));
    const kinds = [['not on the list', absent, '>= 2M/s'], ['on the list', present, '>= 300k/s']] as const;
    const pairs = kinds.map(([label, pool, target]) => {
      const scenario = `in-process, batches of ${BATCH}, ${label}`;
      const baseline = newRow('JS Set (trim + lower case)', scenario, '', 'checks/s', '');
      const mine = newRow('optout `checkMany`', scenario, '', 'checks/s', target, baseline);
      // Listed first in the table, as before.
      rows.splice(rows.indexOf(baseline), 2, mine, baseline);
      return { label, pool, baseline, mine };
    });
    for (let run = 1; run <= runs; run++) {
      for (const { label, pool, baseline, mine } of pairs) {
        log(`run ${run}/${runs}: in-process, ${label}: Set.has, then optout checkMany (${seconds} s each)`);
        baseline.runs.push({ rate: await inProcess(inSet, pool, seconds), p50: Number.NaN, p99: Number.NaN, errors: 0 });
        mine.runs.push({ rate: await inProcess(check, pool, seconds), p50: Number.NaN, p99: Number.NaN, errors: 0 });
      }
    }
  } finally {
    await store.close();
  }
  set.clear();

  const loadPool = mixed.slice(0, LOAD_POOL);
  const counts = { present: present.length, absent: absent.length };
  // Dropped before the load: a large live heap here means long GC pauses on a core the server
  // and the load worker share.
  present.length = 0;
  absent.length = 0;
  mixed.length = 0;

  const hasWrk = await onPath('wrk');
  const wrkDir = hasWrk ? await mkdtemp(join(tmpdir(), 'optout-bench-check-')) : undefined;
  const node = 'Node (undici, `OptoutClient`)';
  const closedGenerator = hasWrk ? 'wrk, 1 thread' : node;
  const fixedScenario = `HTTP GET, fixed ${formatNumber(FIXED_RATE)} req/s, ${CONNECTIONS} connections; latency from the scheduled send`;
  const maxScenario = `HTTP GET, max throughput, ${CONNECTIONS} connections`;
  const batchScenario = `HTTP POST, batches of ${BATCH}, compact answers, ${BATCH_CONCURRENCY} in flight`;
  const scenarios = [
    { scenario: fixedScenario, pick: (r: HttpResults) => r.fixed, generator: node, unit: 'req/s', target: 'p99 <= plain server\'s' },
    { scenario: maxScenario, pick: (r: HttpResults) => r.max, generator: closedGenerator, unit: 'req/s', target: '>= 0.8x' },
    { scenario: batchScenario, pick: (r: HttpResults) => r.batch, generator: closedGenerator, unit: 'checks/s', target: '>= 1.0x' },
  ];
  const httpRows = scenarios.map((s) => {
    const base = newRow('node:http + Set', s.scenario, s.generator, s.unit, '');
    const mine = newRow('optout serve', s.scenario, s.generator, s.unit, s.target, base);
    rows.splice(rows.indexOf(base), 2, mine, base);
    return { ...s, base, mine };
  });
  const fixedNotes: Array<{ optout: FixedResult; baseline: FixedResult }> = [];
  try {
    const scripts = wrkDir === undefined ? undefined : await writeWrkScripts(wrkDir, loadPool, key);
    for (let run = 1; run <= runs; run++) {
      log(`run ${run}/${runs}: optout serve`);
      // Measured once its key index is built, as a server runs for all but its first seconds.
      const serve = await startChildServer([cli, 'serve', '--host', '127.0.0.1', '--port', '0', '--db', db], { readyWhen: /^key index: /m });
      let optout: HttpResults;
      try {
        optout = await httpRun('optout serve', serve, key, loadPool, seconds, scripts);
      } finally {
        await serve.stop();
      }
      log(`run ${run}/${runs}: the node:http + Set server`);
      const plain = await startChildServer([self, '--set-server', file]);
      let baseline: HttpResults;
      try {
        baseline = await httpRun('node:http + Set', plain, 'none', loadPool, seconds, scripts);
      } finally {
        await plain.stop();
      }
      fixedNotes.push({ optout: optout.fixed, baseline: baseline.fixed });
      for (const h of httpRows) {
        for (const [r, target] of [[h.pick(optout), h.mine], [h.pick(baseline), h.base]] as const) {
          if (r === undefined) continue;
          target.runs.push(r);
          if (r.cpu !== undefined) target.cpu.push(r.cpu);
        }
      }
    }
  } finally {
    if (wrkDir !== undefined) await rm(wrkDir, { recursive: true, force: true });
  }

  const hasRedis = (await onPath('redis-server')) && (await onPath('redis-cli'));
  let redisNote = 'redis-server / redis-cli were not installed: no Redis SISMEMBER rows. ';
  if (hasRedis) {
    const redis = await startLoadedRedis(lowerCased(firstColumn(file)), log);
    const maxBase = httpRows[1]?.base;
    const batchBase = httpRows[2]?.base;
    const redisGenerator = 'Node (RESP over sockets)';
    const single = newRow('Redis SISMEMBER', `TCP, ${REDIS_CLIENTS} connections, one command per round trip`, redisGenerator, 'req/s', '', maxBase);
    const pipelined = newRow('Redis SISMEMBER', `TCP, ${REDIS_CLIENTS} connections, pipelined ${REDIS_PIPELINE}`, redisGenerator, 'checks/s', '', batchBase);
    let hits = 0;
    let asked = 0;
    const lowered = loadPool.map((e) => e.trim().toLowerCase());
    try {
      for (let run = 1; run <= runs; run++) {
        log(`run ${run}/${runs}: redis, SISMEMBER, ${REDIS_CLIENTS} clients, one a round trip, then pipelined ${REDIS_PIPELINE}`);
        for (const [pipeline, target] of [[1, single], [REDIS_PIPELINE, pipelined]] as const) {
          const r = await inWorker<LoadResult & { hits: number }>({ role: 'bench-check-load', kind: 'redis', port: redis.port, mixed: lowered, pipeline, seconds });
          target.runs.push(r);
          hits += r.hits;
          asked += r.rate * seconds;
        }
      }
    } finally {
      await redis.stop();
    }
    redisNote = `Redis: the same lower-cased cells in one set (${formatNumber(redis.size)} members), asked about the HTTP load's ${formatNumber(loadPool.length)} addresses in turn ` +
      `(${((100 * hits) / Math.max(1, asked)).toFixed(0)}% members), each command another address, by a Node client writing RESP on ${REDIS_CLIENTS} sockets in a worker thread; ` +
      'its ratio is to the node:http + Set row of the same kind (single requests, batches). ';
  }

  const ms = (v: number): string => (Number.isNaN(v) ? '' : `${v.toFixed(v < 10 ? 2 : 1)} ms`);
  const range = (values: number[], f: (v: number) => string): string =>
    values.length === 0 ? '' : values.length === 1 ? f(values[0] as number) : `${f(median(values))} (${f(Math.min(...values))}-${f(Math.max(...values))})`;
  const rate = (r: Row): number => median(r.runs.map((x) => x.rate));
  const cpuPer = (r: Row): string => {
    if (r.cpu.length === 0) return '';
    const perItem = median(r.cpu) * 1e6;
    return `${perItem.toFixed(perItem < 10 ? 2 : 0)} µs`;
  };
  const table = markdownTable(
    ['tool', 'scenario', 'load generator', `rate, median of ${runs} (min-max)`, 'p50', `p99 (min-max)`, 'server CPU per check', 'ratio to baseline', 'target (optout)'],
    rows.map((r) => [
      r.tool,
      r.scenario,
      r.generator,
      `${range(r.runs.map((x) => x.rate), formatRate)} ${r.unit}`,
      ms(median(r.runs.map((x) => x.p50))),
      Number.isNaN(r.runs[0]?.p99 ?? Number.NaN) ? '' : range(r.runs.map((x) => x.p99), ms),
      cpuPer(r),
      r.baseline === undefined ? 'baseline' : `${(rate(r) / rate(r.baseline)).toFixed(2)}x`,
      r.target,
    ]),
    ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'left'],
  );
  const errors = rows.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.errors, 0), 0);
  const command = `npm run bench:check -- --entries ${entries} --duration ${seconds} --runs ${runs}${seed === DEFAULT_SEED ? '' : ` --seed ${seed}`}${toReadme ? ' --update-readme' : ''}`;
  const cpu = cpus();
  const worst = (pick: (n: { optout: FixedResult; baseline: FixedResult }) => number): string => ms(Math.max(...fixedNotes.map(pick)));
  const block = [
    `\`${command}\``,
    '',
    table,
    '',
    `Store: ${formatNumber(entries)} generated rows (seed ${seed}); ${formatNumber(counts.present)} listed addresses ` +
      `(${formatNumber(presentSuppressed)} answered suppressed, the rest invalid cells) and ${formatNumber(counts.absent)} unlisted ones, ` +
      `cycled in-process (the HTTP load: ${formatNumber(loadPool.length)} of them, alternating listed and unlisted). ` +
      `Each of the ${runs} runs starts each server afresh; rate is the median of the runs (min-max), p50 the median, p99 the median (min-max). ` +
      `Closed-loop HTTP rows: ${hasWrk ? `wrk (${CONNECTIONS} or ${BATCH_CONCURRENCY} connections, one thread, a Lua script cycling through the addresses and batches), latency from send to answer` : `wrk was not on the PATH: the Node generator (undici Pool, ${CONNECTIONS} keep-alive connections, in a worker thread)`}, ` +
      `after a ${WARM_UP_SECONDS} s warm-up. Fixed rate: the Node generator in a worker thread, request n due at n/${formatNumber(FIXED_RATE)} s and sent then whatever came back, ` +
      `latency from that scheduled time (it includes the generator's 1 ms timer steps and pauses; its event loop was delayed by up to ${worst((n) => n.optout.loopMaxMs)} and ${worst((n) => n.baseline.loopMaxMs)}); ` +
      `from the call instead, the worst run's p99 was ${worst((n) => n.optout.callP99)} for optout and ${worst((n) => n.baseline.callP99)} for the baseline. ` +
      'Server CPU per check: user + system CPU time of the server process during the measured load over the checks answered (median of the runs), from /proc. ' +
      'Both servers run on the same machine as the load and answer the same JSON for the same request (the baseline has no auth, validation or normalization beyond trim + lower case); ' +
      `optout serve runs with its defaults (request log at info to stdout, here /dev/null). Ratio: median rate over the baseline's. ${errors === 0 ? 'No request failed.' : `${errors} requests failed.`} ` +
      redisNote +
      `Load average ${loadBefore.toFixed(1)} before, ${(loadavg()[0] ?? 0).toFixed(1)} after. ` +
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
  const run = j.kind === 'http' ? drive(j) : sismemberLoad(j.port, j.mixed, j.pipeline, j.seconds);
  run.then(
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
