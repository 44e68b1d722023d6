/**
 * A throwaway PostgreSQL cluster on 127.0.0.1, for tests and benchmarks on a machine without
 * one: initdb and pg_ctl of the newest installed server, in a folder under /tmp, run as the OS
 * user postgres when this process is root (the server refuses root).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './harness.js';

const run = promisify(execFile);

/** The newest installed server's bin folder, or undefined. */
export function serverBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb'))) return bin;
  }
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

/** A cluster started here. */
export interface StartedCluster {
  url: string;
  /** Stops the server (immediate mode) and removes its folder. */
  stop(): Promise<void>;
  /** Sends `signal` to the server and every process it started (SIGSTOP pauses the whole server, SIGCONT resumes it). */
  signal(signal: NodeJS.Signals): Promise<void>;
  /**
   * Starts the server again on the same data folder and port, after it was killed (SIGKILL):
   * what a machine's restart does, crash recovery from the WAL included.
   */
  start(): Promise<void>;
}

/**
 * Starts a loopback-only cluster in a folder under /tmp; as root, as the OS user postgres (it
 * refuses root). fsync is off; `settings` are further server settings (name to value).
 */
export async function startCluster(bin: string, settings: Readonly<Record<string, string>> = {}): Promise<StartedCluster> {
  const root = process.getuid?.() === 0;
  const dir = await mkdtemp('/tmp/optout-test-pg.');
  if (root) await chown(dir, ...(await postgresIds()));
  await chmod(dir, 0o700);
  const as = (cmd: string, args: string[]) => (root ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  const data = join(dir, 'data');
  const stop = async (): Promise<void> => {
    await as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    await as(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    const start = async (): Promise<void> => {
      await as(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60',
        '-o', [`-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' '), 'start']);
    };
    await start();
    const signal = async (sig: NodeJS.Signals): Promise<void> => {
      const postmaster = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      const { stdout } = await run('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }));
      // The postmaster first on SIGSTOP (it forks no new backend meanwhile), last on SIGCONT.
      const children = stdout.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
      const order = sig === 'SIGCONT' ? [...children, postmaster] : [postmaster, ...children];
      for (const pid of order) process.kill(pid, sig);
      if (sig === 'SIGKILL') {
        // Killed processes still hold the server's shared memory for a moment: a start must wait.
        await gone(order);
        // A killed postmaster may linger as a zombie (in a container whose first process reaps
        // none), and the server refuses to start while the pid in its lock files exists.
        for (const lock of [join(data, 'postmaster.pid'), join(dir, `.s.PGSQL.${port}.lock`), join(dir, `.s.PGSQL.${port}`)]) {
          await rm(lock, { force: true });
        }
      }
    };
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, signal, start };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Whether process `pid` has ended (a zombie has: it holds nothing but its exit status). */
async function ended(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** Waits, a bounded time, until every process of `pids` has ended. */
async function gone(pids: readonly number[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await Promise.all(pids.map(ended))).every(Boolean)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`PostgreSQL processes ${pids.join(', ')} did not end within 10 s of SIGKILL`);
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return [Number(stdout.trim()), Number(gid.trim())];
}

/** Waits, a bounded number of times, until the server answers a query. */
export async function waitForServer(url: string): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 60; i++) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(`PostgreSQL at ${url} did not answer`, { cause: last });
}

/** The same URL with another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

