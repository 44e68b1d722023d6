/**
 * The same session of commands on a folder store and on a PostgreSQL database, through the
 * library functions the CLI commands call (each step opens the store named by `db` and closes
 * it, as a command does): every answer, count, output file and record must be the same. Times,
 * durations and the database's audit ids differ by nature and are left out.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createKey, listKeys, revokeKey } from '../../../src/auth/api-keys.js';
import { normalizeCheckRequest, type CheckRequest } from '../../../src/check/checker.js';
import { keysOfEmails, ledgerChecker } from '../../../src/check/ledger-checker.js';
import { readAudit } from '../../../src/manage/audit-log.js';
import { exportText } from '../../../src/manage/export.js';
import { ImportJobs } from '../../../src/manage/import-jobs.js';
import { rollbackJob } from '../../../src/manage/rollback.js';
import { addSuppression, lookupSuppressions, removeSuppression } from '../../../src/manage/suppressions.js';
import { jobSummary } from '../../../src/store/jobs.js';
import { openLedger } from '../../../src/store/open.js';
import { migrate } from '../../../src/store/pg/migrate.js';
import type { Ledger } from '../../../src/store/store.js';
import { addSync, listSyncs, publicSync, removeSync, runSync } from '../../../src/sync/syncs.js';
import { createInlinePool } from '../../../src/workers/inline-pool.js';
import { startFileServer, type TestServer } from '../../fetch/http-server.js';
import { ROOT, SAMPLE, failureCode, removeTempDirs, tempDir, writeEmails } from '../../helpers.js';
import { runImport, runScrub } from '../../inline.js';
import { resetDatabase, withPgDatabase } from '../pg-cluster.js';

const SEND_LIST = join(ROOT, 'data', 'sample-send-list.csv');
const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g;
const VARYING = new Set(['durationMs', 'rowsPerSecond', 'peakRssBytes', 'id', 'time']);

/** A value with what differs between runs by nature (times, durations, the run's folder) replaced. */
function stable(value: unknown, dir: string): unknown {
  return JSON.parse(JSON.stringify(value, (k, v: unknown) => {
    if (VARYING.has(k) && typeof v !== 'object') return '~';
    return typeof v === 'string' ? v.replaceAll(dir, '<dir>').replace(ISO, '<time>') : v;
  }));
}


