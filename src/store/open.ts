/**
 * The one way the engine opens a store from `--db` or `$OPTOUT_DB`: a folder is an embedded
 * LevelDB store, a `postgres://` or `postgresql://` URL the shared PostgreSQL ledger. Callers
 * get a {@link Ledger} and branch on its `supports`, never on what it is.
 */
import { OptoutError, describeValue } from '../errors.js';
import type { MigrateResult } from './pg/migrate.js';
import { isPgUrl, redact } from './pg/url.js';
import { LevelStore } from './level/level-store.js';
import type { Ledger } from './store.js';

export type { MigrateResult };

export { isPgUrl };

export interface OpenLedgerOptions {
  /** What the process is doing: shown to a second process that finds a folder store in use. */
  purpose?: string;
  /**
   * Creates a folder store where there is none; commands that only read pass false, so that a
   * mistyped `--db` is an error. A database is never created here: its schema comes from
   * `optout migrate`, and a database without it is refused with OPTOUT_ERR_SCHEMA.
   * @default true
   */
  create?: boolean;
}

/**
 * Opens the store at `db`: a folder, or a PostgreSQL URL (user, password, host, port, database;
 * `sslmode` and the driver's other parameters pass through). The PostgreSQL driver is loaded only
 * for a URL.
 * @throws OptoutError OPTOUT_ERR_SCHEMA for a database without the current schema.
 */
export async function openLedger(db: string, options: OpenLedgerOptions = {}): Promise<Ledger> {
  if (isPgUrl(db)) {
    const { PgLedger } = await import('./pg/pg-ledger.js');
    return PgLedger.open(db);
  }
  return LevelStore.open(db, options);
}

/**
 * Creates or upgrades the schema of the PostgreSQL database at `url`; idempotent, and safe to
 * run from several processes at once. A folder store needs no migration: it is refused, so that a
 * `--db` or `$OPTOUT_DB` that names a folder by mistake does not pass unnoticed.
 * @throws OptoutError OPTOUT_ERR_INVALID_OPTION for anything but a PostgreSQL URL.
 */
export async function migrateDatabase(url: string): Promise<MigrateResult> {
  if (typeof url !== 'string' || !isPgUrl(url)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`db\` to be a postgres:// or postgresql:// URL, got ` +
      `${describeValue(typeof url === 'string' ? redact(url) : url)}: a store folder has no schema to migrate (it is set up when first written).`);
  }
  const { migrate } = await import('./pg/migrate.js');
  return migrate(url);
}
