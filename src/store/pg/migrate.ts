/**
 * `migrate(url)`: creates or upgrades the ledger's schema. Idempotent, and safe to run from
 * several processes at once (they take turns on an advisory lock); every other open only
 * checks the version (`checkSchema`) and points to `optout migrate` when it does not match.
 */
import type pg from 'pg';
import { OptoutError } from '../../errors.js';
import { POLICY_VERSION } from '../../policy/email.js';
import { createPool, redact, storeError } from './connect.js';
import { LOCK_CLASS, MIGRATE_LOCK, MIGRATIONS, SCHEMA_VERSION } from './schema.js';

/** How long one statement of a migration may run: hours, for the rebuild of a large table. */
const MIGRATE_STATEMENT_MS = 6 * 3600_000;

/** What `migrate` found and left. */
export interface MigrateResult {
  /** The version before, 0 for a database without the schema. */
  from: number;
  /** The version now: {@link SCHEMA_VERSION}. */
  version: number;
}

/**
 * The stored schema version and address policy, or version 0 when there is no schema. The table
 * is looked up first: a failed SELECT would abort the migration's transaction.
 */
async function readMeta(db: pg.Pool | pg.PoolClient): Promise<{ version: number; policy: string | undefined }> {
  const { rows: [found] } = await db.query<{ t: string | null }>(`SELECT to_regclass('optout_meta')::text AS t`);
  if (found?.t == null) return { version: 0, policy: undefined };
  const { rows } = await db.query<{ name: string; value: string }>(`SELECT name, value FROM optout_meta WHERE name IN ('schema_version', 'policy')`);
  const get = (name: string) => rows.find((r) => r.name === name)?.value;
  return { version: Number(get('schema_version') ?? 0), policy: get('policy') };
}

/**
 * Brings the database at `url` to the current schema version, in one transaction.
 * @throws OptoutError OPTOUT_ERR_SCHEMA when the database has a newer version than this code.
 */
export async function migrate(url: string): Promise<MigrateResult> {
  // An upgrade that rebuilds the entries (version 7) runs for minutes on tens of millions of them:
  // it is run on purpose, and must not be cut off by the minute that bounds other statements.
  const pool = createPool(url, { max: 1, statementTimeoutMs: MIGRATE_STATEMENT_MS });
  try {
    const client = await pool.connect().catch((cause: unknown) => { throw storeError(cause, `connect to ${redact(url)}`); });
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, MIGRATE_LOCK]);
      const { version: from, policy } = await readMeta(client);
      if (from > SCHEMA_VERSION) {
        throw new OptoutError('OPTOUT_ERR_SCHEMA', `The database ${redact(url)} has schema version ${from}; this optout knows up to ${SCHEMA_VERSION}: upgrade optout`);
      }
      if (policy !== undefined && policy !== POLICY_VERSION) {
        throw new OptoutError('OPTOUT_ERR_STORE_CORRUPT', `The database ${redact(url)} holds keys of address policy ${policy}; this optout uses ${POLICY_VERSION}`);
      }
      for (let v = from; v < SCHEMA_VERSION; v++) {
        for (const step of MIGRATIONS[v] ?? []) {
          if (typeof step === 'string') await client.query(step);
          else await step(client);
        }
      }
      await client.query(`INSERT INTO optout_meta (name, value) VALUES ('schema_version', $1), ('policy', $2)
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, [String(SCHEMA_VERSION), POLICY_VERSION]);
      await client.query('COMMIT');
      return { from, version: SCHEMA_VERSION };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw storeError(err, `migrate ${redact(url)}`);
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

/**
 * Checks that the database has the current schema.
 * @throws OptoutError OPTOUT_ERR_SCHEMA when it has none or another version.
 */
export async function checkSchema(pool: pg.Pool, url: string): Promise<void> {
  const { version, policy } = await readMeta(pool).catch((cause: unknown) => { throw storeError(cause, `read the schema version of ${redact(url)}`); });
  if (version !== SCHEMA_VERSION) {
    const found = version === 0 ? 'no optout schema' : `schema version ${version}`;
    throw new OptoutError('OPTOUT_ERR_SCHEMA', `The database ${redact(url)} has ${found}; this optout needs version ${SCHEMA_VERSION}. ` +
      `Run \`optout migrate --db <url>\` first.`);
  }
  if (policy !== POLICY_VERSION) {
    throw new OptoutError('OPTOUT_ERR_STORE_CORRUPT', `The database ${redact(url)} holds keys of address policy ${policy ?? '?'}; this optout uses ${POLICY_VERSION}`);
  }
}