/** One command: the store opened for it and closed after, as the CLI does. */
async function command<T>(db: string, fn: (store: Ledger) => Promise<T>): Promise<T> {
  const store = await openLedger(db, { purpose: 'parity', create: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * An export's lines, the CSV header first and the rows sorted: rows come in the store's order, by
 * key hash in a folder and by key in a database, and the set is what must be the same.
 */
async function exported(it: AsyncIterable<string>): Promise<string[]> {
  let text = '';
  for await (const s of it) text += s;
  const rows = text.split('\n');
  // NDJSON has no header.
  const header = rows[0]?.startsWith('{') ? [] : rows.splice(0, 1);
  return [...header, ...rows.sort()];
}

const CHECKS: CheckRequest[] = [
  { email: 'First.Last@gmail.com' },
  { email: 'firstlast+x@googlemail.com', type: 'sequence' },
  { email: 'jane.doe@example.com', unit: 'emea' },
  { email: 'unit1@emea.test' },
  { email: 'unit1@emea.test', unit: 'emea' },
  { email: 'unit1@emea.test', unit: 'apac' },
  { email: 'unit1@emea.test', unit: 'emea', type: 'one-to-one', legalBasis: 'contract' },
  { email: 'unit1@emea.test', unit: 'emea', type: 'one-to-one' },
  { email: 'nobody@example.org' },
  { email: 'not-an-email' },
];

/** The check command, request by request: the store opened, the key looked up, decided, recorded. */
async function checkAll(db: string, reqs: readonly CheckRequest[], filter: boolean): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const req of reqs) {
    normalizeCheckRequest(req);
    out.push(await command(db, async (store) => {
      const { checker, prepare } = await ledgerChecker(store, { filter });
      await prepare(keysOfEmails([req.email]));
      const d = checker.decide({ ...req, caller: 'cli' });
      await checker.record([req], [d]);
      return d;
    }));
  }
  return out;
}

/** Every command of the CLI but serve, in one session on the store at `db`. */
async function session(db: string, dir: string, server: TestServer): Promise<Record<string, unknown>> {
  const t: Record<string, unknown> = {};
  const rejects = join(dir, 'rejects.csv');
  t['import'] = await runImport({ source: { kind: 'file', path: SAMPLE }, db, confirm: { mode: 'yes' }, rejects });
  t['rejects'] = await readFile(rejects, 'utf8');
  const unitList = writeEmails(dir, 'unit.csv', ['unit1@emea.test', 'unit2@emea.test', 'Jane.Doe@example.com', 'bad', 'unit1@EMEA.test']);
  t['dryRun'] = await runImport({ source: { kind: 'file', path: unitList }, db, unit: 'emea', reason: 'bounced', confirm: { mode: 'dry-run' } });
  t['wrongCount'] = await runImport({ source: { kind: 'file', path: unitList }, db, unit: 'emea', reason: 'bounced', confirm: { mode: 'count', count: 9 } });
  t['unitImport'] = await runImport({ source: { kind: 'file', path: unitList }, db, unit: 'emea', reason: 'bounced', confirm: { mode: 'count', count: 3 } });
  t['again'] = await runImport({ source: { kind: 'file', path: SAMPLE }, db, confirm: { mode: 'yes' } });
  t['checks'] = await checkAll(db, CHECKS, false);
  t['checksWithFilter'] = await checkAll(db, CHECKS.slice(0, 3), true);

  t['add'] = await command(db, (s) => addSuppression(s, { email: 'New.One@example.org', unit: 'apac', reason: 'complaint', actor: 'cli' }));
  t['addAgain'] = await command(db, (s) => addSuppression(s, { email: 'new.one@example.org', unit: 'apac', actor: 'cli' }));
  t['addHeld'] = await command(db, (s) => addSuppression(s, { email: 'jane.doe@example.com', actor: 'cli' }));
  t['show'] = await command(db, (s) => lookupSuppressions(s, 'Jane.Doe@Example.com'));
  t['remove'] = await command(db, (s) => removeSuppression(s, { email: 'first.last@gmail.com', why: 'asked to resubscribe', actor: 'cli' }));
  t['removeAgain'] = await failureCode(() => command(db, (s) => removeSuppression(s, { email: 'first.last@gmail.com', why: 'again', actor: 'cli' })));
  t['checksAfter'] = await checkAll(db, CHECKS.slice(0, 2), false);

  const eligible = join(dir, 'eligible.csv');
  const removed = join(dir, 'removed.csv');
  t['scrub'] = await runScrub({ source: { kind: 'file', path: SEND_LIST }, db, out: eligible, removed });
  t['scrubFiles'] = [await readFile(eligible, 'utf8'), await readFile(removed, 'utf8')];
  t['scrubLegal'] = await runScrub({ source: { kind: 'file', path: SEND_LIST }, db, out: eligible, unit: 'emea', type: 'one-to-one', legalBasis: 'contract' });
  t['scrubLegalFile'] = await readFile(eligible, 'utf8');

  t['export'] = await command(db, (s) => exported(exportText(s, {})));
  t['exportUnit'] = await command(db, (s) => exported(exportText(s, { unit: 'emea', format: 'ndjson' })));
  t['jobs'] = await command(db, async (s) => (await s.listJobs()).map(jobSummary));
  t['rollback'] = await command(db, (s) => rollbackJob(s, '1', 'cli'));
  t['rollbackAgain'] = await failureCode(() => command(db, (s) => rollbackJob(s, '1', 'cli')));
  t['exportAfterRollback'] = await command(db, (s) => exported(exportText(s, {})));

  const key = await command(db, (s) => createKey(s, { scope: 'check', unit: 'emea', rateLimit: 10 }));
  t['keys'] = await command(db, (s) => listKeys(s));
  t['revoke'] = await command(db, (s) => revokeKey(s, key.id));

  t['sync'] = await command(db, async (s) => {
    const rec = await addSync(s, { url: `${server.origin}/list.csv`, unit: 'apac', allowPrivate: true, actor: 'cli' });
    const pool = createInlinePool();
    const jobs = new ImportJobs(s, { pool });
    try {
      const run = await runSync(s, jobs, rec.id);
      const list = (await listSyncs(s)).map(publicSync);
      await removeSync(s, rec.id, 'cli');
      return { run, list, after: await listSyncs(s) };
    } finally {
      await jobs.close();
      await pool.destroy();
    }
  });

  t['audit'] = await command(db, async (s) => {
    const out: unknown[] = [];
    for await (const r of readAudit(s)) out.push(r);
    return out;
  });
  t['stats'] = await command(db, async (s) => ({ scopes: Object.fromEntries(await s.scopeCounts()), imports: (await s.listImports()).length }));
  return stable(t, dir) as Record<string, unknown>;
}

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(async () => {
  await removeTempDirs();
});

await withPgDatabase('folder and PostgreSQL parity', (url) => {
  describe('the same commands on a folder and on PostgreSQL', () => {
    it('give the same answers, counts, files and records', async () => {
      const server = await startFileServer({ body: 'email\nsync1@x.test\nsync2@x.test\nunit2@emea.test\n' });
      servers.push(server);
      const folderDir = await tempDir('optout-parity-');
      const folder = await session(join(folderDir, 'db'), folderDir, server);

      await resetDatabase(url);
      await migrate(url);
      const pgDir = await tempDir('optout-parity-');
      const database = await session(url, pgDir, server);
      // What the session must show, so that two equally wrong runs cannot pass.
      expect(folder['import']).toMatchObject({ rows: 13, valid: 9, invalid: 4, unique: 7, added: 7, alreadySuppressed: 0, jobId: '1' });
      expect(folder['unitImport']).toMatchObject({ unique: 3, added: 3, confirmed: true });
      expect(folder['again']).toMatchObject({ added: 0, alreadySuppressed: 7 });
      expect((folder['checks'] as Array<{ reason: string }>).map((d) => d.reason)).toEqual([
        'suppressed', 'suppressed', 'suppressed', 'not_suppressed', 'suppressed', 'not_suppressed', 'legal_basis', 'suppressed',
        'not_suppressed', 'invalid_address',
      ]);
      expect(folder['scrub']).toMatchObject({ rows: 8, eligible: 5, suppressed: 2, invalid: 1 });
      // The second import of the same list holds every key of the first: they pass to it.
      expect(folder['rollback']).toMatchObject({ removed: 0, kept: 6 });
      expect(folder['removeAgain']).toBe('OPTOUT_ERR_NOT_SUPPRESSED');

      // As text: records must also keep their keys in the order written, as printed on a folder.
      for (const step of Object.keys(folder)) expect(JSON.stringify(database[step]), step).toBe(JSON.stringify(folder[step]));
      expect(Object.keys(database)).toEqual(Object.keys(folder));
    });
  });
});
