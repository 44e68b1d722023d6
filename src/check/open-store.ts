import { OptoutError } from '../errors.js';
import { LevelStore } from '../store/level/level-store.js';
import { isPgUrl, redact } from '../store/pg/url.js';
import { defaultDb } from '../options.js';
import { Checker, type CheckRequest } from './checker.js';
import type { Decision } from './rules.js';

/** An opened store, ready to answer eligibility checks. */
export interface OptoutStore {
  readonly store: LevelStore;
  /** One decision; a legal-basis decision is recorded before it is returned. */
  check(req: CheckRequest): Promise<Decision>;
  /** Decisions in input order. */
  checkMany(reqs: readonly CheckRequest[]): Promise<Decision[]>;
  close(): Promise<void>;
}

/**
 * Opens a store for checks: the key filter is loaded (from its snapshot, or rebuilt from the
 * entries) before this resolves, so every check sees every stored key.
 * @param dir @default `$OPTOUT_DB` or `./optout-db`
 */
export async function openStore(dir: string = defaultDb(), options: { purpose?: string; create?: boolean } = {}): Promise<OptoutStore> {
  if (typeof dir === 'string' && isPgUrl(dir)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Checks served from memory (\`optout serve\`, \`openStore\`) need a local LevelDB store, ` +
      `got the PostgreSQL URL ${redact(dir)}: a database is served through API replicas with a local view each (\`--replica\`), ` +
      'which this version does not support yet. The other commands (import, check, scrub, ...) take the URL.');
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
    async check(req) {
      const d = checker.decide(req);
      await checker.record([req], [d]);
      return d;
    },
    async checkMany(reqs) {
      const decisions = reqs.map((r) => checker.decide(r));
      await checker.record(reqs, decisions);
      return decisions;
    },
    close: () => store.close(),
  };
}
