/**
 * Undoing a job: its entries go, except those another job (a later import, a single add) also
 * holds, which pass to the earliest such job; the job's own holds on other jobs' entries go too.
 * The ledger does the work (resumably: running the rollback again after a crash finishes it);
 * this module decides whether the job may be rolled back and writes the audit record.
 */
import { OptoutError, describeValue } from '../errors.js';
import { canMove, moveJob } from '../store/job-states.js';
import type { AnyJob } from '../store/jobs.js';
import { ACCOUNT_WIDE, type Ledger, type RollbackCounts } from '../store/store.js';

export interface RollbackResult extends RollbackCounts {
  job: string;
}


/** Rolls back an import or a single add; audited. */
export async function rollbackJob(store: Ledger & { withWriteLock<T>(fn: () => Promise<T>): Promise<T> }, jobId: string,
  actor = 'library'): Promise<RollbackResult> {
  if (typeof jobId !== 'string' || !/^\d{1,12}$/.test(jobId)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected a job id (digits), got ${describeValue(jobId)}`);
  }
  return store.withWriteLock(async () => {
    const job = await store.getJob(jobId);
    if (job === undefined) throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No job has the id ${jobId}`);
    if (!canMove(job.state, 'rolling_back')) {
      throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${jobId} is ${job.state}: only a completed, failed or interrupted job can be rolled back`);
    }
    const rolling = moveJob<AnyJob>(job, 'rolling_back');
    await store.putJob(rolling);
    const counts = await store.rollbackJob(rolling, (c) => store.audit({
      actor, action: 'rollback', key: job.kind === 'add' ? job.key : null, job: jobId,
      unit: job.scope === ACCOUNT_WIDE ? null : job.scope,
      details: { kind: job.kind, source: job.source, ...c },
    }));
    return { job: jobId, ...counts };
  });
}
