/**
 * Imports into PostgreSQL, whose chunk commits settle every key (`supports.settlesChunks`): the
 * writing pass reads no key before writing it, and the counts stay exact however the list
 * overlaps what the ledger holds, chunk after chunk.
 */
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { migrateDatabase, openLedger } from '../../src/store/open.js';
import type { Ledger } from '../../src/store/store.js';
import { emailRange, removeTempDirs, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';
import { watchedLedger as counting } from './watched-ledger.js';

afterAll(removeTempDirs);

await withPgDatabase('imports into PostgreSQL settled at commit', (url) => {
  let ledger: Ledger | undefined;
  beforeEach(async () => {
    await resetDatabase(url);
    await migrateDatabase(url);
    ledger = await openLedger(url);
  });
  afterEach(async () => {
    await ledger?.close();
  });

  it('writes without looking keys up first, with exact counts for lists that overlap the ledger', async () => {
    const dir = await tempDir('optout-pg-settle-');
    const store = counting(ledger as Ledger);
    const first = writeEmails(dir, 'first.csv', emailRange(0, 3000));
    // Half of it stored already, spread over every chunk; the other half new.
    const second = writeEmails(dir, 'second.csv', emailRange(1500, 4500));
    const a = await runImport({ source: { kind: 'file', path: first }, db: url, store: store.ledger, confirm: { mode: 'yes' } });
    expect(a).toMatchObject({ unique: 3000, added: 3000, alreadySuppressed: 0 });
    const b = await runImport({ source: { kind: 'file', path: second }, db: url, store: store.ledger, confirm: { mode: 'yes' } });
    expect(b).toMatchObject({ unique: 3000, added: 1500, alreadySuppressed: 1500 });
    const c = await runImport({ source: { kind: 'file', path: second }, db: url, store: store.ledger, confirm: { mode: 'yes' } });
    expect(c).toMatchObject({ unique: 3000, added: 0, alreadySuppressed: 3000 });
    expect(store.asked(), 'keys looked up before writing').toBe(0);
    expect((await store.ledger.scopeCounts()).get('*')).toBe(4500);
    const jobs = await store.ledger.listImports();
    expect(jobs.map((j) => [j.checkpoint.counts.added, j.checkpoint.counts.alreadySuppressed])).toEqual([[3000, 0], [1500, 1500], [0, 3000]]);
    const owners = new Map<string, string>();
    for await (const batch of store.ledger.scanEntries()) for (const e of batch) owners.set(e.key, e.jobId);
    expect(owners.size).toBe(4500);
    expect([...owners.values()].filter((j) => j === jobs[1]?.id)).toHaveLength(1500);
  });

  it('still counts a confirmation by looking keys up, writing nothing', async () => {
    const dir = await tempDir('optout-pg-settle-');
    const store = counting(ledger as Ledger);
    const list = writeEmails(dir, 'list.csv', emailRange(0, 2000));
    await runImport({ source: { kind: 'file', path: writeEmails(dir, 'some.csv', emailRange(0, 500)) }, db: url, store: store.ledger, confirm: { mode: 'yes' } });
    const report = await runImport({ source: { kind: 'file', path: list }, db: url, store: store.ledger, confirm: { mode: 'count', count: 2000 } });
    expect(report).toMatchObject({ unique: 2000, added: 1500, alreadySuppressed: 500 });
    expect(store.asked(), 'the counting pass asks about every key').toBe(2000);
  });
});
