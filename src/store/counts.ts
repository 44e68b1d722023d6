/**
 * The counts every import report is built from. They always satisfy
 * rows = valid + invalid + skipped, valid = unique + duplicates, unique = added + alreadySuppressed.
 */
export interface ImportCounts {
  rows: number;
  valid: number;
  invalid: number;
  /** Rows the export itself marks as not opted out (or outside `--where`): neither imported nor invalid. */
  skipped: number;
  unique: number;
  duplicates: number;
  added: number;
  alreadySuppressed: number;
}

export function emptyCounts(): ImportCounts {
  return { rows: 0, valid: 0, invalid: 0, skipped: 0, unique: 0, duplicates: 0, added: 0, alreadySuppressed: 0 };
}

/** Returns the first broken identity, or undefined when the counts add up. */
export function countsMismatch(c: ImportCounts): string | undefined {
  // Jobs recorded before `skipped` existed have none.
  const skipped = c.skipped ?? 0;
  if (c.rows !== c.valid + c.invalid + skipped) {
    return `rows ${c.rows} != valid ${c.valid} + invalid ${c.invalid} + skipped ${skipped}`;
  }
  if (c.valid !== c.unique + c.duplicates) return `valid ${c.valid} != unique ${c.unique} + duplicates ${c.duplicates}`;
  if (c.unique !== c.added + c.alreadySuppressed) {
    return `unique ${c.unique} != added ${c.added} + alreadySuppressed ${c.alreadySuppressed}`;
  }
  return undefined;
}

/** Live progress of a running pass, for progress bars and job status. */
export interface ImportProgress {
  /** `reading` the source, `counting` for a confirmation, `writing` to the store. */
  phase: 'reading' | 'counting' | 'writing';
  /** Work done against `total`: source bytes read while reading, buckets after that. */
  done: number;
  total: number | null;
  /** Rows read, or valid rows counted or written. */
  rows: number;
  elapsedMs: number;
}
