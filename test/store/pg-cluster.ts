/**
 * A fresh PostgreSQL database for one test file. With `OPTOUT_TEST_PG_URL` (CI's `.ci/run` sets
 * it), the database is created on that cluster; without it, under `CI=true`, the file fails: a
 * run without PostgreSQL must not pass as green; elsewhere (a developer's machine), the helper
 * starts a throwaway cluster of its own when the server binaries are installed, and otherwise
 * the PostgreSQL tests skip with a message saying why.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { admin, serverBinaries, startCluster, waitForServer, withDatabase, type StartedCluster } from '../../bench/lib/pg-cluster.js';
import { defaultWorkDir } from '../../src/store/pg/pg-ledger.js';

/** A database of the test file's own, or the reason there is none. */
export type PgTestDatabase =
  | { url: string; drop(): Promise<void>; skip?: undefined }
  | { skip: string };

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

/**
 * A cluster of the test's own, for a test that kills or pauses the server (never the one of
 * `OPTOUT_TEST_PG_URL`, which other files share): started here from the installed binaries, or
 * the reason there are none (under `CI=true`, a failure: the test must not pass unrun).
 */
export async function ownCluster(): Promise<StartedCluster | { skip: string }> {
  const bin = serverBinaries();
  if (bin === undefined) {
    if (process.env['CI'] === 'true') throw new Error('CI=true and no PostgreSQL server binaries: the server drills must run in CI');
    return { skip: 'PostgreSQL server drills skipped: no PostgreSQL server binaries (apt-get install postgresql)' };
  }
  const cluster = await startCluster(bin);
  try {
    await waitForServer(cluster.url);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** Creates database `name` on the cluster at `url`; gives its URL. */
export async function createDatabase(url: string, name: string): Promise<string> {
  await admin(url, (c) => c.query(`CREATE DATABASE ${name}`));
  return withDatabase(url, name);
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
