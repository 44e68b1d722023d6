/**
 * The PostgreSQL ledger's schema, kept ready for Citus: the key is in every primary key of the
 * big tables (entries, holds), which have no foreign keys, so that they can be distributed by
 * key and a key's entries in every scope share a shard. Text that is ordered or compared
 * (scopes, keys, ids) uses the "C" collation: byte order, the same on every server whatever
 * its locale, and the cheapest comparison for the indexes. Records are `json`, not `jsonb`: they
 * are read back whole, never queried inside, and `json` keeps their text as written, so what a
 * command prints from them is what it prints on a folder store (`jsonb` reorders the keys).
 */
import type pg from 'pg';
import { keyEntriesByHash } from './entry-hash.js';

/** The schema version this code reads and writes; `migrate` brings a database to it. */
export const SCHEMA_VERSION = 7;

/** A statement, or work that needs the client (what SQL cannot compute, see `keyEntriesByHash`). */
export type MigrationStep = string | ((c: pg.ClientBase) => Promise<void>);

/**
 * Steps that take a database from version `index` to `index + 1`. Each runs in the
 * migration's one transaction, so a failed upgrade leaves the previous version whole.
 */
export const MIGRATIONS: readonly (readonly MigrationStep[])[] = [
  [
    `CREATE TABLE optout_meta (
       name text COLLATE "C" PRIMARY KEY,
       value text NOT NULL
     )`,
    // A key's suppression in one scope: the job that stored it, and the address when it differs.
    `CREATE TABLE entries (
       scope text COLLATE "C" NOT NULL,
       key text COLLATE "C" NOT NULL,
       job bigint NOT NULL,
       address text,
       PRIMARY KEY (scope, key)
     )`,
    // A key's lookup in every scope (checks of one address, show, the rollback's heirs).
    `CREATE INDEX entries_by_key ON entries (key)`,
    `CREATE INDEX entries_by_job ON entries (scope, job)`,
    // Jobs that stored a key the scope already held: a rollback of its owner passes it to them.
    `CREATE TABLE holds (
       scope text COLLATE "C" NOT NULL,
       key text COLLATE "C" NOT NULL,
       job bigint NOT NULL,
       PRIMARY KEY (scope, key, job)
     )`,
    `CREATE INDEX holds_by_job ON holds (scope, job)`,
    `CREATE SEQUENCE job_ids`,
    // The record is the job as the engine knows it (its checkpoint included); the lease columns
    // name the process that runs an import and its fencing epoch.
    `CREATE TABLE jobs (
       id bigint PRIMARY KEY,
       kind text NOT NULL,
       scope text COLLATE "C" NOT NULL,
       state text NOT NULL,
       record json NOT NULL,
       lease_owner text,
       lease_until timestamptz,
       epoch bigint NOT NULL DEFAULT 0
     )`,
    // Audit ids order like time but are made by each process; n keeps two equal ones apart.
    `CREATE TABLE audit (
       id text COLLATE "C" NOT NULL,
       n bigint GENERATED ALWAYS AS IDENTITY,
       key text COLLATE "C",
       record json NOT NULL,
       PRIMARY KEY (id, n)
     )`,
    `CREATE INDEX audit_by_key ON audit (key, id, n) WHERE key IS NOT NULL`,
    `CREATE TABLE api_keys (
       id text COLLATE "C" PRIMARY KEY,
       record json NOT NULL
     )`,
    `CREATE SEQUENCE sync_ids`,
    `CREATE TABLE syncs (
       id bigint PRIMARY KEY,
       record json NOT NULL,
       claimed_by text,
       claimed_until timestamptz
     )`,
    // Per-scope counts as appended deltas: concurrent writers of one scope never wait on one
    // counter row. A scope's count is the sum of its deltas.
    `CREATE TABLE count_deltas (
       n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       scope text COLLATE "C" NOT NULL,
       delta bigint NOT NULL
     )`,
    // The change feed. seq is taken under a transaction-level advisory lock as the last step
    // of a writing transaction (see pg-ledger.ts), so seq order is commit order, without gaps.
    `CREATE TABLE changes (
       seq bigint PRIMARY KEY,
       body json NOT NULL,
       committed_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
  [
    // The ledger's name for its followers: a replica's view records it, and refuses to follow
    // another database's feed (a restored backup, a mistyped URL) onto what it holds.
    `INSERT INTO optout_meta (name, value) VALUES ('ledger_id', gen_random_uuid()::text)`,
  ],
  [
    // Small records of the features that keep settings or secrets in the store (link keys,
    // inbound endpoints), by kind.
    `CREATE TABLE records (
       kind text COLLATE "C" NOT NULL,
       id text COLLATE "C" NOT NULL,
       value jsonb NOT NULL,
       PRIMARY KEY (kind, id)
     )`,
  ],
  [
    // Ids of the delivered events (ESP webhooks) whose suppressions are written: a retried
    // delivery finds its id here and writes nothing.
    `CREATE TABLE seen_events (
       id text COLLATE "C" PRIMARY KEY,
       seen_at timestamptz NOT NULL DEFAULT now()
     )`,
  ],
  [
    // An entry's own reason, when its row gave one other than its job's (NULL: the job's).
    // Nullable without a default: adding it rewrites no row, however many entries there are.
    `ALTER TABLE entries ADD COLUMN IF NOT EXISTS reason text`,
  ],
  [
    // The key first in the primary key: a lookup of one key in every scope (checks, show) and in
    // one scope use the same index, and an import's chunk inserts each key into one index of
    // keys instead of two (that insert was most of a chunk's time). The key stays in it, as
    // Citus needs.
    `ALTER TABLE entries DROP CONSTRAINT entries_pkey`,
    `ALTER TABLE entries ADD CONSTRAINT entries_pkey PRIMARY KEY (key, scope)`,
    `DROP INDEX IF EXISTS entries_by_key`,
    // An import chunk's change: its stored keys, addresses and reasons as arrays the server
    // builds from the chunk's staging table in the statement that appends the change, rather
    // than megabytes of JSON made by the importer and parsed again by the server. NULL for
    // every other change, whose body carries it all.
    `ALTER TABLE changes ADD COLUMN IF NOT EXISTS keys text[], ADD COLUMN IF NOT EXISTS addresses text[], ADD COLUMN IF NOT EXISTS reasons text[]`,
    // Compressed with LZ4 where the server has it (PostgreSQL 14 and later, built with it): the
    // default compression took a tenth of the server's time in an import. Left as it is elsewhere.
    `DO $$ BEGIN
       EXECUTE 'ALTER TABLE changes ALTER COLUMN keys SET COMPRESSION lz4, ALTER COLUMN addresses SET COMPRESSION lz4, ALTER COLUMN reasons SET COMPRESSION lz4';
     EXCEPTION WHEN OTHERS THEN NULL;
     END $$`,
  ],
  [
    // The key's first hash leads the primary key (see entry-hash.ts): an import chunk's keys share
    // its top bits, and land in one range of the index. The key stays in it, as Citus needs.
    keyEntriesByHash,
  ],
];

/** Advisory lock ids (the second key of the two-key form, under {@link LOCK_CLASS}): migrations, the feed, import jobs. */
export const LOCK_CLASS = 0x6f70_746f; // 'opto'
export const MIGRATE_LOCK = 1;
export const FEED_LOCK = 2;
/** Held by a session for a whole import job: one import job at a time in the database (see `withImportLease`). */
export const IMPORT_LOCK = 3;
/** The class of the locks that keep an import job's chunk commits in order (see `PgLedger`'s chunk commits), one per chunk. */
export const CHUNK_LOCK_CLASS = 0x6f70_7463; // 'optc'
