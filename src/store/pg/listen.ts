/**
 * Wakes a ledger's followers when changes commit: one connection that LISTENs on the channel
 * every feed append notifies (see `appendChange`). Notifications are hints only: one sent while
 * the connection is down is lost, so followers poll anyway, and a reconnection wakes them once
 * in case they missed one.
 */
import pg from 'pg';

/** The channel `appendChange` notifies, with the change's position as payload. */
export const CHANGES_CHANNEL = 'optout_changes';

/** Milliseconds between attempts to listen again after the connection was lost. */
const RETRY_MS = 1000;

export class ChangeListener {
  readonly #url: string;
  readonly #wakes = new Set<() => void>();
  #client: pg.Client | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(url: string) {
    this.#url = url;
  }

  /** Calls `wake` on every notification until the returned function is called. */
  subscribe(wake: () => void): () => void {
    const listener = (): void => wake();
    this.#wakes.add(listener);
    this.#listen();
    return () => {
      this.#wakes.delete(listener);
      if (this.#wakes.size === 0) this.#drop();
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wakes.clear();
    this.#drop();
  }

  #wakeAll(): void {
    for (const wake of this.#wakes) wake();
  }

  #listen(): void {
    if (this.#closed || this.#client !== undefined || this.#retry !== undefined || this.#wakes.size === 0) return;
    const client = new pg.Client({
      connectionString: this.#url, connectionTimeoutMillis: 10_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000,
      application_name: 'optout listen',
    });
    this.#client = client;
    client.on('notification', () => this.#wakeAll());
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.connect()
      .then(() => client.query(`LISTEN ${CHANGES_CHANNEL}`))
      .then(() => {
        // Changes may have committed while no one listened.
        if (this.#client === client) this.#wakeAll();
      }, () => this.#lost(client));
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    if (this.#closed || this.#wakes.size === 0) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#listen();
    }, RETRY_MS);
    this.#retry.unref();
  }

  #drop(): void {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    const client = this.#client;
    this.#client = undefined;
    client?.end().catch(() => undefined);
  }
}
