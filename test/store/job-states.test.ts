import { describe, expect, it } from 'vitest';
import { isOptoutError } from '../../src/errors.js';
import { JOB_STATES, canMove, moveJob } from '../../src/store/job-states.js';
import type { AddRecord, JobState } from '../../src/store/jobs.js';

const STATES: JobState[] = ['analyzing', 'awaiting_confirmation', 'expired', 'importing', 'completed', 'failed', 'interrupted', 'rolling_back', 'rolled_back'];

describe('job states', () => {
  it('end nowhere once rolled back, and reach rolled_back only through rolling_back', () => {
    for (const to of STATES) expect(canMove('rolled_back', to)).toBe(false);
    for (const from of STATES) expect(canMove(from, 'rolled_back')).toBe(from === 'rolling_back');
  });

  it('roll back only what has stopped: completed, failed, interrupted (or a rollback cut off)', () => {
    expect(STATES.filter((s) => canMove(s, 'rolling_back'))).toEqual(['completed', 'failed', 'interrupted', 'rolling_back']);
  });

  it('lists every state', () => {
    expect([...JOB_STATES].sort()).toEqual([...STATES].sort());
  });

  it('expire only a job that was never confirmed, and end there', () => {
    expect(STATES.filter((s) => canMove(s, 'expired'))).toEqual(['analyzing', 'awaiting_confirmation']);
    for (const to of STATES) expect(canMove('expired', to)).toBe(false);
  });

  it('complete only a job that is importing', () => {
    expect(STATES.filter((s) => canMove(s, 'completed'))).toEqual(['importing']);
  });

  it('moveJob applies the patch and refuses a change the table does not have, with OPTOUT_ERR_JOB_STATE', () => {
    const add: AddRecord = {
      id: '7', kind: 'add', state: 'completed', scope: '*', reason: 'manual', source: 's', actor: 'a', key: 'k@x.org',
      createdAt: '', updatedAt: '', finishedAt: '',
    };
    const rolling = moveJob<AddRecord>(add, 'rolling_back' as AddRecord['state']);
    expect(rolling).toMatchObject({ id: '7', state: 'rolling_back', key: 'k@x.org' });
    expect(rolling.updatedAt).not.toBe('');
    let caught: unknown;
    try {
      moveJob<AddRecord>(add, 'rolled_back');
    } catch (err) {
      caught = err;
    }
    expect(isOptoutError(caught) && caught.code).toBe('OPTOUT_ERR_JOB_STATE');
  });
});
