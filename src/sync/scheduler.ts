import type { ImportJobs } from '../manage/import-jobs.js';
import type { Ledger } from '../store/store.js';
import { listSyncs, runSync, type SyncRunResult } from './syncs.js';

export interface SchedulerOptions {
  /** How often due syncs are looked for, in milliseconds. @default 15000 */
  tickMs?: number | undefined;
  /** Called after each run (logs, tests). */
  onRun?: ((result: SyncRunResult) => void) | undefined;
  onError?: ((err: unknown) => void) | undefined;
}

/**
 * Runs due syncs from a long-lived process (the server), one at a time: a run never overlaps
 * another of the same sync, and imports write one at a time anyway.
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
