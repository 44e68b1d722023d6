import type { ImportJobs } from '../manage/import-jobs.js';
import type { Ledger } from '../store/store.js';
import { listSyncs, runSync, type SyncRunResult } from './syncs.js';

/** How long a claimed run of an on-demand sync stays claimed. */
const CLAIM_MS = 60 * 60_000;

export interface SchedulerOptions {
  /** How often due syncs are looked for, in milliseconds. @default 15000 */
  tickMs?: number | undefined;
  /** Called after each run (logs, tests). */
  onRun?: ((result: SyncRunResult) => void) | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

/**
 * Runs due syncs from a long-lived process (the server), one at a time: a run never overlaps
 * another of the same sync, and imports write one at a time anyway. Each due run is claimed in
 * the ledger first, so that several servers on one database run it once.
 */
export class SyncScheduler {
  readonly #store: Ledger;
  readonly #jobs: ImportJobs;
  readonly #o: SchedulerOptions;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(store: Ledger, jobs: ImportJobs, options: SchedulerOptions = {}) {
    this.#store = store;
    this.#jobs = jobs;
    this.#o = options;
  }

  start(): void {
    if (this.#abort.signal.aborted) return;
    const tick = (): void => {
      if (this.#running !== undefined || this.#abort.signal.aborted) return;
      this.#running = this.#runDue().catch((err: unknown) => this.#o.onError?.(err)).finally(() => {
        this.#running = undefined;
      });
    };
    this.#timer = setInterval(tick, this.#o.tickMs ?? 15_000);
    // The timer alone must not keep a process alive.
    this.#timer.unref();
    tick();
  }

  async #runDue(): Promise<void> {
    const now = Date.now();
    for (const s of await listSyncs(this.#store)) {
      if (this.#abort.signal.aborted) return;
      if (s.nextRunAt === null || Date.parse(s.nextRunAt) > now) continue;
      // Other servers on a shared ledger see the same due run: only the one that claims it runs
      // it. A claimer that dies before the run ends leaves it to the next regular time.
      const until = new Date(now + (s.everyMs ?? CLAIM_MS)).toISOString();
      if (!(await this.#store.claimSync(s.id, s.nextRunAt, until))) continue;
      const result = await runSync(this.#store, this.#jobs, s.id, { signal: this.#abort.signal });
      this.#o.onRun?.(result);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#abort.abort();
    await this.#running;
  }
}
