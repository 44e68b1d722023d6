/**
 * An API replica: writes and the reads of list management go to the PostgreSQL ledger, and
 * checks read a local LevelDB view of it, kept up to date by a {@link FeedFollower}. A check is
 * answered only while the follower has proven, within `maxStalenessMs`, that the view holds
 * every change committed before that proof: cut off from the database, the replica fails closed.
 */
import { resolve } from 'node:path';
import { Checker } from '../check/checker.js';
import { checksOf, type CheckWait, type OptoutStore, type ReplicaFreshness } from '../check/open-store.js';
import { OptoutError, describeValue } from '../errors.js';
import { isPgUrl, redact } from '../store/pg/url.js';
import type { LevelStore } from '../store/level/level-store.js';
import type { Ledger } from '../store/store.js';
import { FeedFollower, type FollowerOptions } from './follower.js';
import { openReplicaView } from './open-view.js';

/** How long a check with `minSeq` waits for the view to reach it. */
export const MIN_SEQ_WAIT_MS = 500;
export const DEFAULT_MAX_STALENESS_MS = 1000;
/** The view's folder when none is given. */
export const DEFAULT_REPLICA_DIR = './optout-replica';
/**
 * The feed is read on connections of its own, whose statements time out sooner than writes'
 * (a rollback may run long): a read hung on a dead connection ends, and the replica answers
 * again, seconds after the database is back rather than a minute.
 */
const FEED_STATEMENT_TIMEOUT_MS = 10_000;

export interface ReplicaOptions extends Pick<FollowerOptions, 'pollMs' | 'notify' | 'onError' | 'onApplied'> {
  /**
   * Checks are answered only while the view is proven to hold every change committed up to this
   * long ago; otherwise OPTOUT_ERR_STALE. @default 1000
   */
  maxStalenessMs?: number;
  /**
   * Loads the view's key index from its snapshot (saved as the view last closed) before the
   * view follows its database, while that snapshot is still the view's current state; the
   * changes followed then reach the index as they commit. Without a current snapshot nothing is
   * built: `store.indexKeys()` scans the view once it has caught up. @default false
   */
  keyIndex?: boolean;
}

/** An opened replica: an {@link OptoutStore} whose `replica` is set, and its follower. */
export interface OpenedReplica extends OptoutStore {
  readonly replica: ReplicaFreshness;
  readonly follower: FeedFollower;
  /**
   * Resolves once the view has first caught up with the database: until then every check fails
   * with OPTOUT_ERR_STALE. An empty view first loads a snapshot of the database, which takes a
   * while for a large list. Rejects when that load fails: the replica cannot answer anything.
   */
  readonly caughtUp: Promise<void>;
}

/**
 * Opens the API replica of the database at `url`, its view in the folder `dir` (created when
 * missing; one folder per replica), and starts following the database: see `caughtUp`.
 * @throws OptoutError OPTOUT_ERR_SCHEMA for a database without the current schema;
 *   OPTOUT_ERR_INVALID_OPTION for a folder as `url`, or a `dir` holding a store or another database's view
 */
export async function openReplica(url: string, dir: string = DEFAULT_REPLICA_DIR, options: ReplicaOptions = {}): Promise<OpenedReplica> {
  if (typeof url !== 'string' || !isPgUrl(url)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected the database of a replica to be a postgres:// or postgresql:// URL, got ` +
      `${describeValue(typeof url === 'string' ? redact(url) : url)}: a store folder is served as it is, without a replica`);
  }
  const maxStalenessMs = options.maxStalenessMs ?? DEFAULT_MAX_STALENESS_MS;
  if (!Number.isInteger(maxStalenessMs) || maxStalenessMs < 1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`maxStalenessMs\` to be a whole number of milliseconds from 1, got ${describeValue(maxStalenessMs)}`);
  }
  const { PgLedger } = await import('../store/pg/pg-ledger.js');
  // Uploads and spools of the imports this replica runs are kept beside its view: they outlive
  // a restart, and no other replica's cleanup touches them.
  const ledger = await PgLedger.open(url, { workDir: resolve(dir) });
  let feed: Ledger | undefined;
  let view: LevelStore | undefined;
  try {
    feed = await PgLedger.open(url, { workDir: resolve(dir), statementTimeoutMs: FEED_STATEMENT_TIMEOUT_MS, max: 3 });
    view = await openReplicaView(dir, feed);
    // Loaded first, so that the snapshot and the feed teach it every key as they are applied.
    const filter = await view.filter();
    // Begun before the follower applies anything (see `keyIndex`); its outcome is `indexKeys()`'s.
    if (options.keyIndex === true) view.loadKeyIndex().catch(() => undefined);
    const follower = new FeedFollower(feed, view, { pollMs: options.pollMs, notify: options.notify, onError: options.onError, onApplied: options.onApplied });
    const checker = new Checker(view, filter, ledger);
    return replicaOf({ ledger, feed, view, follower, checker, maxStalenessMs, caughtUp: follower.start() });
  } catch (err) {
    await view?.close();
    await feed?.close();
    await ledger.close();
    throw err;
  }
}

interface ReplicaParts {
  /** Writes and the reads of list management. */
  ledger: Ledger;
  /** The same database, read by the follower alone. */
  feed: Ledger;
  view: LevelStore;
  follower: FeedFollower;
  checker: Checker;
  maxStalenessMs: number;
  caughtUp: Promise<void>;
}

function replicaOf({ ledger, feed, view, follower, checker, maxStalenessMs, caughtUp }: ReplicaParts): OpenedReplica {
  // Whoever opened it may not wait for it; a failure is still theirs to read from `caughtUp`.
  caughtUp.catch(() => undefined);
  const ready = (wait: CheckWait | undefined): Promise<void> | undefined => {
    const min = wait?.minSeq;
    if (min === undefined || follower.seq >= min) {
      follower.assertFresh(maxStalenessMs);
      return undefined;
    }
    if (!Number.isSafeInteger(min) || min < 0) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`minSeq\` to be a whole number from 0, got ${describeValue(min)}`);
    }
    return follower.waitFor(min, MIN_SEQ_WAIT_MS).then((reached) => {
      if (!reached) {
        throw new OptoutError('OPTOUT_ERR_STALE', `This replica has not reached feed position ${min} within ${MIN_SEQ_WAIT_MS} ms ` +
          `(it holds ${follower.seq}): ask again, or ask another replica`);
      }
      follower.assertFresh(maxStalenessMs);
    });
  };
  let closing: Promise<void> | undefined;
  return {
    store: view,
    ledger,
    follower,
    caughtUp,
    replica: {
      maxStalenessMs,
      get seq() {
        return follower.seq;
      },
      get provenAt() {
        return follower.freshness().provenAt;
      },
      fresh: () => follower.fresh(maxStalenessMs),
      assertFresh: () => follower.assertFresh(maxStalenessMs),
    },
    ...checksOf(checker, ready),
    async written() {
      // Any position read after the commit includes the write. Waiting the bound is enough: a
      // view that has not reached it by then has no proof younger than the write, and answers
      // no check until it has the write.
      const seq = await ledger.head();
      await follower.waitFor(seq, maxStalenessMs);
      return seq;
    },
    close() {
      closing ??= (async () => {
        try {
          await follower.stop();
          await caughtUp.catch(() => undefined);
        } finally {
          try {
            await view.close();
          } finally {
            await Promise.all([feed.close(), ledger.close()]);
          }
        }
      })();
      return closing;
    },
  };
}
