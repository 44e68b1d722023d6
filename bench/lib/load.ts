import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BenchFailure, tail } from './harness.js';
import { timeChild } from './measure.js';

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] as number;
}

/** Latencies in milliseconds, kept whole (no sampling) in a growing typed array. */
export class Latencies {
  #values = new Float64Array(1 << 16);
  #n = 0;

  add(ms: number): void {
    if (this.#n === this.#values.length) {
      const next = new Float64Array(this.#values.length * 2);
      next.set(this.#values);
      this.#values = next;
    }
    this.#values[this.#n++] = ms;
  }

  get count(): number {
    return this.#n;
  }

  summary(): { p50: number; p99: number } {
    const s = this.#values.slice(0, this.#n).sort();
    return { p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
  }
}

export interface ChildServer {
  url: string;
  pid: number;
  /** Seconds from the spawn to the lines waited for. */
  secondsToReady: number;
  /** The last 100 kB of its stderr. */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * CPU seconds (user + system) process `pid` has used so far, from /proc; undefined where /proc is
 * not there. Clock ticks are taken as 100 a second, Linux's USER_HZ.
 */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces and ends with the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Spawns a server that prints `listening on http://...` on stderr, and waits for that line. */
export function startChildServer(args: readonly string[], options: { readyWhen?: RegExp } = {}): Promise<ChildServer> {
  return new Promise((resolveStart, reject) => {
    const spawned = performance.now();
    const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchFailure(`the server did not start within 120 s:\n${tail(stderr)}`));
    }, 120_000);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      stderr = (stderr + s).slice(-100_000);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m?.[1] !== undefined && (options.readyWhen === undefined || options.readyWhen.test(stderr))) {
        clearTimeout(timer);
        resolveStart({ url: m[1], pid: child.pid ?? 0, secondsToReady: (performance.now() - spawned) / 1000, stderr: () => stderr, stop });
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new BenchFailure(`the server exited with ${code ?? signal ?? '?'} before listening:\n${tail(stderr)}`));
    });
  });
}

/** The first CSV field of a line, unquoted; the generator never puts a newline inside a field. */
function firstField(line: string): string {
  if (!line.startsWith('"')) {
    const comma = line.indexOf(',');
    return comma < 0 ? line : line.slice(0, comma);
  }
  let out = '';
  let i = 1;
  for (;;) {
    const q = line.indexOf('"', i);
    if (q < 0) return out + line.slice(i);
    out += line.slice(i, q);
    if (line[q + 1] === '"') {
      out += '"';
      i = q + 2;
    } else {
      return out;
    }
  }
}

/** The address cell of every data row, as written (case, spaces and invalid cells included). */
export async function* firstColumn(file: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(file, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let header = true;
  for await (const line of lines) {
    if (header) {
      header = false;
      continue;
    }
    yield firstField(line);
  }
}

/** `concurrency` closed loops for `seconds`: the most a server answers at that concurrency. */
export async function closedLoop(concurrency: number, seconds: number, once: (i: number) => Promise<number>): Promise<LoadResult> {
  const lat = new Latencies();
  let items = 0;
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      try {
        // Not `items += await ...`: that reads `items` before the await and loses the other
        // loops' additions made meanwhile.
        const n = await once(next++);
        items += n;
        lat.add(performance.now() - t);
      } catch {
        errors++;
      }
    }
  }));
  return { rate: items / ((performance.now() - started) / 1000), ...lat.summary(), errors };
}

/** What a load of requests gave: requests (or checks) a second, latency in ms, failed requests. */
export interface LoadResult {
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

/** A Lua long string holding `text`, of a level that `text` does not close. */
function luaLongString(text: string): string {
  let level = '';
  while (text.includes(`]${level}]`)) level += '=';
  return `[${level}[${text}]${level}]`;
}

/**
 * A wrk script that cycles through `requests` (path, and body when POST), and prints its own
 * summary as one JSON line: wrk's text output rounds latencies to two digits.
 */
export function wrkScript(method: 'GET' | 'POST', requests: ReadonlyArray<{ path: string; body?: string }>, headers: Readonly<Record<string, string>>): string {
  const lua = (s: string): string => JSON.stringify(s);
  return [
    `local method = ${lua(method)}`,
    `local headers = { ${Object.entries(headers).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')} }`,
    'local reqs = {',
    ...requests.map((r) => `  { ${lua(r.path)}, ${r.body === undefined ? 'nil' : luaLongString(r.body)} },`),
    '}',
    'local i = 0',
    'request = function()',
    '  i = i % #reqs + 1',
    '  local r = reqs[i]',
    '  return wrk.format(method, r[1], headers, r[2])',
    'end',
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'WRK_RESULT {"requests":%d,"us":%d,"errors":%d,"p50":%f,"p99":%f}\\n\',',
    '    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,',
    '    latency:percentile(50) / 1000, latency:percentile(99) / 1000))',
    'end',
    '',
  ].join('\n');
}

/**
 * A closed-loop load from wrk (one thread, `connections` keep-alive connections) for `seconds`,
 * with `script` from {@link wrkScript}. `perRequest` counts the items of one request (the
 * addresses of a batch). Latencies are wrk's, from each request's send to its answer.
 */
export async function runWrk(url: string, scriptFile: string, connections: number, seconds: number, perRequest = 1): Promise<LoadResult> {
  const r = await timeChild('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '30s', '-s', scriptFile, url]);
  const line = /WRK_RESULT (\{.*\})/.exec(r.stdout)?.[1];
  if (r.exitCode !== 0 || line === undefined) throw new BenchFailure(`wrk failed (${r.exitCode ?? r.signal ?? '?'}):\n${tail(r.stdout + r.stderr)}`);
  const s = JSON.parse(line) as { requests: number; us: number; errors: number; p50: number; p99: number };
  return { rate: (s.requests * perRequest) / (s.us / 1e6), p50: s.p50, p99: s.p99, errors: s.errors };
}
