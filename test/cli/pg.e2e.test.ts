/**
 * The built CLI with `--db postgres://...`: `optout migrate`, the schema check, every command
 * but serve printing what it prints on a folder (the same run on both, compared), and two
 * import processes at once into one database. Serving a database: replicas.e2e.test.ts.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/pg/schema.js';
import { redact } from '../../src/store/pg/url.js';
import { ROOT, SAMPLE, emailRange, errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir, writeEmails, type CliResult } from '../helpers.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';

const SEND_LIST = join(ROOT, 'data', 'sample-send-list.csv');
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g;

afterAll(removeTempDirs);

/** What a run printed, with what differs between stores by nature taken out (and `masks`, random ids). */
function shown(r: CliResult, dir: string, db: string, masks: ReadonlyMap<string, string>): { code: number | null; stdout: string; stderr: string } {
  const clean = (text: string): string => [...masks].reduce((t, [from, to]) => t.replaceAll(from, to), text)
    .replaceAll(db, '<db>').replaceAll(dir, '<dir>').replace(ISO, '<time>')
    // Durations, sizes and ids made from the clock.
    .replace(/"(durationMs|rowsPerSecond|peakRssBytes|sizeOnDiskBytes)":\d+/g, '"$1":0')
    .replace(/"id":"\d{10,}[^"]*"/g, '"id":"<audit>"')
    .replace(/^ {2}time .*\n/gm, '').replace(/^on disk .*\n/gm, '');
  return { code: r.code, stdout: clean(r.stdout), stderr: clean(r.stderr) };
}

/** An export's lines, the CSV header first: rows come in the store's order (by key hash in both, by unit first in a folder). */
function sortedRows(text: string): string[] {
  const rows = text.split('\n');
  const header = rows[0]?.startsWith('{') ? [] : rows.splice(0, 1);
  return [...header, ...rows.map((r) => r.replace(ISO, '<time>')).sort()];
}

/** One session of every command but serve on the store at `db`, run by the built CLI. */
async function session(db: string, dir: string): Promise<Record<string, unknown>> {
  const shownDb = db.startsWith('postgres') ? redact(db) : resolve(db);
  const t: Record<string, unknown> = {};
  const masks = new Map<string, string>();
  const cli = async (name: string, args: string[]): Promise<CliResult> => {
    const r = await runCli(['--db', db, ...args]);
    t[name] = shown(r, dir, shownDb, masks);
    return r;
  };
  const unitList = writeEmails(dir, 'unit.csv', ['unit1@emea.test', 'unit2@emea.test', 'Jane.Doe@example.com', 'bad', 'unit1@EMEA.test']);
  await cli('import', ['import', SAMPLE, '--yes', '--rejects', join(dir, 'rejects.csv')]);
  t['rejects'] = await readFile(join(dir, 'rejects.csv'), 'utf8');
  await cli('dryRun', ['import', unitList, '--unit', 'emea', '--dry-run']);
  await cli('wrongCount', ['import', unitList, '--unit', 'emea', '--reason', 'bounced', '--confirm', '9']);
  await cli('unitImport', ['import', unitList, '--unit', 'emea', '--reason', 'bounced', '--confirm', '3', '--json']);
  await cli('again', ['import', SAMPLE, '--yes', '--json']);
  await cli('checkSuppressed', ['check', 'First.Last@gmail.com']);
  await cli('checkUnit', ['check', 'unit1@emea.test', '--unit', 'emea', '--json']);
  await cli('checkOtherUnit', ['check', 'unit1@emea.test', '--unit', 'apac']);
  await cli('checkLegal', ['check', 'unit1@emea.test', '--unit', 'emea', '--type', 'one-to-one', '--legal-basis', 'contract', '--json']);
  await cli('checkFree', ['check', 'nobody@example.org']);
  await cli('add', ['add', 'New.One@example.org', '--unit', 'apac', '--reason', 'complaint']);
  await cli('addAgain', ['add', 'new.one@example.org', '--unit', 'apac', '--json']);
  await cli('show', ['show', 'Jane.Doe@Example.com']);
  await cli('remove', ['remove', 'first.last@gmail.com', '--why', 'asked to resubscribe']);
  await cli('removeAgain', ['remove', 'first.last@gmail.com', '--why', 'again']);
  const out = join(dir, 'eligible.csv');
  const removed = join(dir, 'removed.csv');
  await cli('scrub', ['scrub', SEND_LIST, '--out', out, '--removed', removed]);
  t['scrubFiles'] = [await readFile(out, 'utf8'), await readFile(removed, 'utf8')];
  await cli('scrubLegal', ['scrub', SEND_LIST, '--out', out, '--unit', 'emea', '--type', 'one-to-one', '--legal-basis', 'contract', '--json']);
  const exp = await runCli(['--db', db, 'export']);
  t['export'] = [exp.code, sortedRows(exp.stdout)];
  const expUnit = await runCli(['--db', db, 'export', '--unit', 'emea', '--format', 'ndjson']);
  t['exportUnit'] = [expUnit.code, sortedRows(expUnit.stdout)];
  await cli('jobsAll', ['jobs', '--all', '--json']);
  await cli('rollback', ['rollback', '1']);
  await cli('rollbackAgain', ['rollback', '1']);
  const key = parseJson<{ id: string }>(await runCli(['--db', db, 'keys', 'create', '--scope', 'check', '--unit', 'emea', '--json']));
  masks.set(key.id, '<key>');
  await cli('keys', ['keys', 'list']);
  await cli('revoke', ['keys', 'revoke', key.id]);
  await cli('syncAdd', ['sync', 'add', 'http://127.0.0.1:9/list.csv', '--allow-private', '--unit', 'apac']);
  await cli('syncList', ['sync', 'list', '--json']);
  await cli('syncRemove', ['sync', 'remove', '1']);
  await cli('audit', ['audit']);
  await cli('stats', ['stats']);
  await cli('statsJson', ['stats', '--json']);
  return t;
}

