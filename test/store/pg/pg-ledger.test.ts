/**
 * What the PostgreSQL ledger adds to the store contract: the schema check, the feed's order
 * under concurrent transactions, and exact counts when several processes import at once. Each
 * ledger opened here has a pool of its own, as a separate process would.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { hashKeyTuple } from '../../../src/filter/hash.js';
import { emptyCounts } from '../../../src/store/counts.js';
import type { JobRecord } from '../../../src/store/jobs.js';
import { migrate } from '../../../src/store/pg/migrate.js';
import { appendChange, PgLedger } from '../../../src/store/pg/pg-ledger.js';
import { IMPORT_LOCK, LOCK_CLASS, MIGRATIONS, SCHEMA_VERSION } from '../../../src/store/pg/schema.js';
import { POLICY_VERSION } from '../../../src/policy/email.js';
import { ACCOUNT_WIDE } from '../../../src/store/store.js';
import { failureCode } from '../../helpers.js';
import { chunkKey, hashed } from '../ledger-writes.js';
import { entryHashOfKey } from '../../../src/store/pg/entry-hash.js';
import { resetDatabase, withPgDatabase } from '../pg-cluster.js';

function importFields(scope: string): Omit<JobRecord, 'id'> {
  const now = new Date().toISOString();
  return {
    kind: 'import', state: 'importing', scope, reason: 'unsubscribed', source: 'pg', confirmed: 'yes', confirmedCount: null,
    fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
    createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
    checkpoint: { phase: 'spool', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 0, lengths: [] }, bucket: 0 },
    error: null,
  };
}

function addOf(ledger: PgLedger, key: string) {
  const [h1, h2] = hashKeyTuple(key);
  return ledger.addSuppression({ key, h1, h2, scope: ACCOUNT_WIDE, address: key, reason: 'manual', source: 'pg', actor: 'test' },
    (o) => ledger.audit({ actor: 'test', action: 'add', key, job: o.job, unit: null, details: {} }));
}

/** Whether `p` is still pending after `ms`. */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  const pending = Symbol('pending');
  return (await Promise.race([p.then(() => 'done', () => 'failed'), new Promise((r) => setTimeout(() => r(pending), ms))])) === pending;
}

