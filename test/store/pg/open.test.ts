/**
 * `--db` as a folder or a PostgreSQL URL: one opener, the schema check, migrations, URLs never
 * shown with their password, and imports from two processes at once into one database.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../../src/check/open-store.js';
import { buildProgram } from '../../../src/cli/program.js';
import { migrateDatabase, openLedger } from '../../../src/store/open.js';
import { SCHEMA_VERSION } from '../../../src/store/pg/schema.js';
import { redact } from '../../../src/store/pg/url.js';
import { ACCOUNT_WIDE } from '../../../src/store/store.js';
import { emailRange, removeTempDirs, tempDir, writeEmails } from '../../helpers.js';
import { runImport } from '../../inline.js';
import { resetDatabase, withPgDatabase } from '../pg-cluster.js';

async function errorOf(run: () => Promise<unknown>): Promise<{ code?: unknown; message: string } | undefined> {
  try {
    await run();
  } catch (err) {
    return err as { code?: unknown; message: string };
  }
  return undefined;
}

afterAll(async () => {
  await removeTempDirs();
});

describe('PostgreSQL URLs in messages', () => {
  it('never show the password, in the URL or as a parameter', () => {
    expect(redact('postgres://user:s3cret@db.example:5432/optout?sslmode=require')).toBe('postgres://user:***@db.example:5432/optout?sslmode=require');
    expect(redact('postgresql://user@db/optout?password=s3cret&sslpassword=k3y')).not.toMatch(/s3cret|k3y/);
    expect(redact('postgres://user:s3cret@[bad/optout')).not.toContain('s3cret');
    expect(redact('postgres://user@db/optout')).toBe('postgres://user@db/optout');
  });

  it('an unreachable database is a store error that names it without the password', async () => {
    const err = await errorOf(() => openLedger('postgres://someone:s3cret@127.0.0.1:1/optout'));
    expect(err?.code).toBe('OPTOUT_ERR_STORE');
    expect(err?.message).toContain('postgres://someone:***@127.0.0.1:1/optout');
    expect(err?.message).not.toContain('s3cret');
  });
});

describe('the command line', () => {
  it('has optout migrate beside the other commands', () => {
    expect(buildProgram().commands.map((c) => c.name())).toEqual(expect.arrayContaining(['migrate', 'import', 'check', 'scrub', 'serve']));
  });
});

describe('a folder --db', () => {
  it('is refused by migrate, and by commands that only read when it holds no store', async () => {
    const dir = await tempDir('optout-open-');
    expect((await errorOf(() => migrateDatabase(dir)))?.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect((await errorOf(() => openLedger(join(dir, 'none'), { create: false })))?.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    const store = await openLedger(join(dir, 'db'));
    expect(store.supports).toEqual({ syncLookups: true, feed: false, exclusive: true, settlesChunks: false });
    await store.close();
  });
});

await withPgDatabase('openLedger on PostgreSQL', (url) => {
  const withPassword = url.replace('postgres@', 'postgres:s3cret@');

  it('refuses a database without the schema with OPTOUT_ERR_SCHEMA, pointing to optout migrate, then opens it once migrated', async () => {
    await resetDatabase(url);
    const err = await errorOf(() => openLedger(withPassword, { create: true }));
    expect(err?.code).toBe('OPTOUT_ERR_SCHEMA');
    expect(err?.message).toContain('optout migrate');
    expect(err?.message).not.toContain('s3cret');
    expect(await migrateDatabase(url)).toEqual({ from: 0, version: SCHEMA_VERSION });
    expect(await migrateDatabase(url)).toEqual({ from: SCHEMA_VERSION, version: SCHEMA_VERSION });
    const ledger = await openLedger(url, { create: false });
    expect(ledger.supports).toEqual({ syncLookups: false, feed: true, exclusive: false, settlesChunks: true, chunksInFlight: 2 });
    await ledger.close();
  });

  it('is refused by openStore (checks served from memory need a local store), without the password', async () => {
    const err = await errorOf(() => openStore(withPassword));
    expect(err?.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(err?.message).toContain('--replica');
    expect(err?.message).not.toContain('s3cret');
  });

  it('two imports at once with overlapping lists count every key exactly once', async () => {
    await resetDatabase(url);
    await migrateDatabase(url);
    const dir = await tempDir('optout-open-');
    const a = writeEmails(dir, 'a.csv', emailRange(0, 3000));
    const b = writeEmails(dir, 'b.csv', emailRange(2000, 5000));
    // Two ledgers (two pools, as two processes have), each opened by its own import.
    const [ra, rb] = await Promise.all([
      runImport({ source: { kind: 'file', path: a }, db: url, confirm: { mode: 'yes' } }),
      runImport({ source: { kind: 'file', path: b }, db: url, confirm: { mode: 'yes' } }),
    ]);
    expect(ra.unique).toBe(3000);
    expect(rb.unique).toBe(3000);
    expect(ra.added + rb.added).toBe(5000);
    expect(ra.alreadySuppressed + rb.alreadySuppressed).toBe(1000);
    // The jobs took turns under the database's lease: the second found the whole overlap stored.
    expect([ra.added, rb.added].sort((x, y) => x - y)).toEqual([2000, 3000]);
    const ledger = await openLedger(url);
    try {
      expect((await ledger.scopeCounts()).get(ACCOUNT_WIDE)).toBe(5000);
      const jobs = await ledger.listImports();
      expect(jobs.map((j) => j.state)).toEqual(['completed', 'completed']);
      expect(jobs.map((j) => j.checkpoint.counts.added).sort()).toEqual([ra.added, rb.added].sort());
    } finally {
      await ledger.close();
    }
  });
});
