import type { RejectsFile } from '../report/rejects.js';
import type { BucketSpool } from './spool.js';
import type { ScannedChunk } from './scan.js';

/** How far the reading phase has come. */
export interface SpoolState {
  offset: number;
  lines: number;
  rows: number;
  valid: number;
  invalid: number;
  invalidUtf8: number;
  rejectsBytes: number;
}

/** Chunks between two checkpoints of the reading phase (about 8 MiB of CSV). */
const CHECKPOINT_EVERY = 8;

/**
 * The reading phase: every chunk's valid rows go to the spool, its invalid rows to the rejects
 * file. `checkpoint`, when given, is called every few chunks with the state and the spool's
 * file lengths, after both files are written out.
 */
export async function spoolPass(scan: AsyncIterable<ScannedChunk>, spool: BucketSpool, rejects: RejectsFile | undefined,
  start: SpoolState, onChunk: (state: SpoolState) => void,
  checkpoint?: (state: SpoolState, lengths: number[]) => Promise<void>): Promise<SpoolState> {
  const state = { ...start };
  let sinceCheckpoint = 0;
  for await (const s of scan) {
    const r = s.result;
    spool.append(r.buckets);
    await rejects?.write(r.rejects, s.baseLine, s.baseRow);
    state.offset = s.endOffset;
    state.lines = s.baseLine - 1 + r.lines;
    state.rows += r.records;
    state.valid += r.valid;
    state.invalid += r.rejects.length;
    state.invalidUtf8 += r.invalidUtf8;
    state.rejectsBytes = rejects?.bytes ?? 0;
    onChunk(state);
    if (checkpoint && ++sinceCheckpoint >= CHECKPOINT_EVERY) {
      sinceCheckpoint = 0;
      await checkpoint({ ...state }, spool.flush());
    }
  }
  return state;
}
