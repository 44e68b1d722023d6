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
 * entries gain per key is one more line here, a field of {@link StagedKey}, and one more field
 * that {@link StagedChunk} writes in this order: the COPY, the staging table and the settling
 * statement are built from this list.
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
 * Every staged key as a new entry: it fails whole on the first key the scope holds (or that
 * another writer stores meanwhile). Measured at about half the time of {@link SETTLE} on 32,768
 * new keys (no speculative insertion, nothing returned), which is the common case of an import's
 * chunks. Without a sort: an importer stages a bucket's keys in the primary key's order already
 * (the workers sort them by hash, then key), and a scan of the session's freshly filled staging
 * table returns them in the order COPY wrote them; the sort was ~5% of a chunk's time. Nothing
 * but the index's locality depends on that order.
 */
const STORE_ALL = `INSERT INTO entries (scope, job, ${NAMES}) SELECT $1::text, $2::bigint, ${NAMES} FROM ${STAGE}`;
const UNIQUE_VIOLATION = '23505';

/** Bytes of COPY text per piece: large enough for few writes, small enough not to copy a chunk twice in memory. */
const PIECE = 1 << 16;

const BACKSLASH = 0x5c;
/** The escape letter of each byte COPY's text format escapes (backslash, tab, line feed, carriage return), else 0. */
const ESCAPE_OF = new Uint8Array(128);
ESCAPE_OF[BACKSLASH] = BACKSLASH;
ESCAPE_OF[0x09] = 0x74;
ESCAPE_OF[0x0a] = 0x6e;
ESCAPE_OF[0x0d] = 0x72;
const ESCAPED = /[\\\n\r\t]/g;
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const TAB = 0x09;
const NEWLINE = 0x0a;

/**
 * A chunk's rows as COPY text, written as UTF-8 bytes as the importer adds them: the text is
 * ready when the chunk commits (that work happens while the previous chunk's transaction runs in
 * the server), and goes to the socket as it is. Built as strings, a row's fields made a rope that
 * joining the piece flattened, and writing it encoded it again: ~1.2 s of the importer's main
 * thread in a 2M-row import, for the text alone. A key comes as the UTF-8 bytes the workers
 * wrote; other fields as strings.
 */
export class StagedChunk {
  readonly #pieces: Buffer[] = [];
  #buf: Buffer = Buffer.allocUnsafeSlow(PIECE);
  #at = 0;
  #rows = 0;

  /** Adds a row whose fields are all strings (holds, single keys). */
  add(row: StagedKey): void {
    this.#room(24 + 6 * (row.key.length + (row.address?.length ?? 0) + (row.reason?.length ?? 0)));
    this.#int(row.hash);
    this.#buf[this.#at++] = TAB;
    this.#text(row.key);
    this.#rest(row.address, row.reason);
  }

  /**
   * Adds a row whose key is `bytes` from `from` on (UTF-8, as a chunk key holds it after its
   * scope and hash), of entry hash `hash`.
   */
  addBytes(hash: number, bytes: Uint8Array, from: number, address: string | null, reason: string | null): void {
    this.#room(24 + 2 * (bytes.length - from) + 6 * ((address?.length ?? 0) + (reason?.length ?? 0)));
    this.#int(hash);
    const buf = this.#buf;
    let at = this.#at;
    buf[at++] = TAB;
    for (let i = from; i < bytes.length; i++) {
      const b = bytes[i] as number;
      const esc = b < 0x80 ? (ESCAPE_OF[b] as number) : 0;
      if (esc !== 0) {
        buf[at++] = BACKSLASH;
        buf[at++] = esc;
      } else {
        buf[at++] = b;
      }
    }
    this.#at = at;
    this.#rest(address, reason);
  }

  /** Makes room for a row of at most `bytes`, in the current piece or a new one. */
  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buf.length) return;
    this.#endPiece();
    if (bytes > this.#buf.length) this.#buf = Buffer.allocUnsafeSlow(bytes);
  }

  #endPiece(): void {
    if (this.#at === 0) return;
    this.#pieces.push(this.#buf.subarray(0, this.#at));
    this.#buf = Buffer.allocUnsafeSlow(Math.max(PIECE, this.#buf.length));
    this.#at = 0;
  }

  #rest(address: string | null, reason: string | null): void {
    this.#buf[this.#at++] = TAB;
    this.#field(address);
    this.#buf[this.#at++] = TAB;
    this.#field(reason);
    this.#buf[this.#at++] = NEWLINE;
    this.#rows++;
    if (this.#at >= PIECE) this.#endPiece();
  }

  #field(value: string | null): void {
    if (value === null) {
      this.#buf[this.#at++] = BACKSLASH;
      this.#buf[this.#at++] = 0x4e; // N
    } else {
      this.#text(value);
    }
  }

  /** A string field, escaped: ASCII a byte at a time, the rest (rare) through Buffer's encoder. */
  #text(value: string): void {
    const buf = this.#buf;
    let at = this.#at;
    let i = 0;
    for (; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) break;
      const esc = ESCAPE_OF[c] as number;
      if (esc !== 0) {
        buf[at++] = BACKSLASH;
        buf[at++] = esc;
      } else {
        buf[at++] = c;
      }
    }
    // A multi-byte character's UTF-8 bytes are all >= 0x80: escaping the string escapes the bytes.
    if (i < value.length) at += buf.write(value.slice(i).replace(ESCAPED, (ch) => ESCAPES[ch] as string), at, 'utf8');
    this.#at = at;
  }

  #int(n: number): void {
    const buf = this.#buf;
    let at = this.#at;
    let v = n;
    if (v < 0) {
      buf[at++] = 0x2d; // -
      v = -v;
    }
    const start = at;
    do {
      buf[at++] = 0x30 + (v % 10);
      v = Math.floor(v / 10);
    } while (v > 0);
    for (let i = start, j = at - 1; i < j; i++, j--) {
      const t = buf[i] as number;
      buf[i] = buf[j] as number;
      buf[j] = t;
    }
    this.#at = at;
  }

  get rows(): number {
    return this.#rows;
  }

  /** The COPY text, in pieces. */
  pieces(): Buffer[] {
    this.#endPiece();
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
