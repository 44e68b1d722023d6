import { addReasonCounts } from '../csv/reasons.js';
import type { OptoutError } from '../errors.js';
import type { RejectsFile } from '../report/rejects.js';
import { jobErrorOf, type JobError } from '../store/jobs.js';
import type { BucketSpool } from './spool.js';
import type { ScannedChunk } from './scan.js';

/** How far the reading phase has come. */
export interface SpoolState {
  offset: number;
  lines: number;
  rows: number;
  valid: number;
  invalid: number;
  skipped: number;
  invalidUtf8: number;
  rejectsBytes: number;
  /** Valid rows that gave their own reason, per reason code (csv/reasons.ts). */
  reasons: number[];
}

/** What a reading pass got through: the state after the last complete chunk, and what stopped it. */
export interface SpoolResult {
  state: SpoolState;
  /** A broken record that ended the reading early; `state` covers the rows before it. */
  error: JobError | undefined;
}

const INPUT_ERRORS: ReadonlySet<string> = new Set(['OPTOUT_ERR_CSV_PARSE', 'OPTOUT_ERR_RECORD_TOO_LARGE']);

/** Chunks between two checkpoints of the reading phase (about 8 MiB of CSV). */
const CHECKPOINT_EVERY = 8;

/**
 * The reading phase: every chunk's valid rows go to the spool, its invalid rows to the rejects
 * file. `checkpoint`, when given, is called every few chunks with the state and the spool's
 * file lengths, after both files are written out.
 *
 * A broken record ends the reading without failing it: the rows before it are spooled, and the
 * error comes back with them, so that a caller writes them all the same (an opt-out that was read
 * is never dropped). Any other failure is thrown.
 */
export async function spoolPass(scan: AsyncIterable<ScannedChunk>, spool: BucketSpool, rejects: RejectsFile | undefined,
  start: SpoolState, onChunk: (state: SpoolState) => void,
  checkpoint?: (state: SpoolState, lengths: number[]) => Promise<void>): Promise<SpoolResult> {
  const state = { ...start, reasons: [...start.reasons] };
  let sinceCheckpoint = 0;
  try {
    for await (const s of scan) {
      const r = s.result;
      spool.append(r.buckets);
      await rejects?.write(r.rejects, s.baseLine, s.baseRow);
      state.offset = s.endOffset;
      state.lines = s.baseLine - 1 + r.lines;
      state.rows += r.records;
      state.valid += r.valid;
      state.invalid += r.rejects.length - r.skipped;
      state.skipped += r.skipped;
      state.invalidUtf8 += r.invalidUtf8;
      addReasonCounts(state.reasons, r.reasons);
      state.rejectsBytes = rejects?.bytes ?? 0;
      onChunk(state);
      if (checkpoint && ++sinceCheckpoint >= CHECKPOINT_EVERY) {
        sinceCheckpoint = 0;
        await checkpoint({ ...state, reasons: [...state.reasons] }, spool.flush());
      }
    }
  } catch (err) {
    if (!INPUT_ERRORS.has((err as OptoutError).code)) throw err;
    return { state, error: jobErrorOf(err as OptoutError) };
  }
  return { state, error: undefined };
}
