/**
 * An API replica's local view, kept up to date from a ledger's change feed: a LevelDB store and
 * its key filter that checks read synchronously, as embedded, while every write goes to the
 * ledger (PostgreSQL). The follower states how fresh the view is, and a replica answers checks
 * only while that is proven within its bound: cut off from the ledger, it fails closed.
 */
import { OptoutError } from '../errors.js';
import type { LevelStore } from '../store/level/level-store.js';
import type { Ledger } from '../store/store.js';

export interface FollowerOptions {
  /** Between two reads of the feed once caught up, when no notification wakes the follower sooner. @default 100 */
  pollMs?: number;
  /** Changes read and applied at once. @default 1000 */
  pageSize?: number;
  /**
   * Wakes at the ledger's change notifications (PostgreSQL LISTEN) rather than at the next poll.
   * Off where notifications cannot arrive (a pooler in transaction mode, such as PgBouncer's,
   * passes no LISTEN): the follower then polls alone. @default true
   */
  notify?: boolean;
  /** Told of a failed read or write; the follower retries after `pollMs`. */
  onError?: (err: unknown) => void;
  /** Told of each position the view reaches, once it is written (for lag measurements and logs). */
  onApplied?: (seq: number) => void;
}

/** What the follower can prove about its view, for `/readyz` and the stale errors. */
export interface Freshness {
  /** The feed position the view holds. */
  seq: number;
  /**
   * When the last read that reached the feed's head started (ms since the epoch), or null
   * before the first: the view holds every change committed before that moment.
   */
  provenAt: number | null;
}

/**
 * Follows `ledger`'s feed into `view`, which `startFollowing` made a view of that ledger. A view
 * still empty (or whose first load was cut off: see `openReplicaView`) first applies a snapshot of
 * the ledger, then the changes after it.
 */
export class FeedFollower {
  readonly #ledger: Ledger;
  readonly #view: LevelStore;
  readonly #pollMs: number;
  readonly #pageSize: number;
  readonly #onError: (err: unknown) => void;
  readonly #onApplied: (seq: number) => void;
  readonly #notify: boolean;
  #provenAt: number | null = null;
  #starting = false;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #waiters = new Set<{ seq: number; resolve: (reached: boolean) => void }>();

  constructor(ledger: Ledger, view: LevelStore, options: FollowerOptions = {}) {
    if (view.following === undefined) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `The store ${view.dir} follows no feed: call startFollowing first`);
    this.#ledger = ledger;
    this.#view = view;
    this.#pollMs = options.pollMs ?? 100;
    this.#pageSize = options.pageSize ?? 1000;
    this.#onError = options.onError ?? (() => undefined);
    this.#onApplied = options.onApplied ?? (() => undefined);
    this.#notify = options.notify ?? true;
  }

  /** The feed position the view holds. */
  get seq(): number {
    return this.#view.following?.seq ?? 0;
  }

  freshness(): Freshness {
    return { seq: this.seq, provenAt: this.#provenAt };
  }

  /** Whether the view is proven to hold every change committed up to `boundMs` ago. */
  fresh(boundMs: number, now = Date.now()): boolean {
    return this.#provenAt !== null && now - this.#provenAt <= boundMs;
  }

  /** @throws OptoutError OPTOUT_ERR_STALE unless {@link fresh}. */
  assertFresh(boundMs: number): void {
    if (this.fresh(boundMs)) return;
    const since = this.#provenAt === null ? 'has not caught up with the database yet' : `last caught up ${Date.now() - this.#provenAt} ms ago`;
    throw new OptoutError('OPTOUT_ERR_STALE', `This replica ${since}, more than its bound of ${boundMs} ms: it answers no check until it catches up`);
  }

  /**
   * Loads the snapshot when the view is not whole yet, then follows the feed until `stop`.
   * Resolves once the view has caught up with the ledger for the first time; a failure to load
   * the snapshot rejects (the view cannot answer anything), later failures are retried.
   */
  async start(): Promise<void> {
    if (this.#loop !== undefined || this.#starting) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'The follower is already started');
    this.#starting = true;
    if (this.#view.following?.complete !== true) await this.#loadSnapshot();
    await this.#catchUp();
    if (this.#stopped) return;
    // Woken when a change commits; the poll stays, as the proof of freshness and for lost hints.
    if (this.#notify) this.#unsubscribe = this.#ledger.onChange(() => this.poke());
    this.#loop = this.#follow();
  }

  /** Reads and applies the feed now (after a write this process made, say) instead of at the next poll. */
  poke(): void {
    this.#wake?.();
  }

  /**
   * Resolves true once the view holds position `seq` (a write's `X-Optout-Seq`), false after
   * `timeoutMs` without it.
   */
  waitFor(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.seq >= seq) return Promise.resolve(true);
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        seq,
        resolve: (reached: boolean): void => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      timer.unref();
      this.#waiters.add(waiter);
      this.poke();
    });
  }

  /** Stops following; the view stays open (its owner closes it). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#wake?.();
    await this.#loop;
    for (const w of [...this.#waiters]) w.resolve(false);
  }

  async #loadSnapshot(): Promise<void> {
    let seq: number | undefined;
    for await (const part of this.#ledger.feedSnapshot()) {
      // A large first load must not hold up a shutdown; the next start loads it again.
      this.#assertRunning();
      seq = part.seq;
      await this.#view.applyFollowed([{ ...part, del: [] }], { seq: part.seq, complete: false });
    }
    if (seq === undefined) throw new OptoutError('OPTOUT_ERR_STORE', 'The ledger gave an empty snapshot');
    // Before the view answers anything: see compactEntries.
    await this.#view.compactEntries();
    await this.#view.applyFollowed([], { seq, complete: true });
  }

  /** Reads and applies pages until one reaches the head; then the view is proven fresh as of the read's start. */
  async #catchUp(): Promise<void> {
    for (;;) {
      this.#assertRunning();
      const started = Date.now();
      const page = await this.#ledger.changesSince(this.seq, this.#pageSize);
      const last = page.at(-1);
      if (last !== undefined) {
        await this.#view.applyFollowed(page, { seq: last.seq, complete: true });
        this.#onApplied(last.seq);
      }
      for (const w of [...this.#waiters]) if (this.seq >= w.seq) w.resolve(true);
      if (page.length < this.#pageSize) {
        this.#provenAt = started;
        return;
      }
    }
  }

  #assertRunning(): void {
    if (this.#stopped) throw new OptoutError('OPTOUT_ERR_ABORTED', 'The follower was stopped');
  }

  async #follow(): Promise<void> {
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#pollMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      if (this.#stopped) return;
      try {
        await this.#catchUp();
      } catch (err) {
        if (!this.#stopped) this.#onError(err);
      }
    }
  }
}
