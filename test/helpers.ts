/**
 * Helpers for the end-to-end tests (`*.e2e.test.ts`, `*.crash.test.ts`): run the built CLI (`dist/src/cli/main.js`, built by
 * `npm run build` / `npm test`) as a child process, make and remove temporary folders, and read
 * a store's LevelDB directly to prove it unchanged or equal.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { request } from 'undici';
import type { BucketBytes } from '../src/workers/chunk-task.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The project root (this file is `<root>/test/helpers.ts`). */
export const ROOT = resolve(here, '..');
/** The built CLI entry point. */
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** The README's sample list. */
export const SAMPLE = join(ROOT, 'data', 'sample-optouts.csv');

export interface CliResult {
  /** Exit code, or null when the process was ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once (never a TTY). */
  input?: string | Uint8Array;
  /** Added to the environment (OPTOUT_DB is removed from the inherited one). */
  env?: Record<string, string>;
  /** SIGKILL after this long. @default 45000 */
  timeoutMs?: number;
  cwd?: string;
}

/** An environment without the variables that would make a run depend on the caller's shell. */
function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (extra?.['OPTOUT_DB'] === undefined) delete env['OPTOUT_DB'];
  delete env['OPTOUT_DEBUG'];
  return env;
}

export interface StartedCli {
  child: ChildProcessWithoutNullStreams;
  /** Settles when the process has exited and its output is closed. */
  done: Promise<CliResult>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
}

