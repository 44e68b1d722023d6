import type { ChunkTask } from './chunk-task.js';
import type { ChunkProgress } from './chunk-task.js';

/** One record-aligned chunk of UTF-8 bytes to scrub: the import's task, without spool buckets. */
export type ScrubTask = Omit<ChunkTask, 'bucketBits'>;

/**
 * Everything the main thread needs to decide and copy each record of a chunk, in a few typed
 * arrays and two strings rather than one object per row.
 */
export interface ScrubResult extends ChunkProgress {
  /**
   * Per record, three offsets into the task's bytes: where the record starts, where it ends
   * (before its line break) and where the next byte after its line break is.
   */
  spans: Uint32Array;
  /** Per record, its number of fields. */
  fields: Uint32Array;
  /** The keys of the valid records, concatenated (keys are never empty). */
  keys: string;
  /**
   * Per record, the end of its key in `keys`; the key starts where the previous record's ends
   * (0 for the first). A record with an empty span has no key: it is invalid.
   */
  keyEnds: Uint32Array;
  /** Per record, the first two hashes of its key (filter/hash.ts); zeros for an invalid one. */
  hashes: Uint32Array;
  /** The reason code of each invalid record, in record order. */
  reasons: string[];
  /** Cells whose bytes were not valid in the input encoding (also counted in `reasons`). */
  invalidUtf8: number;
}
