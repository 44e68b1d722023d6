/**
 * A job's rollback in the LevelDB layout. Entries `e<scope>\0<h><key>` and holds
 * `h<scope>\0<h><key>\0<job>` sort in the same order after their first byte, so one pass walks
 * both ranges side by side (a merge join): no per-entry seek, no map of holds in memory. The
 * caller holds the store's write lock, so nothing in the same process changes the scope
 * meanwhile; the pass commits every few thousand changes with the job in state `rolling_back`,
 * and running the rollback again after a crash finishes it.
 */
import type { ClassicLevel } from 'classic-level';
import type { AuditRecord } from '../audit.js';
import { moveJob } from '../job-states.js';
import type { AnyJob } from '../jobs.js';
import type { RollbackCounts } from '../store.js';
import { decodeEntryValue, encodeEntryValue, jobKey } from './keys.js';

/** One write of a change (see LevelStore.commitChange). */
export type ChangeOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/** The writes the rollback needs from the store: atomic, with the scope's counter delta. */
export type CommitChange = (ops: readonly ChangeOp[], delta: ReadonlyMap<string, number>, audit: AuditRecord | undefined) => Promise<void>;

const SEP = '\u0000';
const COMMIT_EVERY = 5000;
const READ_BATCH = 2000;

/** Reads a key range in batches, one key (and value) at a time, with a look at the next one. */
class Cursor {
  readonly #it: { nextv(n: number): Promise<Array<[string, string]>>; close(): Promise<void> };
  #buf: Array<[string, string]> = [];
  #pos = 0;
  #done = false;

  constructor(db: ClassicLevel<string, string>, range: { gt: string; lt: string }) {
    this.#it = db.iterator<string, string>(range);
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

/** Rolls back `job` (already marked `rolling_back`); the last commit marks it `rolled_back` with its audit record. */
export async function rollbackInLevel(db: ClassicLevel<string, string>, commit: CommitChange, job: AnyJob,
  audit: (counts: RollbackCounts) => AuditRecord): Promise<RollbackCounts> {
  const jobId = job.id;
  const result: RollbackCounts = { removed: 0, kept: 0, holdsReleased: 0 };
  const scopePrefix = job.scope + SEP;
  const entries = new Cursor(db, { gt: 'e' + scopePrefix, lt: 'e' + job.scope + '\u0001' });
  const holds = new Cursor(db, { gt: 'h' + scopePrefix, lt: 'h' + job.scope + '\u0001' });
  let ops: ChangeOp[] = [];
  let removedInBatch = 0;
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return;
    await commit(ops, new Map([[job.scope, -removedInBatch]]), undefined);
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
      // An entry passed to an heir keeps the reason its row gave.
      const { jobId: owner, address, reason } = decodeEntryValue(value);
      if (owner === jobId) {
        if (holders.length > 0) {
          const heir = holders.reduce((a, b) => (Number(a) <= Number(b) ? a : b));
          ops.push({ type: 'put', key: entryKey, value: encodeEntryValue(heir, address, reason) });
          ops.push({ type: 'del', key: 'h' + body + SEP + heir });
          result.kept++;
        } else {
          ops.push({ type: 'del', key: entryKey });
          removedInBatch++;
          result.removed++;
        }
      }
      if (ops.length >= COMMIT_EVERY) await flush();
    }
    // Holds after the last entry: their entries are gone; this job's are released all the same.
    for (let h = await holds.next(); h !== undefined; h = await holds.next()) {
      if (h[0].slice(h[0].lastIndexOf(SEP) + 1) === jobId) {
        ops.push({ type: 'del', key: h[0] });
        result.holdsReleased++;
      }
      if (ops.length >= COMMIT_EVERY) await flush();
    }
  } finally {
    await entries.close();
    await holds.close();
  }
  const done = moveJob<AnyJob>(job, 'rolled_back');
  ops.push({ type: 'put', key: jobKey(jobId), value: JSON.stringify(done) });
  await commit(ops, new Map([[job.scope, -removedInBatch]]), audit(result));
  return result;
}
