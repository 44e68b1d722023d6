/**
 * The entries' `hash` column: the first key hash (`h1`, filter/hash.ts) that every caller already
 * has (the import's workers, checks, single changes), leading the primary key. An import commits a
 * chunk per spool bucket, the top bits of `h1`, so ordered by it a chunk's keys fall in one range
 * of the index (a few pages written densely) instead of all over a tree keyed by the text of the
 * key: the insert into that index was most of the server's time in an import.
 */
import type pg from 'pg';
import { hashKeyTuple } from '../../filter/hash.js';

/** `h1 - 2^31` as a PostgreSQL `integer`: ordered like the unsigned hash, so a bucket is one contiguous range. */
export function entryHash(h1: number): number {
  return (h1 ^ 0x8000_0000) | 0;
}

/** {@link entryHash} of the hash that the workers write as 8 hex digits in a chunk key. */
export function entryHashOfHex(hex: string): number {
  return entryHash(Number.parseInt(hex, 16));
}

export function entryHashOfKey(key: string): number {
  return entryHash(hashKeyTuple(key)[0]);
}

/** Keys read per page when the upgrade hashes the stored ones. */
const FILL_PAGE = 50_000;

/**
 * The upgrade to the hash-keyed entries, in the migration's transaction: PostgreSQL cannot compute
 * the hash (a loop over UTF-16 code units), so each distinct stored key is read, hashed here and
 * written to a temporary table a page at a time, and the entries are copied into a new table
 * (no dead row versions, as an UPDATE of every row would leave), whose key and index are then
 * built in bulk.
 *
 * The rows go in job by job, as imports append them: the entries' index by job is a BRIN index,
 * a few pages that give each block range of the table its least and greatest job. A b-tree on
 * (scope, job) took about 40% of the server's time in an import's chunk (2M keys in 61 chunks:
 * 7.5-8.7 s with it, 4.2-4.9 s without, 5.5-5.7 s with the BRIN index instead), for the one
 * statement that needs it, a rollback. A job's rows then lie in the ranges it appended to; rows
 * that later reuse the space of deleted ones widen a range, which a rollback then reads too.
 * Writers are shut out from the start (reads go on until the swap), so no row committed meanwhile
 * is left behind.
 */
export async function keyEntriesByHash(c: pg.ClientBase): Promise<void> {
  await c.query('LOCK TABLE entries IN EXCLUSIVE MODE');
  await c.query('CREATE TEMPORARY TABLE optout_key_hashes (key text COLLATE "C" NOT NULL, hash integer NOT NULL) ON COMMIT DROP');
  // Read in the order of the key's index (the version 6 primary key, or version 5's index by key).
  for (let after = '', first = true; ;) {
    const { rows } = await c.query<{ key: string }>(
      `SELECT DISTINCT key FROM entries WHERE ${first ? 'true' : 'key > $2'} ORDER BY key LIMIT $1`, first ? [FILL_PAGE] : [FILL_PAGE, after]);
    if (rows.length === 0) break;
    const keys = rows.map((r) => r.key);
    await c.query('INSERT INTO optout_key_hashes (key, hash) SELECT * FROM unnest($1::text[], $2::int[])', [keys, keys.map(entryHashOfKey)]);
    after = keys[keys.length - 1] as string;
    first = false;
    if (rows.length < FILL_PAGE) break;
  }
  // job first: the 8-byte column needs no padding after the text columns.
  await c.query(`CREATE TABLE entries_hashed (
      job bigint NOT NULL,
      hash integer NOT NULL,
      scope text COLLATE "C" NOT NULL,
      key text COLLATE "C" NOT NULL,
      address text,
      reason text
    )`);
  await c.query(`INSERT INTO entries_hashed (job, hash, scope, key, address, reason)
    SELECT e.job, h.hash, e.scope, e.key, e.address, e.reason FROM entries e JOIN optout_key_hashes h ON h.key = e.key ORDER BY e.job, h.hash, e.key`);
  await c.query('DROP TABLE entries');
  await c.query('ALTER TABLE entries_hashed RENAME TO entries');
  await c.query('ALTER TABLE entries ADD CONSTRAINT entries_pkey PRIMARY KEY (hash, key, scope)');
  await c.query(`CREATE INDEX entries_by_job ON entries USING brin (job) WITH (autosummarize = on)`);
  await c.query('ANALYZE entries');
}
