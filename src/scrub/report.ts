import type { SendType } from '../check/rules.js';
import type { ScrubCounts } from './rows.js';

/** The report of one `optout scrub`, in the shape `--json` prints. rows = eligible + suppressed + invalid. */
export interface ScrubReport extends ScrubCounts {
  durationMs: number;
  rowsPerSecond: number;
  /** The send list's name, or `stdin`. */
  source: string;
  /** The unit the list was scrubbed for; `*`: account-wide suppressions only. */
  unit: string;
  type: SendType;
  column: string;
  delimiter: string;
  /** The eligible file, as given. */
  out: string;
  /** The removed file, as given, or null. */
  removed: string | null;
  /** Decoded bytes of CSV read. */
  bytes: number;
  /** Cells rejected because their bytes were not valid in the input encoding (counted in `invalid`). */
  invalidUtf8: number;
  peakRssBytes: number;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** A readable summary for terminals. */
export function formatScrubSummary(r: ScrubReport): string {
  const scope = r.unit === '*' ? 'account-wide suppressions' : `unit ${r.unit} and account-wide suppressions`;
  const lines = [
    `Scrubbed ${r.source} against ${scope} (${r.type})`,
    `  email column      ${r.column} (delimiter ${r.delimiter === '\t' ? 'tab' : r.delimiter})`,
    `  rows              ${fmt(r.rows)}`,
    `  eligible          ${fmt(r.eligible)} -> ${r.out}`,
  ];
  if (r.legalBasis > 0) lines.push(`    on legal basis  ${fmt(r.legalBasis)} (suppressed; one-to-one allowed, recorded)`);
  lines.push(
    `  suppressed        ${fmt(r.suppressed)}`,
    `  invalid           ${fmt(r.invalid)}`,
  );
  if (r.removed !== null) lines.push(`  removed rows      ${fmt(r.suppressed + r.invalid)} -> ${r.removed}`);
  lines.push(`  time              ${(r.durationMs / 1000).toFixed(2)} s (${fmt(r.rowsPerSecond)} rows/s)`);
  if (r.invalidUtf8 > 0) {
    lines.push(`  note: ${fmt(r.invalidUtf8)} cells were not valid UTF-8; if the file is Latin-1 or Windows-1252, pass --encoding latin1`);
  }
  return lines.join('\n');
}
