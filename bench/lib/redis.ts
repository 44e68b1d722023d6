/**
 * Redis as the reference a shared suppression list is usually built on: the same addresses in
 * one set, asked with SISMEMBER by redis-benchmark (Redis's own C client), one command per round
 * trip and pipelined. Runs only where `redis-server`, `redis-cli` and `redis-benchmark` are
 * installed; the server is a child of the benchmark, on a free loopback port, with persistence off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { BenchFailure, freePort } from './harness.js';
import { timeChild } from './measure.js';

export interface RedisResult {
  rate: number;
  p50: number;
  p99: number;
}

const SET_KEY = 'optout';
const MEMBERS_PER_COMMAND = 1_000;
export const REDIS_CLIENTS = 50;
export const REDIS_PIPELINE = 16;

function resp(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.setEncoding('utf8');
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new BenchFailure(`redis-server did not start:\n${out}`)), 20_000);
    child.stdout?.on('data', (s: string) => {
      out += s;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new BenchFailure(`redis-server exited with ${code}:\n${out}`));
    });
  });
  return child;
}

/** SADDs every member through `redis-cli --pipe`; returns how many the set holds. */
async function load(port: number, members: AsyncIterable<string>): Promise<number> {
  const cli = spawn('redis-cli', ['-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  cli.stdout.setEncoding('utf8');
  cli.stdout.on('data', (s: string) => { out += s; });
  cli.stderr.setEncoding('utf8');
  cli.stderr.on('data', (s: string) => { out += s; });
  const exited = once(cli, 'close') as Promise<[number | null]>;
  let chunk: string[] = [];
  const send = async (): Promise<void> => {
    if (chunk.length === 0) return;
    if (!cli.stdin.write(resp(['SADD', SET_KEY, ...chunk]))) await once(cli.stdin, 'drain');
    chunk = [];
  };
  for await (const m of members) {
    chunk.push(m);
    if (chunk.length === MEMBERS_PER_COMMAND) await send();
  }
  await send();
  cli.stdin.end();
  const [code] = await exited;
  if (code !== 0 || !/errors: 0/.test(out)) throw new BenchFailure(`redis-cli --pipe failed (${code}):\n${out}`);
  const card = await timeChild('redis-cli', ['-p', String(port), 'SCARD', SET_KEY]);
  return Number(card.stdout.trim());
}

async function sismember(port: number, member: string, requests: number, pipeline: number): Promise<RedisResult> {
  const r = await timeChild('redis-benchmark', ['-p', String(port), '-c', String(REDIS_CLIENTS), '-n', String(requests),
    '-P', String(pipeline), '--csv', 'SISMEMBER', SET_KEY, member]);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  const cells = line.split(',').map((c) => c.replaceAll('"', ''));
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const [rate, p50, p99] = [Number(cells[1]), Number(cells[4]), Number(cells[6])];
  if (r.exitCode !== 0 || !(rate > 0)) throw new BenchFailure(`redis-benchmark failed (${r.exitCode ?? r.signal ?? '?'}):\n${r.stdout}${r.stderr}`);
  return { rate, p50, p99 };
}

/**
 * Loads `members` into a fresh Redis and measures SISMEMBER of `probe` (a member: a hit) for
 * about `seconds` each way.
 */
export async function measureRedis(members: AsyncIterable<string>, probe: string, seconds: number,
  log: (line: string) => void): Promise<{ size: number; single: RedisResult; pipelined: RedisResult }> {
  const port = await freePort();
  const server = await startRedis(port);
  try {
    log('redis: loading the set');
    const size = await load(port, members);
    log(`redis: ${size} members; SISMEMBER, ${REDIS_CLIENTS} clients`);
    // A first short run sizes the measured ones to about `seconds`.
    const probeRun = await sismember(port, probe, 20_000, 1);
    const single = await sismember(port, probe, Math.ceil(probeRun.rate * seconds), 1);
    log(`redis: SISMEMBER, ${REDIS_CLIENTS} clients, pipelined ${REDIS_PIPELINE}`);
    const probePipelined = await sismember(port, probe, 200_000, REDIS_PIPELINE);
    const pipelined = await sismember(port, probe, Math.ceil(probePipelined.rate * seconds), REDIS_PIPELINE);
    return { size, single, pipelined };
  } finally {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGTERM');
      await exited;
    }
  }
}