await withPgDatabase('optout CLI on PostgreSQL', (url) => {
  describe('optout CLI on PostgreSQL', () => {
    it('refuses a database without the schema (exit 2, OPTOUT_ERR_SCHEMA) until optout migrate, which is idempotent', async () => {
      await resetDatabase(url);
      const withPassword = url.replace('postgres@', 'postgres:s3cret@');
      for (const args of [['check', 'a@x.org'], ['import', SAMPLE, '--yes'], ['stats'], ['export'], ['scrub', SEND_LIST, '--out', '/dev/null']]) {
        const r = await runCli(['--db', withPassword, ...args]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(errorCodes(r.stderr)).toEqual(['OPTOUT_ERR_SCHEMA']);
        expect(r.stderr).toContain('optout migrate');
        expect(r.stderr).not.toContain('s3cret');
      }
      const first = await runCli(['--db', withPassword, 'migrate']);
      expect(first.code).toBe(0);
      expect(first.stdout).toBe(`schema of ${redact(withPassword)} created at version ${SCHEMA_VERSION}\n`);
      expect(first.stdout).not.toContain('s3cret');
      const again = await runCli(['migrate', '--json'], { env: { OPTOUT_DB: url } });
      expect(parseJson(again)).toEqual({ db: url, from: SCHEMA_VERSION, version: SCHEMA_VERSION });
      const ok = await runCli(['--db', url, 'stats', '--json']);
      expect(parseJson(ok)).toMatchObject({ entries: 0, scopes: {}, jobs: [] });
    }, 120_000);

    it('refuses migrate on a folder, and a replica of a folder, with exit 2', async () => {
      const dir = await tempDir('optout-cli-pg-');
      const migrate = await runCli(['--db', dir, 'migrate']);
      expect(migrate.code).toBe(2);
      expect(errorCodes(migrate.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
      const serve = await runCli(['--db', join(dir, 'db'), 'serve', '--create', '--port', '0', '--replica', join(dir, 'replica')]);
      expect(serve.code).toBe(2);
      expect(errorCodes(serve.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
      expect(serve.stderr).toContain('--replica');
    });

    it('every command but serve prints, writes and exits as on a folder', async () => {
      const folderDir = await tempDir('optout-cli-pg-');
      const folder = await session(join(folderDir, 'db'), folderDir);
      await resetDatabase(url);
      expect((await runCli(['--db', url, 'migrate'])).code).toBe(0);
      const pgDir = await tempDir('optout-cli-pg-');
      const database = await session(url, pgDir);
      // What the run must show, so that two equally wrong runs cannot pass.
      expect(folder['import']).toMatchObject({ code: 0, stdout: expect.stringContaining('added             7') });
      expect(folder['checkSuppressed']).toMatchObject({ code: 1 });
      expect(folder['checkFree']).toMatchObject({ code: 0 });
      expect(folder['wrongCount']).toMatchObject({ code: 3 });
      expect(folder['removeAgain']).toMatchObject({ code: 2, stderr: expect.stringContaining('OPTOUT_ERR_NOT_SUPPRESSED') });
      expect(folder['rollbackAgain']).toMatchObject({ code: 2 });
      expect(folder['scrub']).toMatchObject({ code: 0, stdout: expect.stringContaining('eligible          5') });
      expect(folder['stats']).toMatchObject({ stdout: expect.stringContaining('store     <db>') });
      expect(database).toEqual(folder);
    }, 400_000);

    it('two import processes at once with overlapping lists count every key exactly once', async () => {
      await resetDatabase(url);
      expect((await runCli(['--db', url, 'migrate'])).code).toBe(0);
      const dir = await tempDir('optout-cli-pg-');
      const a = writeEmails(dir, 'a.csv', emailRange(0, 20_000));
      const b = writeEmails(dir, 'b.csv', emailRange(12_000, 30_000));
      const runs = [startCli(['--db', url, 'import', a, '--yes', '--json']), startCli(['--db', url, 'import', b, '--yes', '--json'])];
      for (const r of runs) r.child.stdin.end();
      const [ra, rb] = (await Promise.all(runs.map((r) => r.done))).map((r) => parseJson<{ unique: number; added: number; alreadySuppressed: number }>(r));
      expect([ra?.unique, rb?.unique]).toEqual([20_000, 18_000]);
      expect((ra?.added ?? 0) + (rb?.added ?? 0)).toBe(30_000);
      expect((ra?.alreadySuppressed ?? 0) + (rb?.alreadySuppressed ?? 0)).toBe(8_000);
      // The jobs took turns under the database's lease: one of them found the whole overlap stored.
      expect([ra?.alreadySuppressed, rb?.alreadySuppressed]).toContain(0);
      const stats = parseJson<{ entries: number; jobs: Array<{ state: string; added: number }> }>(await runCli(['--db', url, 'stats', '--json']));
      expect(stats.entries).toBe(30_000);
      expect(stats.jobs.map((j) => j.state)).toEqual(['completed', 'completed']);
      expect(stats.jobs.reduce((n, j) => n + j.added, 0)).toBe(30_000);
    }, 120_000);
  });
});
