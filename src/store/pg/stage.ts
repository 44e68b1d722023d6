/**
 * How an import chunk reaches the entries table: its keys are streamed with `COPY ... FROM STDIN`
 * into a temporary table of the session, then one statement settles each key, in the chunk's
 * transaction: stored when the scope lacks it, held otherwise. COPY takes the rows as one stream
 * that the server parses in bulk, where array parameters are built as text by the driver and
 * taken apart again by the server, and the keys the entries' unique index refuses become holds
 * without a second trip to the client.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** One key of a chunk as staged: what its entry gets besides the chunk's scope and job. */
export interface StagedKey {
  /** The key's `entryHash` (entry-hash.ts). */
  hash: number;
  key: string;
  address: string | null;
  /** The entry's own reason, when it differs from its job's. */
  reason: string | null;
}

/**
 * The staged columns, in COPY order, with their types in the staging table. A column that
 * entries gain per key is one more line here and a field of {@link StagedKey}: the COPY, the
 * staging table and the settling statement are all built from this list.
 */
const COLUMNS: ReadonlyArray<{ name: keyof StagedKey; type: string }> = [
  { name: 'hash', type: 'integer NOT NULL' },
  { name: 'key', type: 'text COLLATE "C" NOT NULL' },
  { name: 'address', type: 'text' },
  { name: 'reason', type: 'text' },
];

const STAGE = 'optout_chunk_stage';
const FIELDS = COLUMNS.map((c) => c.name);
const NAMES = FIELDS.join(', ');

/**
 * Created once per session (a no-op afterwards); emptied by every commit or rollback, so a
 * failed chunk leaves nothing behind for the next one on the same connection. Created in each
 * transaction rather than tracked per connection: a pooler may hand the transaction any session.
 */
const CREATE_STAGE = `CREATE TEMPORARY TABLE IF NOT EXISTS ${STAGE} (${COLUMNS.map((c) => `${c.name} ${c.type}`).join(', ')}) ON COMMIT DELETE ROWS`;

/**
 * In the primary key's order: the chunk's keys (one bucket: one range of hashes) are appended to
 * the index's pages in turn, and two chunks that share keys lock them in the same order and
 * cannot deadlock.
 * The holds are the staged keys the insert did not return: an anti-join against the returned
 * keys, never against the entries table (the staging table has no statistics, and a join with
 * the big table made the planner scan it for every chunk). The held keys leave the staging
 * table, which then holds the rows the chunk stored.
 */
const SETTLE = `WITH stored AS (
    INSERT INTO entries (scope, job, ${NAMES})
    SELECT $1::text, $2::bigint, ${NAMES} FROM ${STAGE} ORDER BY hash, key
    ON CONFLICT DO NOTHING RETURNING key
  ), held AS (
    DELETE FROM ${STAGE} s WHERE NOT EXISTS (SELECT 1 FROM stored WHERE stored.key = s.key) RETURNING s.key
  ), holds AS (
    INSERT INTO holds (scope, key, job)
    SELECT $1::text, key, $2::bigint FROM held ORDER BY key
    ON CONFLICT DO NOTHING
  )
  SELECT count(*)::int AS n FROM stored`;

/**
 * Every staged key as a new entry, in the same key order: it fails whole on the first key the
 * scope holds (or that another writer stores meanwhile). Measured at about half the time of
 * {@link SETTLE} on 32,768 new keys (no speculative insertion, nothing returned), which is the
 * common case of an import's chunks.
 */
const STORE_ALL = `INSERT INTO entries (scope, job, ${NAMES}) SELECT $1::text, $2::bigint, ${NAMES} FROM ${STAGE} ORDER BY hash, key`;
const UNIQUE_VIOLATION = '23505';

/** Characters COPY's text format escapes, and their escapes. */
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const ESCAPED = /[\\\n\r\t]/g;
const NEEDS_ESCAPE = /[\\\n\r\t]/;

function copyField(value: string | number | null): string {
  if (value === null) return '\\N';
  if (typeof value === 'number') return String(value);
  // Tested first: nearly no key or address has one, and a replace builds a new string anyway.
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, (ch) => ESCAPES[ch] as string) : value;
}

/** Bytes of COPY text per piece: large enough for few writes, small enough not to copy a chunk twice in memory. */
const PIECE = 1 << 16;

/**
 * A chunk's rows as COPY text, built a row at a time as the importer adds them: the text is
 * ready when the chunk commits, so that work happens while the previous chunk's transaction
 * runs in the server, not between the statements of this one.
 */
export class StagedChunk {
  readonly #pieces: string[] = [];
  /**
   * The lines of the piece being built, joined once it is full: appending each line to one
   * string built a rope of a million small strings a chunk, and cost ~3x the CPU (1.88M rows:
   * 2.8-3.6 s against 0.9-1.3 s, before the ropes were even flattened for the socket).
   */
  #lines: string[] = [];
  #chars = 0;
  #rows = 0;

  add(row: StagedKey): void {
    let line = '';
    for (let i = 0; i < FIELDS.length; i++) line += (i === 0 ? '' : '\t') + copyField(row[FIELDS[i] as keyof StagedKey]);
    this.#lines.push(line);
    this.#chars += line.length + 1;
    this.#rows++;
    if (this.#chars >= PIECE) this.#endPiece();
  }

  #endPiece(): void {
    this.#pieces.push(this.#lines.join('\n') + '\n');
    this.#lines = [];
    this.#chars = 0;
  }

  get rows(): number {
    return this.#rows;
  }

  /** The COPY text, in pieces. */
  pieces(): string[] {
    if (this.#lines.length > 0) this.#endPiece();
    return this.#pieces;
  }
}

/** What {@link settleChunk} stored. */
export interface Settled {
  /** How many rows were stored as entries; the others are held, and left the staging table. */
  stored: number;
  /** Every row was new: a hint that the job's next chunk will be too. */
  allNew: boolean;
}

/**
 * Stores `chunk` in `scope` for job `job` on `c`, inside the caller's transaction: entries for the
 * keys the scope lacks, holds for the others. With `expectNew`, every key is first inserted as
 * new, under a savepoint; the first key found present rolls that back to the savepoint, and the
 * settling insert decides key by key. The staging table keeps the stored rows until the
 * transaction ends: the chunk's change record is made of them (`STAGED_ARRAYS`).
 */
export async function settleChunk(c: pg.ClientBase, scope: string, job: string, chunk: StagedChunk, expectNew: boolean): Promise<Settled> {
  await c.query(CREATE_STAGE);
  if (chunk.rows === 0) return { stored: 0, allNew: true };
  await pipeline(Readable.from(chunk.pieces()), c.query(copyFrom(`COPY ${STAGE} (${NAMES}) FROM STDIN`)));
  if (expectNew) {
    await c.query('SAVEPOINT optout_store_all');
    try {
      await c.query(STORE_ALL, [scope, job]);
      return { stored: chunk.rows, allNew: true };
    } catch (err) {
      if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
      await c.query('ROLLBACK TO SAVEPOINT optout_store_all');
    }
  }
  const { rows: [settled] } = await c.query<{ n: number }>(SETTLE, [scope, job]);
  const stored = (settled as { n: number }).n;
  return { stored, allNew: stored === chunk.rows };
}

/**
 * The rows a chunk stored, as one row of three arrays (keys, addresses, reasons) read from the
 * staging table: what the chunk's change record carries (see `appendChange`).
 */
export const STAGED_ARRAYS = `SELECT array_agg(key) AS keys, array_agg(address) AS addresses, array_agg(reason) AS reasons FROM ${STAGE}`;
