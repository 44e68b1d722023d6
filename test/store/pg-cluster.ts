/**
 * A fresh PostgreSQL database for one test file. With `OPTOUT_TEST_PG_URL` (CI's `.ci/run` sets
 * it), the database is created on that cluster; without it, under `CI=true`, the file fails: a
 * run without PostgreSQL must not pass as green; elsewhere (a developer's machine), the helper
 * starts a throwaway cluster of its own when the server binaries are installed, and otherwise
 * the PostgreSQL tests skip with a message saying why.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { defaultWorkDir } from '../../src/store/pg/pg-ledger.js';

const run = promisify(execFile);

/** A database of the test file's own, or the reason there is none. */
export type PgTestDatabase =
  | { url: string; drop(): Promise<void>; skip?: undefined }
  | { skip: string };

/** The newest installed server's bin folder, or undefined. */
function serverBinaries(): string | undefined {
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Starts a loopback-only cluster in a folder under /tmp; as root, as the OS user postgres (it refuses root). */
async function startCluster(bin: string): Promise<{ url: string; stop(): Promise<void> }> {
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
    await as(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '60',
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return [Number(stdout.trim()), Number(gid.trim())];
}

/** Waits, a bounded number of times, until the server answers a query. */
async function waitForServer(url: string): Promise<void> {
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

async function admin<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates the test file's database (a random name), on `OPTOUT_TEST_PG_URL` or on a cluster
 * started here; `drop` removes it and stops that cluster.
 */
export async function pgTestDatabase(): Promise<PgTestDatabase> {
  let clusterUrl = process.env['OPTOUT_TEST_PG_URL'];
  let stop = async (): Promise<void> => {};
  if (clusterUrl === undefined || clusterUrl === '') {
    if (process.env['CI'] === 'true') {
      throw new Error('CI=true and OPTOUT_TEST_PG_URL is not set: the PostgreSQL tests must run in CI (see .ci/run)');
    }
    const bin = serverBinaries();
    if (bin === undefined) {
      return { skip: 'PostgreSQL tests skipped: no OPTOUT_TEST_PG_URL and no PostgreSQL server binaries (apt-get install postgresql)' };
    }
    ({ url: clusterUrl, stop } = await startCluster(bin));
  }
  const cluster = clusterUrl;
  try {
    await waitForServer(cluster);
    const name = `optout_test_${randomBytes(6).toString('hex')}`;
    await admin(cluster, (c) => c.query(`CREATE DATABASE ${name}`));
    return {
      url: withDatabase(cluster, name),
      drop: async () => {
        try {
          await admin(cluster, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          // What imports into the database left on this machine (their spools' folder).
          await rm(defaultWorkDir(withDatabase(cluster, name)), { recursive: true, force: true });
        } finally {
          await stop();
        }
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Empties the database (its public schema), for a test that needs a ledger of its own. */
export async function resetDatabase(url: string): Promise<void> {
  await admin(url, (c) => c.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public'));
}

/**
 * Runs `register` with a database of the file's own (dropped after the file), or registers a
 * skipped suite that says why there is none.
 */
export async function withPgDatabase(name: string, register: (url: string) => void): Promise<void> {
  const { afterAll, describe, it } = await import('vitest');
  const db = await pgTestDatabase();
  if (db.skip !== undefined) {
    process.stderr.write(`${name}: ${db.skip}\n`);
    describe.skip(`${name} (${db.skip})`, () => {
      it('needs PostgreSQL', () => undefined);
    });
    return;
  }
  afterAll(() => db.drop());
  register(db.url);
}