/** Spawns the CLI with stdin piped and left open: the caller writes to and ends `child.stdin`. */
export function startCli(args: readonly string[], opts: Omit<RunOptions, 'input'> = {}): StartedCli {
  if (process.env['OPTOUT_TEST_TIER'] === 'unit') {
    throw new Error('The unit tier runs no child process: name a file that runs the CLI *.e2e.test.ts (or *.crash.test.ts)');
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run \`npm run build\` first`);
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: childEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => { stdout += d; });
  child.stderr.on('data', (d: string) => { stderr += d; });
  // The CLI may exit before reading all of its input (a usage error, say): not a test failure.
  child.stdin.on('error', () => undefined);
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const done = new Promise<CliResult>((resolveDone, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n[test helper: killed after ${timeoutMs} ms]\n`;
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolveDone({ code, signal, stdout, stderr });
    });
  });
  return { child, done, stdout: () => stdout, stderr: () => stderr };
}

/** The port a started `optout serve` listens on, read from its log line. */
export async function listeningPort(s: StartedCli, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.stderr());
    if (m?.[1] !== undefined) return Number(m[1]);
    if (s.child.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start:\n${s.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** For afterEach: kills (SIGKILL) every started CLI still running, empties the list, and waits for each to exit. */
export async function stopStarted(started: StartedCli[]): Promise<void> {
  for (const s of started.splice(0)) {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await s.done;
  }
}

/** Runs the CLI to completion; stdin gets `input` (or nothing) and is closed. */
export async function runCli(args: readonly string[], opts: RunOptions = {}): Promise<CliResult> {
  const started = startCli(args, opts);
  if (opts.input !== undefined) started.child.stdin.end(opts.input);
  else started.child.stdin.end();
  return started.done;
}

/** Parses the one JSON document a `--json` command prints on stdout. */
export function parseJson<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${String(result.code)}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** The `OPTOUT_ERR_*` codes printed in brackets on stderr. */
export function errorCodes(stderr: string): string[] {
  return [...stderr.matchAll(/\[(OPTOUT_ERR_[A-Z_]+)\]/g)].map((m) => m[1] as string);
}

const made: string[] = [];

/** A fresh folder under the OS temp dir; {@link removeTempDirs} removes every one made. */
export async function tempDir(prefix = 'optout-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes the folders made by {@link tempDir}; call it in afterEach or afterAll. */
export async function removeTempDirs(): Promise<void> {
  const dirs = made.splice(0);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 3 })));
}

/**
 * Every key/value pair of the store `<dbDir>/leveldb`, in key order (an empty array when the
 * store was never created). Opens the LevelDB itself, so no process may hold the store.
 */
export async function dumpStore(dbDir: string): Promise<Array<[string, string]>> {
  const path = join(dbDir, 'leveldb');
  if (!existsSync(path)) return [];
  const db = new ClassicLevel<string, string>(path, { createIfMissing: false });
  await db.open();
  try {
    const pairs: Array<[string, string]> = [];
    for await (const [key, value] of db.iterator()) pairs.push([key, value]);
    return pairs;
  } finally {
    await db.close();
  }
}

/**
 * What a store dump holds that must not depend on how its imports ran (killed and resumed, or
 * not): everything but job records, audit records, the filter log (one record per batch, each
 * with a random token) and the job and batch counters.
 */
export function durableEntries(dump: Array<[string, string]>): Array<[string, string]> {
  return dump.filter(([k]) => !k.startsWith('j') && !k.startsWith('a') && !k.startsWith('f') && k !== 'mgeneration' && k !== 'mjobseq');
}

/** mulberry32: numbers in [0, 1) that are random but the same for a seed on every run (kill schedules). */
export function seededRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes a list with an `email` header and one address a line; returns its path. */
export function writeEmails(dir: string, name: string, emails: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, ['email', ...emails].join('\n') + '\n');
  return path;
}

/** `<prefix><n>@x.org` for n from `from` up to (not including) `to`. */
export const emailRange = (from: number, to: number, prefix = 'u'): string[] =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}@x.org`);

/** Absolute path of a file in `test/fixtures/csv`. */
export function fixture(name: string): string {
  return join(ROOT, 'test', 'fixtures', 'csv', name);
}

/** Resolves once `path` exists, polling; rejects after `timeoutMs`. */
export async function waitForFile(path: string, timeoutMs = 20_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Starts a server on a free loopback port; returns its base URL. */
export async function listenOnLoopback(app: { listen(o: { host: string; port: number }): Promise<unknown>; server: { address(): unknown } }): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

/** The `code` of a JSON error body, or undefined when the body is not JSON. */
export function codeOf(text: string): unknown {
  try {
    return (JSON.parse(text) as Record<string, unknown>)['code'];
  } catch {
    return undefined;
  }
}

/** The error code a call fails with, sync or async; undefined when it succeeds. */
export async function failureCode(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return (err as { code?: unknown }).code;
  }
  return undefined;
}

export type ApiMethod = 'GET' | 'PUT' | 'POST' | 'DELETE';
export type ApiCall = (method: ApiMethod, path: string, key: string | undefined, body?: unknown, headers?: Record<string, string>) => Promise<ApiAnswer>;

/** {@link callApi} bound to a server whose URL is known only once it listens (in beforeAll). */
export function apiCaller(base: () => string): ApiCall {
  return (method, path, key, body, headers) => callApi(base(), method, path, key, body, headers);
}

export interface ApiAnswer { status: number; text: string; json: Record<string, unknown>; code: unknown; headers: Record<string, unknown> }

/**
 * One request to a server started by {@link listenOnLoopback}. A string or byte body is sent
 * as it is (set its content type in `headers`); anything else as JSON. The path is sent as
 * written, so that tests can send escapes a URL builder would fix.
 */
export async function callApi(base: string, method: ApiMethod, path: string, key: string | undefined,
  body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> {
  const isRaw = typeof body === 'string' || body instanceof Uint8Array;
  const res = await request(`${base}${path}`, {
    method,
    headers: {
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined || isRaw ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : isRaw ? body as string | Uint8Array : JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // CSV and text answers.
  }
  return { status: res.statusCode, text, json, code: codeOf(text), headers: res.headers as Record<string, unknown> };
}

/** afterAll for the API tests: stops the server, then closes the store, then removes temp dirs. */
export async function closeServerAndStore(app: { close(): Promise<unknown> } | undefined, store: { close(): Promise<unknown> } | undefined): Promise<void> {
  await app?.close();
  await store?.close();
  await removeTempDirs();
}

/** A chunk result's bucket groups (src/workers/chunk-task.ts), from each bucket's text. */
export function bucketBytesOf(groups: readonly string[]): BucketBytes {
  const parts = groups.map((g) => Buffer.from(g));
  const ends = new Uint32Array(parts.length);
  let total = 0;
  parts.forEach((p, b) => {
    total += p.length;
    ends[b] = total;
  });
  return { bytes: Buffer.concat(parts), ends };
}

/** Bucket `b`'s text in a chunk result's bucket groups. */
export function bucketText(groups: BucketBytes, b: number): string {
  const start = b === 0 ? 0 : (groups.ends[b - 1] as number);
  return Buffer.from(groups.bytes.buffer, groups.bytes.byteOffset + start, (groups.ends[b] as number) - start).toString('utf8');
}
