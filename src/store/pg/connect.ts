/**
 * Connections to the PostgreSQL ledger: one pool per process, with bounds on every wait, so
 * that a database that stops answering turns into an error (and a fail-closed answer) instead
 * of a request that hangs.
 */
import pg from 'pg';
import { OptoutError, describeValue } from '../../errors.js';
import { isPgUrl, redact } from './url.js';

export { isPgUrl, redact };

/** Pool settings; every wait is bounded. */
export interface PgPoolOptions {
  /** Connections in the pool. @default 10 */
  max?: number;
  /** Milliseconds to wait for a connection (new or from the pool). @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Milliseconds a statement may run before the server cancels it (`statement_timeout`); the
   * client gives up a little later (`query_timeout`) when the server does not answer at all.
   * @default 60000
   */
  statementTimeoutMs?: number;
  /** Milliseconds of silence before TCP keep-alive probes start: a half-open connection fails. @default 10000 */
  keepAliveDelayMs?: number;
  /** Milliseconds an idle connection stays open. @default 30000 */
  idleTimeoutMs?: number;
}


/**
 * A pool for `url` (`postgres://` or `postgresql://`: user, password, host, port, database;
 * `sslmode` and the driver's other parameters pass through).
 * @throws OptoutError OPTOUT_ERR_INVALID_OPTION for another kind of URL.
 */
export function createPool(url: string, options: PgPoolOptions = {}): pg.Pool {
  if (typeof url !== 'string' || !isPgUrl(url)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected a postgres:// or postgresql:// URL, got ${describeValue(redact(String(url)))}`);
  }
  const statementTimeout = options.statementTimeoutMs ?? 60_000;
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    statement_timeout: statementTimeout,
    query_timeout: statementTimeout + 5_000,
    // Transactions must not sit open while a process is stuck: they hold row locks and the feed lock.
    idle_in_transaction_session_timeout: statementTimeout + 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: options.keepAliveDelayMs ?? 10_000,
    application_name: 'optout',
  });
  // An idle connection that breaks emits here; without a listener it would end the process.
  // The next query on the pool gets a new connection or the error.
  pool.on('error', () => undefined);
  // A checked-out connection that breaks (the server killed or restarted mid-transaction) emits
  // on itself, and the pool listens only to idle ones: unheard, the event would end the process
  // with a stack trace. Its query fails with the same error, which the caller reports; the pool
  // drops the connection when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return pool;
}


/** An error of the driver or the server, as the store error it is. */
export function storeError(cause: unknown, doing: string): OptoutError {
  if (cause instanceof OptoutError) return cause;
  return new OptoutError('OPTOUT_ERR_STORE', `PostgreSQL failed to ${doing}: ${(cause as Error).message}`, { cause });
}
