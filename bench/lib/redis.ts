/**
 * Redis as the reference a shared suppression list is usually built on: the same addresses in
 * one set, asked with SISMEMBER about many different addresses (the load's own pool, half of
 * them members), one command per round trip and pipelined. The server is a child of the
 * benchmark, on a free loopback port, with persistence off; it runs only where `redis-server`
 * and `redis-cli` are installed. The client speaks RESP over plain sockets, so that every
 * command names another address: redis-benchmark repeats one command line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Socket, connect } from 'node:net';
import { BenchFailure, freePort } from './harness.js';
import { Latencies, type LoadResult } from './load.js';
import { timeChild } from './measure.js';

const SET_KEY = 'optout';
const MEMBERS_PER_COMMAND = 1_000;
export const REDIS_CLIENTS = 50;
export const REDIS_PIPELINE = 16;

function resp(args: readonly string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

export interface RedisServer {
  port: number;
  size: number;
  stop(): Promise<void>;
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

/** A Redis loaded with `members` in one set, until `stop`. */
export async function startLoadedRedis(members: AsyncIterable<string>, log: (line: string) => void): Promise<RedisServer> {
  const port = await freePort();
  const server = await startRedis(port);
  const stop = async (): Promise<void> => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, 'exit');
    server.kill('SIGTERM');
    await exited;
  };
  try {
    log('redis: loading the set');
    return { port, size: await load(port, members), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Integer replies (`:0` / `:1`) read off a socket, handed to the oldest waiter. */
class ReplyReader {
  #buffered = '';
  readonly #waiting: Array<(hit: boolean) => void> = [];

  constructor(socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => {
      this.#buffered += s;
      let at = 0;
      for (;;) {
        const end = this.#buffered.indexOf('\r\n', at);
        if (end < 0) break;
        const line = this.#buffered.slice(at, end);
        at = end + 2;
        if (line !== ':0' && line !== ':1') throw new BenchFailure(`redis answered ${JSON.stringify(line)} to SISMEMBER`);
        this.#waiting.shift()?.(line === ':1');
      }
      this.#buffered = this.#buffered.slice(at);
    });
  }

  next(): Promise<boolean> {
    return new Promise((r) => this.#waiting.push(r));
  }
}

/**
 * `clients` connections, each sending `pipeline` SISMEMBERs of the next addresses of `probes`
 * at once and waiting for their replies, for `seconds`. Latency is that of a round trip.
 */
export async function sismemberLoad(port: number, probes: readonly string[], pipeline: number, seconds: number): Promise<LoadResult & { hits: number }> {
  const commands = probes.map((p) => resp(['SISMEMBER', SET_KEY, p]));
  const sockets = await Promise.all(Array.from({ length: REDIS_CLIENTS }, async () => {
    const s = connect(port, '127.0.0.1');
    s.setNoDelay(true);
    await once(s, 'connect');
    return s;
  }));
  const lat = new Latencies();
  let done = 0;
  let hits = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    await Promise.all(sockets.map(async (socket) => {
      const reader = new ReplyReader(socket);
      while (performance.now() < deadline) {
        let text = '';
        for (let i = 0; i < pipeline; i++) text += commands[next++ % commands.length];
        const t = performance.now();
        const replies = Array.from({ length: pipeline }, () => reader.next());
        socket.write(text);
        for (const hit of await Promise.all(replies)) if (hit) hits++;
        lat.add(performance.now() - t);
        done += pipeline;
      }
    }));
  } finally {
    for (const s of sockets) s.destroy();
  }
  return { rate: done / ((performance.now() - started) / 1000), ...lat.summary(), errors: 0, hits };
}
