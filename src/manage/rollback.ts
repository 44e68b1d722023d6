/**
 * Undoing a job: its entries go, except those another job (a later import, a single add) also
 * holds, which pass to the earliest such job; the job's own holds on other jobs' entries go too.
 *
 * Entries `e<scope>\0<h><key>` and holds `h<scope>\0<h><key>\0<job>` sort in the same order after
 * their first byte, so one pass walks both ranges side by side (a merge join): no per-entry seek,
 * no map of holds in memory. The pass holds the store's write lock, so nothing in the same
 * process changes the scope meanwhile; it commits every few thousand changes with the job in
 * state `rolling_back`, and running the rollback again after a crash finishes it.
 */
import { OptoutError, describeValue } from '../errors.js';
import { ACCOUNT_WIDE, decodeEntryValue, encodeEntryValue, jobKey } from '../store/keys.js';
import type { AnyJob } from '../store/jobs.js';
import type { ChangeOp, LevelStore } from '../store/level-store.js';

export interface RollbackResult {
  job: string;
  /** Entries deleted: no other job held them. */
  removed: number;
  /** Entries kept because another job also held them; they now belong to that job. */
  kept: number;
  /** This job's holds on entries of other jobs, released. */
  holdsReleased: number;
}

const SEP = '\u0000';
const COMMIT_EVERY = 5000;
const READ_BATCH = 2000;
const ROLLBACK_FROM = new Set(['completed', 'failed', 'interrupted', 'rolling_back']);

/** Reads a key range in batches, one key (and value) at a time, with a look at the next one. */
class Cursor {
  readonly #it: { nextv(n: number): Promise<Array<[string, string]>>; close(): Promise<void> };
  #buf: Array<[string, string]> = [];
  #pos = 0;
  #done = false;

  constructor(store: LevelStore, range: { gt: string; lt: string }) {
    this.#it = store.db.iterator<string, string>(range);
  }

  async peek(): Promise<[string, string] | undefined> {
    if (this.#pos < this.#buf.length) return this.#buf[this.#pos];
    if (this.#done) return undefined;
    this.#buf = await this.#it.nextv(READ_BATCH);
    this.#pos = 0;
    if (this.#buf.length === 0) this.#done = true;
    return this.#buf[0];
  }

  async next(): Promise<[string, string] | undefined> {
    const item = await this.peek();
    this.#pos++;
    return item;
  }

  close(): Promise<void> {
    return this.#it.close();
  }
}

/** Rolls back an import or a single add; audited. */
export async function rollbackJob(store: LevelStore, jobId: string, actor = 'library'): Promise<RollbackResult> {
  if (typeof jobId !== 'string' || !/^\d{1,12}$/.test(jobId)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected a job id (digits), got ${describeValue(jobId)}`);
  }
  return store.withWriteLock(async () => {
    const job = await store.getJob(jobId);
    if (job === undefined) throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No job has the id ${jobId}`);
    if (!ROLLBACK_FROM.has(job.state)) {
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${jobId} is ${job.state}: only a completed, failed or interrupted job can be rolled back`);
    }
    await store.putJob({ ...job, state: 'rolling_back', updatedAt: new Date().toISOString() } as AnyJob);
    const result: RollbackResult = { job: jobId, removed: 0, kept: 0, holdsReleased: 0 };
    const scopePrefix = job.scope + SEP;
    const entries = new Cursor(store, { gt: 'e' + scopePrefix, lt: 'e' + job.scope + '\u0001' });
    const holds = new Cursor(store, { gt: 'h' + scopePrefix, lt: 'h' + job.scope + '\u0001' });
    let ops: ChangeOp[] = [];
    let removedInBatch = 0;
    const commit = async (): Promise<void> => {
      if (ops.length === 0) return;
      await store.commitChange(ops, new Map([[job.scope, -removedInBatch]]), undefined);
      ops = [];
      removedInBatch = 0;
    };
    try {
      for (let entry = await entries.next(); entry !== undefined; entry = await entries.next()) {
        const [entryKey, value] = entry;
        const body = entryKey.slice(1);
        // Holds sorting before this entry belong to entries already passed (or deleted ones).
        const holders: string[] = [];
        for (let h = await holds.peek(); h !== undefined; h = await holds.peek()) {
          const sep = h[0].lastIndexOf(SEP);
          const holdBody = h[0].slice(1, sep);
          if (holdBody > body) break;
          await holds.next();
          const holder = h[0].slice(sep + 1);
          if (holder === jobId) {
            ops.push({ type: 'del', key: h[0] });
            result.holdsReleased++;
          } else if (holdBody === body) {
            holders.push(holder);
          }
        }
        const { jobId: owner, address } = decodeEntryValue(value);
        if (owner === jobId) {
          if (holders.length > 0) {
            const heir = holders.reduce((a, b) => (Number(a) <= Number(b) ? a : b));
            ops.push({ type: 'put', key: entryKey, value: encodeEntryValue(heir, address) });
            ops.push({ type: 'del', key: 'h' + body + SEP + heir });
            result.kept++;
          } else {
            ops.push({ type: 'del', key: entryKey });
            removedInBatch++;
            result.removed++;
          }
        }
        if (ops.length >= COMMIT_EVERY) await commit();
      }
      // Holds after the last entry: their entries are gone; this job's are released all the same.
      for (let h = await holds.next(); h !== undefined; h = await holds.next()) {
        if (h[0].slice(h[0].lastIndexOf(SEP) + 1) === jobId) {
          ops.push({ type: 'del', key: h[0] });
          result.holdsReleased++;
        }
        if (ops.length >= COMMIT_EVERY) await commit();
      }
    } finally {
      await entries.close();
      await holds.close();
    }
    const now = new Date().toISOString();
    const done = { ...job, state: 'rolled_back', updatedAt: now } as AnyJob;
    ops.push({ type: 'put', key: jobKey(jobId), value: JSON.stringify(done) });
    await store.commitChange(ops, new Map([[job.scope, -removedInBatch]]), store.audit({
      actor, action: 'rollback', key: job.kind === 'add' ? job.key : null, job: jobId,
      unit: job.scope === ACCOUNT_WIDE ? null : job.scope,
      details: { kind: job.kind, source: job.source, removed: result.removed, kept: result.kept, holdsReleased: result.holdsReleased },
    }));
    return result;
  });
}
