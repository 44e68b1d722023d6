/**
 * The writing phase on the embedded store: keys reach LevelDB as the bytes the workers wrote,
 * with the hashes the workers computed, and an import into a scope that holds nothing looks no
 * key up, unless a single change touches the store while it writes.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { addSuppression, lookupSuppressions } from '../../src/manage/suppressions.js';
import { decodeFilterLogRecord } from '../../src/store/level/filter-log.js';
import { entryRange, parseEntryKey } from '../../src/store/level/keys.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { emailRange, removeTempDirs, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';
import { normalizeEmail } from '../../src/policy/email.js';
import { entries } from '../store/ledger-writes.js';
import { watchedLedger as watched } from './watched-ledger.js';

afterAll(removeTempDirs);

/** Every stored entry's key, by scope, and the hash pairs of every filter log record. */
async function entriesAndLog(store: LevelStore): Promise<{ keys: string[]; pairs: string[] }> {
  const keys: string[] = [];
  for await (const k of store.db.keys(entryRange())) keys.push(parseEntryKey(k).key);
  const pairs: string[] = [];
  for await (const v of store.db.values({ gt: 'f', lt: 'g', valueEncoding: 'buffer' })) {
    const record = decodeFilterLogRecord(v as unknown as Buffer);
    if (record === undefined) throw new Error('a damaged filter log record');
    for (let i = 0; i < record.pairs.length; i += 2) pairs.push(`${record.pairs[i]}:${record.pairs[i + 1]}`);
  }
  return { keys, pairs };
}

describe('the writing phase on LevelDB', () => {
  it('logs, for every entry an import writes, the hashes of its own key (multi-byte keys included)', async () => {
    const dir = await tempDir('optout-write-phase-');
    const emails = [...emailRange(0, 3000), 'jöns@exämple.org', 'ærlig.løs@eksempel.no', '中文@例子.cn', 'Ünïcödé+tag@x.org'];
    const list = writeEmails(dir, 'list.csv', emails);
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      const report = await runImport({ source: { kind: 'file', path: list }, store, confirm: { mode: 'yes' } });
      expect(report).toMatchObject({ rows: emails.length, added: emails.length });
      const { keys, pairs } = await entriesAndLog(store);
      // Local parts stay as they are (domains become punycode).
      expect(keys.filter((k) => /[^\u0000-\u007f]/.test(k)).map((k) => k.slice(0, k.indexOf('@'))).sort()).toEqual(['jöns', 'ærlig.løs', 'ünïcödé', '中文']);
      const expected = keys.map((k) => {
        const [h1, h2] = hashKeyTuple(k);
        return `${h1}:${h2}`;
      });
      expect(pairs.sort()).toEqual(expected.sort());
      // The hashes placed every key in the filter: none of them reads as absent.
      const filter = await store.filter();
      expect(keys.every((k) => filter.mightContain(...(hashKeyTuple(k).slice(0, 2) as [number, number])))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('stores each entry\'s own address where it differs from its key, many to a bucket, and none where it does not', async () => {
    const dir = await tempDir('optout-write-phase-');
    // Gmail dots and tags: the key drops them, the address keeps them.
    const emails = Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? `Person.${i}+news@Gmail.com` : `p${i}@x.org`));
    const list = writeEmails(dir, 'list.csv', emails);
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      expect(await runImport({ source: { kind: 'file', path: list }, store, confirm: { mode: 'yes' } })).toMatchObject({ added: 3000 });
      const stored = new Map((await entries(store)).map((e) => [e.key, e.address]));
      const expected = new Map(emails.map((email) => {
        const n = normalizeEmail(email);
        if (!n.valid) throw new Error(`${email} is not valid`);
        return [n.key, n.address === n.key ? undefined : n.address];
      }));
      expect([...expected.values()].filter((a) => a !== undefined)).toHaveLength(1000);
      expect(stored).toEqual(expected);
    } finally {
      await store.close();
    }
  });

  it('looks no key up in a scope that holds nothing, and looks them up in one that does', async () => {
    const dir = await tempDir('optout-write-phase-');
    const list = writeEmails(dir, 'list.csv', emailRange(0, 5000));
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      const first = watched(store);
      const report = await runImport({ source: { kind: 'file', path: list }, store: first.ledger, confirm: { mode: 'yes' } });
      expect(report).toMatchObject({ unique: 5000, added: 5000 });
      expect(first.asked()).toBe(0);

      // The same list into another unit: that scope is empty too.
      const unit = watched(store);
      expect(await runImport({ source: { kind: 'file', path: list }, store: unit.ledger, confirm: { mode: 'yes' }, unit: 'u1' })).toMatchObject({ added: 5000 });
      expect(unit.asked()).toBe(0);

      // Again into the account-wide scope, which holds every key now: each one is looked up and held.
      const again = watched(store);
      const second = await runImport({ source: { kind: 'file', path: writeEmails(dir, 'again.csv', emailRange(0, 5000)) }, store: again.ledger, confirm: { mode: 'yes' } });
      expect(second).toMatchObject({ unique: 5000, added: 0, alreadySuppressed: 5000 });
      expect(again.asked()).toBe(5000);
    } finally {
      await store.close();
    }
  });

  it('looks keys up again once a single add has touched the store during the import, and counts that key as already suppressed', async () => {
    const dir = await tempDir('optout-write-phase-');
    const emails = emailRange(0, 5000);
    const list = writeEmails(dir, 'list.csv', emails);
    // The key of the highest first hash is written in the last chunk: the add lands before it.
    const last = emails.reduce((a, b) => (hashKeyTuple(b)[0] > hashKeyTuple(a)[0] ? b : a));
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      let added: Promise<unknown> | undefined;
      const w = watched(store, (n) => {
        // Called under the write lock: the add waits for this chunk, then writes before the next one.
        if (n === 1) added = addSuppression(store, { email: last, actor: 'cli' });
      });
      const report = await runImport({ source: { kind: 'file', path: list }, store: w.ledger, confirm: { mode: 'yes' } });
      await added;
      expect(report).toMatchObject({ unique: 5000, added: 4999, alreadySuppressed: 1 });
      expect(w.asked()).toBeGreaterThan(0);
      const [entry] = await lookupSuppressions(store, last);
      // The add's entry stays its own; the import holds it.
      expect(entry?.job).not.toBe(report.jobId);
      expect(Object.fromEntries(store.counts())).toEqual({ '*': 5000 });
    } finally {
      await store.close();
    }
  });
});
