/**
 * Checks on any ledger. A store with synchronous lookups answers from its own view (the embedded
 * store). A ledger without them (PostgreSQL) is read a batch at a time: the keys of the checks at
 * hand are looked up first, in few round trips, and the same {@link Checker} then decides from
 * what was found, with the same rules, so the answers are those of the embedded store.
 */
import { OptoutError } from '../errors.js';
import { hashKeyTuple } from '../filter/hash.js';
import { normalizeEmail } from '../policy/email.js';
import { JobMetas, type JobMeta } from '../store/jobs.js';
import { checkViewOf, type HashedKey, type Ledger, type StoredEntry } from '../store/store.js';
import { Checker, type CheckLookups } from './checker.js';

/** Job metadata kept between batches, at most this many jobs (every single add is a job). */
const MAX_KNOWN_JOBS = 100_000;

/**
 * A check view over what one batch of lookups found. A key outside the batch throws, which the
 * checker answers as `unavailable`: never a guess.
 */
export class LookupView implements CheckLookups {
  readonly supports = { syncLookups: true, feed: false, exclusive: false, settlesChunks: false } as const;
  readonly #ledger: Pick<Ledger, 'entriesOfMany' | 'getJob'>;
  #found = new Map<string, ReadonlyArray<{ scope: string; entry: StoredEntry }>>();
  #metas: JobMetas;

  constructor(ledger: Pick<Ledger, 'entriesOfMany' | 'getJob'>) {
    this.#ledger = ledger;
    this.#metas = new JobMetas(ledger);
  }

  /** Looks up `keys` (every scope) and the jobs their entries point to; replaces the last batch. */
  async load(keys: readonly HashedKey[]): Promise<void> {
    // Dropped first: a batch that fails to load leaves nothing to answer from.
    this.#found = new Map();
    const found = await this.#ledger.entriesOfMany(keys);
    const next = new Map<string, ReadonlyArray<{ scope: string; entry: StoredEntry }>>();
    keys.forEach((k, i) => next.set(k.key, found[i] ?? []));
    const jobs = new Set<string>();
    for (const list of next.values()) for (const { entry } of list) jobs.add(entry.jobId);
    if (this.#metas.size + jobs.size > MAX_KNOWN_JOBS) this.#metas = new JobMetas(this.#ledger);
    await Promise.all([...jobs].map((id) => this.#metas.get(id)));
    this.#found = next;
  }

  entrySync(scope: string, key: string, _h1: number): StoredEntry | undefined {
    const list = this.#found.get(key);
    if (list === undefined) throw new OptoutError('OPTOUT_ERR_STORE', 'A key was checked without being looked up first');
    return list.find((e) => e.scope === scope)?.entry;
  }

  matchSync(scope: string, key: string, h1: number, _h2: number): StoredEntry | undefined {
    return this.entrySync(scope, key, h1);
  }

  jobMetaSync(jobId: string): JobMeta {
    const meta = this.#metas.known(jobId);
    if (meta === undefined) throw new OptoutError('OPTOUT_ERR_STORE', `Job ${jobId} was not looked up`);
    return meta;
  }
}

/** A checker for a ledger, and how to get it ready for the next checks. */
export interface LedgerChecker {
  readonly checker: Checker;
  /** True when `prepare` must be given the keys of the next checks before they are decided. */
  readonly needsKeys: boolean;
  /** Looks up the keys of the next checks (a ledger without synchronous lookups); else nothing. */
  prepare(keys: readonly HashedKey[]): Promise<void>;
}

/**
 * A checker over `ledger`: its own view when it has one (`supports.syncLookups`), with its key
 * filter when `filter` (many checks; one check reads the store directly), else lookups a batch
 * at a time, and legal-basis decisions recorded in the ledger's audit trail.
 */
export async function ledgerChecker(ledger: Ledger, options: { filter: boolean }): Promise<LedgerChecker> {
  const view = checkViewOf(ledger);
  if (view !== undefined) {
    const checker = new Checker(view, options.filter ? await view.filter() : undefined);
    return { checker, needsKeys: false, prepare: async () => undefined };
  }
  const lookups = new LookupView(ledger);
  return { checker: new Checker(lookups, undefined, ledger), needsKeys: true, prepare: (keys) => lookups.load(keys) };
}

/** The keys of the valid addresses among `emails`, as checks look them up. */
export function keysOfEmails(emails: readonly string[]): HashedKey[] {
  const out: HashedKey[] = [];
  for (const email of emails) {
    const n = normalizeEmail(email);
    if (!n.valid) continue;
    const [h1, h2] = hashKeyTuple(n.key);
    out.push({ key: n.key, h1, h2 });
  }
  return out;
}
