/**
 * The one table of job state changes. Every change of a job's state goes through `moveJob`, so
 * that no code path can, say, complete a job that was rolled back or roll back one still running.
 *
 * ```
 * (new) -> analyzing -> awaiting_confirmation -> importing -> completed -> rolling_back -> rolled_back
 *                 \______________________________/    \-> failed ----/
 *                                                      \-> interrupted -> importing (resumed)
 * analyzing, awaiting_confirmation -> expired
 * ```
 * `analyzing` is where a server takes up a job that waited for a confirmation when it stopped;
 * a job never confirmed within its time to live ends `expired`, having written nothing;
 * a single add is `completed` from the start.
 */
import { OptoutError } from '../errors.js';
import type { AnyJob, JobState } from './jobs.js';

const NEXT: Readonly<Record<JobState, readonly JobState[]>> = {
  analyzing: ['analyzing', 'awaiting_confirmation', 'importing', 'failed', 'interrupted', 'expired'],
  awaiting_confirmation: ['analyzing', 'importing', 'failed', 'interrupted', 'expired'],
  expired: [],
  importing: ['importing', 'completed', 'failed', 'interrupted'],
  interrupted: ['importing', 'failed', 'rolling_back'],
  completed: ['rolling_back'],
  failed: ['rolling_back'],
  rolling_back: ['rolling_back', 'rolled_back'],
  rolled_back: [],
};

/** Every job state, in the table's order. */
export const JOB_STATES: readonly JobState[] = Object.keys(NEXT) as JobState[];

/** The states of a job that has not ended: someone must still run it (or take it up again). */
export const UNENDED: ReadonlySet<JobState> = new Set(['analyzing', 'awaiting_confirmation', 'importing', 'interrupted']);

/** Whether a job in state `from` may move to `to`. */
export function canMove(from: JobState, to: JobState): boolean {
  return NEXT[from].includes(to);
}

/**
 * The job in state `to`, with `patch` applied and `updatedAt` set.
 * @throws OptoutError OPTOUT_ERR_JOB_STATE when the table has no such change.
 */
export function moveJob<J extends AnyJob>(job: J, to: J['state'] & JobState, patch: Partial<J> = {}): J {
  if (!canMove(job.state, to)) {
    throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${job.id} is ${job.state} and cannot become ${to}`);
  }
  return { ...job, ...patch, state: to, updatedAt: new Date().toISOString() };
}