await withPgDatabase('PgLedger', (url) => {
  const opened: Array<{ end(): Promise<void> }> = [];
  const open = async (): Promise<PgLedger> => {
    const ledger = await PgLedger.open(url);
    opened.push({ end: () => ledger.close() });
    return ledger;
  };
  const client = async (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    opened.push({ end: () => c.end() });
    return c;
  };
  beforeEach(async () => {
    await resetDatabase(url);
  });
  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((o) => o.end()));
  });

  describe('schema', () => {
    it('refuses to open a database without the schema, or with another version, with OPTOUT_ERR_SCHEMA', async () => {
      expect(await failureCode(() => PgLedger.open(url))).toBe('OPTOUT_ERR_SCHEMA');
      expect(await migrate(url)).toEqual({ from: 0, version: SCHEMA_VERSION });
      const c = await client();
      await c.query(`UPDATE optout_meta SET value = $1 WHERE name = 'schema_version'`, [String(SCHEMA_VERSION + 1)]);
      expect(await failureCode(() => PgLedger.open(url))).toBe('OPTOUT_ERR_SCHEMA');
      expect(await failureCode(() => migrate(url))).toBe('OPTOUT_ERR_SCHEMA');
    });

    it('migrates idempotently, from several processes at once', async () => {
      const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
      expect(results.map((r) => r.version)).toEqual([SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]);
      expect(results.filter((r) => r.from === 0)).toHaveLength(1);
      expect(await migrate(url)).toEqual({ from: SCHEMA_VERSION, version: SCHEMA_VERSION });
      const ledger = await open();
      expect(await ledger.head()).toBe(0);
    });

    it('upgrades a version 5 database with entries and a feed: both read as before, lookups by key and by scope use the new key', async () => {
      const c = await client();
      for (const sql of MIGRATIONS.slice(0, 5).flat()) await c.query(sql as string);
      await c.query(`INSERT INTO optout_meta (name, value) VALUES ('schema_version', '5'), ('policy', $1)`, [POLICY_VERSION]);
      await c.query(`INSERT INTO entries (scope, key, job, address, reason) VALUES ('*', 'a@x.org', 7, 'A@x.org', NULL), ('u1', 'a@x.org', 8, NULL, 'complaint')`);
      const put = [{ scope: '*', key: 'a@x.org', jobId: '7', address: 'A@x.org' }, { scope: 'u1', key: 'a@x.org', jobId: '8', reason: 'complaint' }];
      await c.query('INSERT INTO changes (seq, body) VALUES (1, $1)', [JSON.stringify({ put, del: [], jobs: [], apiKeys: [] })]);
      expect(await failureCode(() => PgLedger.open(url))).toBe('OPTOUT_ERR_SCHEMA');
      expect(await migrate(url)).toEqual({ from: 5, version: SCHEMA_VERSION });
      const ledger = await open();
      const [h1, h2] = hashKeyTuple('a@x.org');
      expect(await ledger.entriesOf({ key: 'a@x.org', h1, h2 })).toEqual([
        { scope: '*', entry: { jobId: '7', address: 'A@x.org' } },
        { scope: 'u1', entry: { jobId: '8', address: undefined, reason: 'complaint' } },
      ]);
      expect(await ledger.changesSince(0, 10)).toEqual([{ seq: 1, put, del: [], jobs: [], apiKeys: [] }]);
      const { rows } = await c.query<{ i: string }>(`SELECT indexrelid::regclass::text AS i FROM pg_index WHERE indrelid = 'entries'::regclass ORDER BY 1`);
      expect(rows.map((r) => r.i)).toEqual(['entries_by_job', 'entries_pkey']);
      await expect(c.query(`INSERT INTO entries (hash, scope, key, job) VALUES ($1, 'u1', 'a@x.org', 9)`, [entryHashOfKey('a@x.org')]))
        .rejects.toThrow(/entries_pkey/);
    });

    it('upgrades a version 6 database: every entry gets its key\'s hash, the primary key leads with it, and reads and writes find them', async () => {
      const c = await client();
      for (const sql of MIGRATIONS.slice(0, 6).flat()) await c.query(sql as string);
      await c.query(`INSERT INTO optout_meta (name, value) VALUES ('schema_version', '6'), ('policy', $1)`, [POLICY_VERSION]);
      // More keys than one page of the upgrade's hashing, a key in two scopes, a key beyond ASCII.
      const many = 120_000;
      await c.query(`INSERT INTO entries (scope, key, job) SELECT '*', 'k' || i || '@x.org', 7 FROM generate_series(1, $1::int) AS i`, [many]);
      await c.query(`INSERT INTO entries (scope, key, job, address, reason) VALUES ('*', 'a@x.org', 7, 'A@x.org', NULL),
        ('u1', 'a@x.org', 8, NULL, 'complaint'), ('*', 'josé@x.org', 7, NULL, NULL)`);
      await c.query(`INSERT INTO holds (scope, key, job) VALUES ('*', 'a@x.org', 9)`);
      await c.query(`INSERT INTO changes (seq, body, keys, addresses, reasons) VALUES (1, $1, ARRAY['a@x.org'], ARRAY['A@x.org'], ARRAY[NULL])`,
        [JSON.stringify({ put: [], del: [], jobs: [], apiKeys: [], chunk: { scope: '*', job: '7' } })]);
      expect(await failureCode(() => PgLedger.open(url))).toBe('OPTOUT_ERR_SCHEMA');
      expect(await migrate(url)).toEqual({ from: 6, version: SCHEMA_VERSION });
      expect(await migrate(url)).toEqual({ from: SCHEMA_VERSION, version: SCHEMA_VERSION });

      const { rows: stored } = await c.query<{ hash: number; key: string }>('SELECT hash, key FROM entries');
      expect(stored).toHaveLength(many + 3);
      expect(stored.filter((r) => r.hash !== entryHashOfKey(r.key))).toEqual([]);
      const { rows: [pkey] } = await c.query<{ d: string }>(`SELECT pg_get_indexdef('entries_pkey'::regclass) AS d`);
      expect(pkey?.d).toMatch(/\(hash, key, scope\)$/);
      const { rows: indexes } = await c.query<{ i: string }>(`SELECT indexrelid::regclass::text AS i FROM pg_index WHERE indrelid = 'entries'::regclass ORDER BY 1`);
      expect(indexes.map((r) => r.i)).toEqual(['entries_by_job', 'entries_pkey']);

      const ledger = await open();
      const look = (key: string) => ledger.entriesOf({ key, h1: hashKeyTuple(key)[0], h2: hashKeyTuple(key)[1] });
      expect(await look('a@x.org')).toEqual([
        { scope: '*', entry: { jobId: '7', address: 'A@x.org' } },
        { scope: 'u1', entry: { jobId: '8', address: undefined, reason: 'complaint' } },
      ]);
      expect(await look('josé@x.org')).toEqual([{ scope: '*', entry: { jobId: '7', address: undefined } }]);
      expect(await look(`k${many}@x.org`)).toEqual([{ scope: '*', entry: { jobId: '7', address: undefined } }]);
      expect(await ledger.changesSince(0, 10)).toEqual([{ seq: 1, put: [{ scope: '*', key: 'a@x.org', jobId: '7', address: 'A@x.org' }], del: [], jobs: [], apiKeys: [] }]);
      const codec = ledger.chunkKeyCodec(ACCOUNT_WIDE);
      expect(await ledger.presentKeys(['k1@x.org', 'josé@x.org', 'new@x.org'].map((k) => chunkKey(codec, k)))).toEqual([true, true, false]);
      expect((await addOf(ledger, 'k2@x.org')).added).toBe(false);
      expect((await addOf(ledger, 'new@x.org')).added).toBe(true);
      expect((await ledger.removeSuppression(ACCOUNT_WIDE, hashed('a@x.org'), () => ledger.audit({ actor: 'test', action: 'remove', key: 'a@x.org', job: null, unit: null, details: {} }))).heldBy)
        .toEqual(['9']);
      let scanned = 0;
      for await (const page of ledger.scanEntries(ACCOUNT_WIDE)) scanned += page.length;
      expect(scanned).toBe(many + 2);
    });

    it('refuses URLs of another kind with OPTOUT_ERR_INVALID_OPTION', async () => {
      expect(await failureCode(() => PgLedger.open('mysql://localhost/x'))).toBe('OPTOUT_ERR_INVALID_OPTION');
      expect(await failureCode(() => PgLedger.open('./folder'))).toBe('OPTOUT_ERR_INVALID_OPTION');
    });
  });

  describe('feed order', () => {
    beforeEach(async () => {
      await migrate(url);
    });

    it('a plain sequence lets a reader skip a change that commits late (the trap the ledger avoids)', async () => {
      const [a, b, reader] = [await client(), await client(), await client()];
      await reader.query('CREATE TABLE outbox (seq bigserial PRIMARY KEY, what text)');
      await a.query('BEGIN');
      await a.query(`INSERT INTO outbox (what) VALUES ('a')`);
      await b.query('BEGIN');
      await b.query(`INSERT INTO outbox (what) VALUES ('b')`);
      await b.query('COMMIT');
      const first = (await reader.query<{ seq: string }>('SELECT seq FROM outbox WHERE seq > 0 ORDER BY seq')).rows.map((r) => Number(r.seq));
      expect(first).toEqual([2]);
      await a.query('COMMIT');
      const next = (await reader.query<{ seq: string }>('SELECT seq FROM outbox WHERE seq > 2 ORDER BY seq')).rows;
      // Change 1 is committed, and a reader at position 2 never sees it.
      expect(next).toEqual([]);
      expect((await reader.query('SELECT seq FROM outbox WHERE seq = 1')).rows).toHaveLength(1);
    });

    it('numbers changes in commit order: a later writer waits, and a reader never passes an uncommitted change', async () => {
      const ledger = await open();
      const reader = await open();
      const early = await client();
      // A transaction that has numbered its change (1) and has not committed yet.
      await early.query('BEGIN');
      expect(await appendChange(early, {})).toBe(1);
      const add = addOf(ledger, 'late@x.org');
      expect(await pendingAfter(add, 300), 'the second writer waits for the first commit').toBe(true);
      expect(await reader.head()).toBe(0);
      expect(await reader.changesSince(0, 10)).toEqual([]);
      await early.query('COMMIT');
      expect((await add).added).toBe(true);
      const seen = await reader.changesSince(0, 10);
      expect(seen.map((c) => c.seq)).toEqual([1, 2]);
      expect(seen[1]?.put.map((p) => p.key)).toEqual(['late@x.org']);
    });

    it('leaves no gap when a transaction that numbered a change rolls back', async () => {
      const ledger = await open();
      const early = await client();
      await early.query('BEGIN');
      expect(await appendChange(early, {})).toBe(1);
      const add = addOf(ledger, 'a@x.org');
      await early.query('ROLLBACK');
      await add;
      expect((await ledger.changesSince(0, 10)).map((c) => c.seq)).toEqual([1]);
      expect(await ledger.head()).toBe(1);
    });

    it('many concurrent writers: the feed is 1..n in order, and replaying it gives the entries', async () => {
      const ledgers = await Promise.all([open(), open(), open(), open()]);
      const keys = Array.from({ length: 80 }, (_, i) => `k${i}@x.org`);
      await Promise.all(keys.map((k, i) => addOf(ledgers[i % ledgers.length] as PgLedger, k)));
      const feed = await (ledgers[0] as PgLedger).changesSince(0, 1000);
      expect(feed.map((c) => c.seq)).toEqual(keys.map((_, i) => i + 1));
      expect(feed.flatMap((c) => c.put.map((p) => p.key)).sort()).toEqual([...keys].sort());
    });
  });

  describe('imports from several processes at once', () => {
    beforeEach(async () => {
      await migrate(url);
    });

    /** Classifies `keys` (all new: nothing is stored yet) and returns the chunk, not yet committed. */
    async function classified(ledger: PgLedger, job: JobRecord, keys: readonly string[]) {
      const codec = ledger.chunkKeyCodec(job.scope);
      const chunkKeys = keys.map((k) => chunkKey(codec, k));
      const present = await ledger.presentKeys(chunkKeys);
      const writer = ledger.beginChunk(job.scope, job.id);
      let added = 0;
      let already = 0;
      chunkKeys.forEach((ck, i) => {
        if (present[i]) {
          writer.putHold(ck);
          already++;
        } else {
          writer.putEntry(ck, undefined);
          added++;
        }
      });
      const counts = { ...emptyCounts(), unique: keys.length, valid: keys.length, rows: keys.length, added, alreadySuppressed: already };
      const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1, counts } };
      return { commit: () => writer.commit(next, added), added };
    }

    it('count every key once: the commit says what it stored, and the checkpoint follows', async () => {
      const [one, two] = [await open(), await open()];
      const a = Array.from({ length: 3000 }, (_, i) => `k${i}@x.org`);
      const b = Array.from({ length: 3000 }, (_, i) => `k${i + 1500}@x.org`);
      const jobA = await one.createJob(importFields(ACCOUNT_WIDE));
      const jobB = await two.createJob(importFields(ACCOUNT_WIDE));
      // Both classify before either commits: each believes every key is new.
      const [chunkA, chunkB] = [await classified(one, jobA, a), await classified(two, jobB, b)];
      expect([chunkA.added, chunkB.added]).toEqual([3000, 3000]);
      const [ra, rb] = await Promise.all([chunkA.commit(), chunkB.commit()]);
      expect(ra.applied && rb.applied).toBe(true);
      expect(ra.added + rb.added).toBe(4500);
      expect((await one.scopeCounts()).get(ACCOUNT_WIDE)).toBe(4500);
      for (const [ledger, job, r] of [[one, jobA, ra], [two, jobB, rb]] as const) {
        const stored = (await ledger.getJob(job.id)) as JobRecord;
        expect(stored.checkpoint.counts).toMatchObject({ unique: 3000, added: r.added, alreadySuppressed: 3000 - r.added });
      }
      // Every shared key is owned by one job and held by the other: a rollback of either keeps it.
      let owned = 0;
      for await (const batch of one.scanEntries(ACCOUNT_WIDE)) owned += batch.length;
      expect(owned).toBe(4500);
      const feedKeys = (await one.changesSince(0, 100)).flatMap((c) => c.put.map((p) => p.key));
      expect(new Set(feedKeys).size).toBe(4500);
      expect(feedKeys).toHaveLength(4500);
    });

    it('a process whose job another took over writes nothing more to it: no chunk, no checkpoint, no end', async () => {
      const [stale, taker] = [await open(), await open()];
      const job = await stale.createJob(importFields(ACCOUNT_WIDE));
      const codec = stale.chunkKeyCodec(ACCOUNT_WIDE);
      const chunkOf = (ledger: PgLedger, key: string, bucket: number, added: number) => {
        const writer = ledger.beginChunk(ACCOUNT_WIDE, job.id);
        writer.putEntry(chunkKey(codec, key), undefined);
        const counts = { ...emptyCounts(), rows: added, valid: added, unique: added, added };
        return writer.commit({ ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket, counts } }, 1);
      };
      await stale.takeJob(job.id);
      expect(await chunkOf(stale, 'first@x.org', 1, 1)).toEqual({ applied: true, added: 1 });
      // Its lease lost, another process takes the job up.
      await taker.takeJob(job.id);
      await expect(chunkOf(stale, 'second@x.org', 2, 2)).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_STATE', message: expect.stringContaining('taken over') });
      await expect(stale.putJob({ ...job, updatedAt: new Date().toISOString() })).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_STATE' });
      await expect(stale.putJob({ ...job, state: 'failed', finishedAt: new Date().toISOString() })).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_STATE' });
      expect(await chunkOf(taker, 'second@x.org', 2, 2)).toEqual({ applied: true, added: 1 });
      expect(await taker.getJob(job.id)).toMatchObject({ state: 'importing', checkpoint: { bucket: 2, counts: { added: 2 } } });
      expect((await taker.scopeCounts()).get(ACCOUNT_WIDE)).toBe(2);
      await expect(taker.takeJob('999')).rejects.toMatchObject({ code: 'OPTOUT_ERR_JOB_NOT_FOUND' });
    });

    it('stores a held key whose entry was removed before the commit (opt-out wins)', async () => {
      const [one, two] = [await open(), await open()];
      await addOf(one, 'a@x.org');
      const job = await two.createJob(importFields(ACCOUNT_WIDE));
      const chunk = await classified(two, job, ['a@x.org', 'b@x.org']);
      expect(chunk.added).toBe(1);
      const [h1, h2] = hashKeyTuple('a@x.org');
      await one.removeSuppression(ACCOUNT_WIDE, { key: 'a@x.org', h1, h2 },
        (r) => one.audit({ actor: 'test', action: 'remove', key: 'a@x.org', job: r.entry.jobId, unit: null, details: {} }));
      expect(await chunk.commit()).toEqual({ applied: true, added: 2 });
      expect((await two.entriesOf({ key: 'a@x.org', h1, h2 })).map((e) => e.entry.jobId)).toEqual([job.id]);
      expect((await two.scopeCounts()).get(ACCOUNT_WIDE)).toBe(2);
      expect(((await two.getJob(job.id)) as JobRecord).checkpoint.counts).toMatchObject({ added: 2, alreadySuppressed: 0 });
    });
  });

  describe('chunk staging', () => {
    beforeEach(async () => {
      await migrate(url);
    });

    it('stores keys and addresses byte for byte, whatever characters COPY\'s text format escapes', async () => {
      const ledger = await open();
      const job = await ledger.createJob(importFields(ACCOUNT_WIDE));
      const codec = ledger.chunkKeyCodec(ACCOUNT_WIDE);
      const rows: Array<[string, string | undefined]> = [
        ['"a\\b"@x.org', '"A\\b"@X.org'], ['tab@x.org', 'Tab\t@x.org'], ['nl@x.org', 'N\nl\r@x.org'],
        ['n@x.org', '\\N'], ['plain@x.org', undefined], ['é@x.org', 'É@x.org'],
      ];
      const writer = ledger.beginChunk(ACCOUNT_WIDE, job.id);
      for (const [key, address] of rows) writer.putEntry(chunkKey(codec, key), address);
      const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1 } };
      expect(await writer.commit(next, rows.length)).toEqual({ applied: true, added: rows.length });
      // The importer's way: each key as the bytes of its chunk key, with its hashes.
      const unit = 'ü-unit';
      const unitJob = await ledger.createJob(importFields(unit));
      const unitCodec = ledger.chunkKeyCodec(unit);
      const bytesWriter = ledger.beginChunk(unit, unitJob.id);
      for (const [key, address] of rows) {
        const [h1, h2] = hashKeyTuple(key);
        bytesWriter.putEntryBytes?.(Buffer.from(chunkKey(unitCodec, key)), h1, h2, address);
      }
      expect(await bytesWriter.commit({ ...unitJob, checkpoint: { ...unitJob.checkpoint, phase: 'merge', bucket: 1 } }, rows.length))
        .toEqual({ applied: true, added: rows.length });
      const byKey = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : 1);
      for (const [scope, seq] of [[ACCOUNT_WIDE, 0], [unit, 1]] as const) {
        const stored: Array<[string, string | undefined]> = [];
        for await (const batch of ledger.scanEntries(scope)) stored.push(...batch.map((e): [string, string | undefined] => [e.key, e.address]));
        expect(stored.sort(byKey)).toEqual([...rows].sort(byKey));
        const fed = (await ledger.changesSince(seq, 1)).flatMap((c) => c.put.map((p): [string, string | undefined] => [p.key, p.address]));
        expect(fed.sort(byKey)).toEqual(stored);
        // Found by the hash each key was stored under.
        expect((await ledger.presentKeys(rows.map(([key]) => chunkKey(ledger.chunkKeyCodec(scope), key)))).every(Boolean)).toBe(true);
      }
    });

    it('feeds exactly the keys a chunk stored, with their addresses and reasons, not the ones it held', async () => {
      const ledger = await open();
      await addOf(ledger, 'held@x.org');
      const job = await ledger.createJob(importFields(ACCOUNT_WIDE));
      const codec = ledger.chunkKeyCodec(ACCOUNT_WIDE);
      const writer = ledger.beginChunk(ACCOUNT_WIDE, job.id);
      writer.putEntry(chunkKey(codec, 'b@x.org'), 'B@x.org', 'complaint');
      writer.putEntry(chunkKey(codec, 'held@x.org'), undefined);
      writer.putEntry(chunkKey(codec, 'a@x.org'), undefined);
      const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1 } };
      expect(await writer.commit(next, 3)).toEqual({ applied: true, added: 2 });
      const [, chunk] = await ledger.changesSince(0, 10);
      expect(chunk?.put.sort((x, y) => (x.key < y.key ? -1 : 1))).toEqual([
        { scope: ACCOUNT_WIDE, key: 'a@x.org', jobId: job.id, address: undefined },
        { scope: ACCOUNT_WIDE, key: 'b@x.org', jobId: job.id, address: 'B@x.org', reason: 'complaint' },
      ]);
      expect(chunk?.jobs.map((j) => j.id)).toEqual([job.id]);
      expect(chunk).not.toHaveProperty('chunk');
    });

    it('stages each chunk alone: nothing of an earlier chunk on the same connection, failed or committed', async () => {
      const ledger = await PgLedger.open(url, { max: 1 });
      opened.push({ end: () => ledger.close() });
      const codec = ledger.chunkKeyCodec(ACCOUNT_WIDE);
      const job = await ledger.createJob(importFields(ACCOUNT_WIDE));
      const failing = ledger.beginChunk(ACCOUNT_WIDE, job.id);
      failing.putEntry(chunkKey(codec, 'lost@x.org'), undefined);
      // A checkpoint the jobs table refuses (its scope NULL) fails the transaction after the keys were staged.
      const broken = { ...job, scope: null, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1 } } as unknown as JobRecord;
      expect(await failureCode(() => failing.commit(broken, 1))).toBe('OPTOUT_ERR_STORE');
      const writer = ledger.beginChunk(ACCOUNT_WIDE, job.id);
      writer.putEntry(chunkKey(codec, 'kept@x.org'), undefined);
      const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1 } };
      expect(await writer.commit(next, 1)).toEqual({ applied: true, added: 1 });
      const last = ledger.beginChunk(ACCOUNT_WIDE, job.id);
      last.putEntry(chunkKey(codec, 'last@x.org'), undefined);
      expect(await last.commit({ ...next, checkpoint: { ...next.checkpoint, bucket: 2 } }, 1)).toEqual({ applied: true, added: 1 });
      const keys: string[] = [];
      for await (const batch of ledger.scanEntries()) keys.push(...batch.map((e) => e.key));
      expect(keys.sort()).toEqual(['kept@x.org', 'last@x.org']);
      expect((await ledger.scopeCounts()).get(ACCOUNT_WIDE)).toBe(2);
      const { rows } = await (await client()).query<{ n: string }>('SELECT count(*) AS n FROM holds');
      expect(rows[0]?.n, 'no hold of the job on its own keys').toBe('0');
    });
  });

  describe('two chunks of a job in flight', () => {
    beforeEach(async () => {
      await migrate(url);
    });

    /** A chunk of `keys` (classified as new) at checkpoint bucket `bucket`, with the counts of every chunk up to it. */
    function chunkOf(ledger: PgLedger, job: JobRecord, bucket: number, keys: readonly string[], total: number) {
      const codec = ledger.chunkKeyCodec(job.scope);
      const writer = ledger.beginChunk(job.scope, job.id);
      for (const k of keys) writer.putEntry(chunkKey(codec, k), undefined);
      const counts = { ...emptyCounts(), unique: total, valid: total, rows: total, added: total };
      return (fields: Partial<JobRecord> = {}) => writer.commit({ ...job, ...fields, checkpoint: { ...job.checkpoint, phase: 'merge', bucket, counts } }, keys.length);
    }

    it('commits them in order, the second carrying what the first really stored into its counts', async () => {
      const ledger = await open();
      await addOf(ledger, 'a1@x.org');
      const job = await ledger.createJob(importFields(ACCOUNT_WIDE));
      const first = chunkOf(ledger, job, 1, ['a1@x.org', 'a2@x.org'], 2)();
      const second = chunkOf(ledger, job, 2, ['b1@x.org', 'b2@x.org', 'b3@x.org'], 5)();
      expect(await Promise.all([first, second])).toEqual([{ applied: true, added: 1 }, { applied: true, added: 3 }]);
      expect(((await ledger.getJob(job.id)) as JobRecord).checkpoint).toMatchObject({ bucket: 2, counts: { unique: 5, added: 4, alreadySuppressed: 1 } });
      const feed = await ledger.changesSince(0, 10);
      expect(feed.map((c) => c.put.map((p) => p.key).sort())).toEqual([['a1@x.org'], ['a2@x.org'], ['b1@x.org', 'b2@x.org', 'b3@x.org']]);
    });

    it('does not write the second when the first fails: its checkpoint would pass over keys never written', async () => {
      const ledger = await open();
      const job = await ledger.createJob(importFields(ACCOUNT_WIDE));
      // A checkpoint the jobs table refuses (its scope NULL) fails the first chunk's transaction.
      const first = chunkOf(ledger, job, 1, ['a@x.org'], 1)({ scope: null } as unknown as Partial<JobRecord>);
      const second = chunkOf(ledger, job, 2, ['b@x.org'], 2)();
      expect(await failureCode(() => first)).toBe('OPTOUT_ERR_STORE');
      expect(await failureCode(() => second)).toBe('OPTOUT_ERR_STORE');
      expect(((await ledger.getJob(job.id)) as JobRecord).checkpoint.bucket).toBe(0);
      expect((await ledger.scopeCounts()).get(ACCOUNT_WIDE) ?? 0).toBe(0);
      expect(await ledger.head()).toBe(0);
      // The job resumed from its checkpoint: the first chunk again, then the second.
      expect(await chunkOf(ledger, job, 1, ['a@x.org'], 1)()).toEqual({ applied: true, added: 1 });
      expect(await chunkOf(ledger, job, 2, ['b@x.org'], 2)()).toEqual({ applied: true, added: 1 });
      expect((await ledger.scopeCounts()).get(ACCOUNT_WIDE)).toBe(2);
    });
  });

  describe('import lease', () => {
    beforeEach(async () => {
      await migrate(url);
    });

    /** The server process of the session holding the import lock, if one does. */
    async function leaseHolder(): Promise<number | undefined> {
      const c = await client();
      const { rows } = await c.query<{ pid: number }>(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
        AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2`, [LOCK_CLASS, IMPORT_LOCK]);
      return rows[0]?.pid;
    }

    it('is held in the database: a second process waits until the first one\'s job ends', async () => {
      const [one, two] = [await open(), await open()];
      const order: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      let entered!: () => void;
      const inside = new Promise<void>((r) => {
        entered = r;
      });
      const first = one.withImportLease(async () => {
        order.push('one starts');
        entered();
        await gate;
        order.push('one ends');
      });
      await inside;
      expect(await leaseHolder()).toBeTypeOf('number');
      let waits = 0;
      const second = two.withImportLease(async () => {
        order.push('two starts');
      }, { onWait: () => waits++ });
      expect(await pendingAfter(second, 500), 'the second import waits for the lease').toBe(true);
      release();
      await Promise.all([first, second]);
      expect(order).toEqual(['one starts', 'one ends', 'two starts']);
      expect(waits, 'told once that it waits').toBe(1);
      expect(await leaseHolder()).toBeUndefined();
    });

    it('refuses the chunks of a process whose lease session ended, and frees the lease for another', async () => {
      const [one, two] = [await open(), await open()];
      const job = await one.createJob(importFields(ACCOUNT_WIDE));
      const refused = await one.withImportLease(async () => {
        const admin = await client();
        await admin.query('SELECT pg_terminate_backend($1)', [await leaseHolder()]);
        const writer = one.beginChunk(ACCOUNT_WIDE, job.id);
        writer.putEntry(chunkKey(one.chunkKeyCodec(ACCOUNT_WIDE), 'a@x.org'), undefined);
        const next: JobRecord = { ...job, checkpoint: { ...job.checkpoint, phase: 'merge', bucket: 1, counts: { ...emptyCounts(), added: 1 } } };
        return failureCode(() => writer.commit(next, 1));
      });
      expect(refused).toBe('OPTOUT_ERR_STORE');
      expect((await one.scopeCounts()).get(ACCOUNT_WIDE)).toBeUndefined();
      expect(await two.withImportLease(async () => 'taken')).toBe('taken');
    });
  });

  describe('syncs', () => {
    it('a due run is claimed by one process of many', async () => {
      await migrate(url);
      const ledgers = [await open(), await open(), await open()];
      const due = new Date(Date.now() - 1000).toISOString();
      const now = new Date().toISOString();
      const sync = await ledgers[0]!.createSync((id) => ({
        id, url: 'https://lists.example.org/a.csv', label: 'https://lists.example.org/a.csv', column: null, unit: null, reason: 'unsubscribed',
        everyMs: 60_000, allowPrivate: false, createdAt: now, createdBy: 'test', etag: null, lastModified: null, lastRunAt: null,
        lastStatus: null, lastJobId: null, lastError: null, nextRunAt: due,
      }), () => ledgers[0]!.audit({ actor: 'test', action: 'sync.add', key: null, job: null, unit: null, details: {} }));
      const until = new Date(Date.now() + 60_000).toISOString();
      const claims = await Promise.all(ledgers.flatMap((l) => [l.claimSync(sync.id, due, until), l.claimSync(sync.id, due, until)]));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect((await ledgers[2]!.getSync(sync.id))?.nextRunAt).toBe(until);
    });
  });
});
