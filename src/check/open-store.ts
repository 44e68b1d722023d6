import { OptoutError } from '../errors.js';
import { LevelStore } from '../store/level/level-store.js';
import { isPgUrl, redact } from '../store/pg/url.js';
import { defaultDb } from '../options.js';
import type { Ledger } from '../store/store.js';
import { Checker, type CheckRequest } from './checker.js';
import type { Decision } from './rules.js';

/** What a check may ask of the store besides its request. */
export interface CheckWait {
  /**
   * A feed position (a write's `X-Optout-Seq`) the answer must include. An API replica waits
   * up to 500 ms to reach it, then fails with OPTOUT_ERR_STALE; an embedded store always holds
   * every write, and ignores it.
   */
  minSeq?: number | undefined;
}

/** How fresh an API replica's view is (see replica/follower.ts). */
export interface ReplicaFreshness {
  /** The bound: checks are answered only while the view is proven to hold every change committed up to this long ago. */
  readonly maxStalenessMs: number;
  /** The feed position the view holds. */
  readonly seq: number;
  /**
   * When the last read of the feed that reached its head began (ms since the epoch), or null
   * before the first: the view holds every change committed before then.
   */
  readonly provenAt: number | null;
  /** Whether checks may be answered now. */
  fresh(): boolean;
  /** @throws OptoutError OPTOUT_ERR_STALE unless {@link fresh}. */
  assertFresh(): void;
}

/** An opened store, ready to answer eligibility checks. */
export interface OptoutStore {
  /**
   * The local LevelDB store that checks read: the store itself, or an API replica's view of its
   * database (which refuses writes).
   */
  readonly store: LevelStore;
  /** Where writes and the reads of list management go: the store itself, or the database. */
  readonly ledger: Ledger;
  /** An API replica's freshness; undefined for an embedded store, which holds every write at once. */
  readonly replica: ReplicaFreshness | undefined;
  /**
   * One decision; a legal-basis decision is recorded before it is returned.
   * @throws OptoutError OPTOUT_ERR_STALE on a replica that is not fresh, or has not reached `minSeq`
   */
  check(req: CheckRequest, wait?: CheckWait): Promise<Decision>;
  /** Decisions in input order. */
  checkMany(reqs: readonly CheckRequest[], wait?: CheckWait): Promise<Decision[]>;
  /** As {@link checkMany} for addresses asked with the same options (a batch of the HTTP API). */
  checkEmails(emails: readonly string[], options: Omit<CheckRequest, 'email'>, wait?: CheckWait): Promise<Decision[]>;
  /**
   * Called once a write has committed: the feed position that includes it (for `X-Optout-Seq`),
   * once this process's view holds it or can no longer answer checks (a replica waits up to its
   * staleness bound), so that no check answered here after the write misses it. Undefined for
   * a store without a feed.
   */
  written(): Promise<number | undefined>;
  close(): Promise<void>;
}

/** A decision given at once, or undefined where `check` would wait or record (see {@link checkAtOnce}). */
export type CheckAtOnce = (req: CheckRequest, wait?: CheckWait) => Decision | undefined;

/** Each `check` that {@link checksOf} made, with its synchronous form. */
const atOnce = new WeakMap<OptoutStore['check'], CheckAtOnce>();

/**
 * The synchronous form of `store.check`: the same decision, returned at once, for a check that
 * needs no wait (no `minSeq`, a fresh view) and records nothing (no legal basis used), and
 * undefined for any other, which `check` then answers; it throws where `check` rejects. A
 * server's single checks skip the promises that way. Undefined for a store whose `check` is not
 * the one {@link checksOf} made (a caller's wrapper), so that a wrapper is never bypassed.
 */
export function checkAtOnce(store: Pick<OptoutStore, 'check'>): CheckAtOnce | undefined {
  return atOnce.get(store.check);
}

/** An {@link OptoutStore}'s checks through `checker`, after `ready` has said the view may answer. */
export function checksOf(checker: Checker, ready: (wait: CheckWait | undefined) => Promise<void> | undefined):
Pick<OptoutStore, 'check' | 'checkMany' | 'checkEmails'> {
  const check: OptoutStore['check'] = async (req, wait) => {
    const waiting = ready(wait);
    if (waiting !== undefined) await waiting;
    const d = checker.decide(req);
    await checker.record([req], [d]);
    return d;
  };
  atOnce.set(check, (req, wait) => {
    if (wait?.minSeq !== undefined) return undefined;
    const waiting = ready(wait);
    if (waiting !== undefined) {
      // Left to `check`, which waits again.
      waiting.catch(() => undefined);
      return undefined;
    }
    const d = checker.decide(req);
    return checker.legalBasisRecord(req, d) === undefined ? d : undefined;
  });
  return {
    check,
    async checkMany(reqs, wait) {
      const waiting = ready(wait);
      if (waiting !== undefined) await waiting;
      const decisions = reqs.map((r) => checker.decide(r));
      await checker.record(reqs, decisions);
      return decisions;
    },
    async checkEmails(emails, options, wait) {
      const waiting = ready(wait);
      if (waiting !== undefined) await waiting;
      const decisions = checker.decideMany(emails, options);
      await checker.recordMany(options, decisions);
      return decisions;
    },
  };
}

/**
 * Opens a store for checks: the key filter is loaded (from its snapshot, or rebuilt from the
 * entries) before this resolves, so every check sees every stored key.
 * @param dir @default `$OPTOUT_DB` or `./optout-db`
 */
export async function openStore(dir: string = defaultDb(), options: { purpose?: string; create?: boolean } = {}): Promise<OptoutStore> {
  if (typeof dir === 'string' && isPgUrl(dir)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Checks served from memory (\`optout serve\`, \`openStore\`) need a local LevelDB store, ` +
      `got the PostgreSQL URL ${redact(dir)}: a database is served through API replicas with a local view each ` +
      '(`optout serve --replica <dir>`, `openReplica`). The other commands (import, check, scrub, ...) take the URL.');
  }
  const store = await LevelStore.open(dir, { purpose: options.purpose ?? 'optout library', create: options.create ?? true });
  let checker: Checker;
  try {
    checker = new Checker(store, await store.filter());
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    store,
    ledger: store,
    replica: undefined,
    ...checksOf(checker, () => undefined),
    written: async () => undefined,
    close: () => store.close(),
  };
}
