import type { ImportCounts } from '../pipeline/stats.js';

export type JobState = 'importing' | 'completed' | 'failed' | 'interrupted';
export type SuppressionReason = 'unsubscribed' | 'bounced' | 'complaint' | 'manual';
export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ['unsubscribed', 'bounced', 'complaint', 'manual'];

/**
 * Where a running import stands, written in the same LevelDB batch as the entries it covers,
 * so a resumed import continues exactly after the last durable batch.
 */
export interface Checkpoint {
  /** Offset in the decoded (UTF-8) byte stream of the first record not yet written. */
  offset: number;
  /** Physical lines before `offset`, header included. */
  lines: number;
  counts: ImportCounts;
  /** Length of the rejects file covering every record before `offset`. */
  rejectsBytes: number;
  invalidUtf8: number;
}

/** Identifies "the same import" across a crash: same file, same content, same options. */
export interface JobFingerprint {
  path: string | null;
  size: number | null;
  mtimeMs: number | null;
  column: string | null;
  delimiter: string | null;
  encoding: string;
  rejects: string | null;
}

export interface JobRecord {
  id: string;
  kind: 'import';
  state: JobState;
  /** Business unit id, or `*` for account-wide. */
  scope: string;
  reason: SuppressionReason;
  /** The label stored as the entries' source. */
  source: string;
  fingerprint: JobFingerprint;
  confirmed: 'yes' | 'count';
  /** The `unique` count the user confirmed, when confirmed by count. */
  confirmedCount: number | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  resumedCount: number;
  checkpoint: Checkpoint;
  error: { code: string; message: string } | null;
}
