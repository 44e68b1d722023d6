import type { ClassicLevel } from 'classic-level';
import { jobKey } from './keys.js';
import type { AnyJob } from './jobs.js';

/** What an entry inherits from the job (import or single add) that stored it. */
export interface JobMeta {
  reason: string;
  source: string;
  addedAt: string;
}

const UNKNOWN: JobMeta = { reason: 'unknown', source: 'unknown', addedAt: '' };

/**
 * Job metadata by id, read once each with a synchronous get. Reason, source and date of a job
 * never change after it is created, and entries point to a few jobs each, so lookups and
 * exports of millions of entries read each job once.
 */
export class JobMetaCache {
  readonly #db: ClassicLevel<string, string>;
  readonly #byId = new Map<string, JobMeta>();

  constructor(db: ClassicLevel<string, string>) {
    this.#db = db;
  }

  get(jobId: string): JobMeta {
    let meta = this.#byId.get(jobId);
    if (meta === undefined) {
      const raw = this.#db.getSync(jobKey(jobId));
      if (raw === undefined) return UNKNOWN;
      const job = JSON.parse(raw) as AnyJob;
      meta = { reason: job.reason, source: job.source, addedAt: job.createdAt };
      this.#byId.set(jobId, meta);
    }
    return meta;
  }
}
