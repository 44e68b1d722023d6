import type { ClassicLevel } from 'classic-level';
import { followedJobKey, jobKey } from './keys.js';
import { jobMetaOf, type AnyJob } from '../jobs.js';
import type { JobMeta } from '../store.js';

/**
 * Job metadata by id for the check path, read once each with a synchronous get. Reason, source and date of a job
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
      if (raw !== undefined) {
        meta = jobMetaOf(JSON.parse(raw) as AnyJob);
      } else {
        const followed = this.#db.getSync(followedJobKey(jobId));
        if (followed === undefined) return jobMetaOf(undefined);
        meta = JSON.parse(followed) as JobMeta;
      }
      this.#byId.set(jobId, meta);
    }
    return meta;
  }
}
