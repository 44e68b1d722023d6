import { printable } from './printable.js';
import type { ImportCounts } from '../store/counts.js';
import type { JobError, SuppressionReason } from '../store/jobs.js';

/** One member of an archive whose lists were imported together (a Mailchimp audience export). */
export interface MemberReport extends ImportCounts {
  name: string;
  format: string;
  /** The reason of its rows without their own; null for a member of subscribed contacts. */
  reason: string | null;
  /** The job that wrote it; null when nothing was written (a dry run, subscribed contacts). */
  jobId: string | null;
  /** A list of subscribed contacts: read and counted, every row skipped. */
  subscribed: boolean;
}

/** The report of one `optout import`, in the shape `--json` prints. */
export interface ImportReport extends ImportCounts {
  durationMs: number;
  rowsPerSecond: number;
  /** The job that wrote the entries; null when nothing was written. */
  jobId: string | null;
  /** Whether the entries were written (confirmed by --yes, a matching count, or an answer). */
  confirmed: boolean;
  dryRun: boolean;
  /** Set when the count given with --confirm or typed at the prompt did not match `unique`. */
  expectedCount: number | null;
  /** The run continued an interrupted job from its checkpoint. */
  resumed: boolean;
  source: string;
  /** `*` for account-wide, else the business unit. */
  scope: string;
  reason: string;
  /** The email column's header name, or its 1-based number in a file without a header. */
  column: string;
  /** `csv`, or the export recognised by its header (`hubspot-contacts`, `mailchimp-cleaned`...). */
  format: string;
  /** The ZIP archive's member that was read; null for a source that is not a ZIP archive. */
  member: string | null;
  /** Which rows were skipped as not opted out, e.g. `Unsubscribed from all email is false or no`; null: none are. */
  skipRule: string | null;
  /** The column giving each row's own reason (`--reason-column`, or a recognised export's); null: none. */
  reasonColumn: string | null;
  /**
   * Valid rows per reason: a row's own reason when its reason column gives one, else the import's
   * `reason`. Counted over valid rows (duplicates and addresses already suppressed included), so
   * the counts add up to `valid`; reasons without rows are left out.
   */
  reasons: Partial<Record<SuppressionReason, number>>;
  /** `row`: the first record is a header; `none`: it is data, and was imported. */
  header: 'row' | 'none';
  delimiter: string;
  /**
   * Each member of an archive imported whole (a Mailchimp audience export), one job each; the
   * counts above add theirs up. Null for any other source.
   */
  members: MemberReport[] | null;
  /** Decoded bytes of CSV read. */
  bytes: number;
  /** Cells rejected because their bytes were not valid in the input encoding. */
  invalidUtf8: number;
  rejectsFile: string | null;
  peakRssBytes: number;
  /**
   * A broken record (`OPTOUT_ERR_CSV_PARSE`, `OPTOUT_ERR_RECORD_TOO_LARGE`) that ended the
   * reading: the counts cover the rows before it, which a confirmed import writes.
   */
  error: JobError | null;
}

const fmt = (n: number): string => n.toLocaleString('en-US');

/** A readable summary for terminals. */
export function formatSummary(r: ImportReport): string {
  const scope = r.scope === '*' ? 'account-wide' : `unit ${r.scope}`;
  const lines = [
    `${r.dryRun ? 'Dry run of' : r.confirmed ? 'Imported' : 'Analysed (nothing written)'} ${printable(r.source, 80)}` +
      `${r.member === null ? '' : `: ${printable(r.member, 80)}`}${r.format === 'csv' ? '' : ` (${r.format})`} -> ${scope}, reason ${r.reason}` +
      (r.jobId ? `, job ${r.jobId}` : '') + (r.resumed ? ' (resumed)' : ''),
    `  email column      ${r.header === 'none' ? `${r.column} (no header row, ` : `${printable(r.column, 64)} (`}delimiter ` +
      `${r.delimiter === '\t' ? 'tab' : r.delimiter})`,
    `  rows              ${fmt(r.rows)}`,
    `  valid             ${fmt(r.valid)}`,
    `  invalid           ${fmt(r.invalid)}` + (r.rejectsFile ? ` (see ${r.rejectsFile})` : ''),
    ...(r.skipRule === null ? [] : [`  skipped           ${fmt(r.skipped)} not opted out (${printable(r.skipRule, 120)})`]),
    ...(r.reasonColumn === null ? [] : [`  reasons           ${Object.entries(r.reasons).map(([k, n]) => `${k} ${fmt(n)}`).join(', ') || 'none'}` +
      ` (column ${printable(r.reasonColumn, 64)})`]),
    `  duplicates        ${fmt(r.duplicates)}`,
    `  unique            ${fmt(r.unique)}`,
    `  already suppressed ${fmt(r.alreadySuppressed)}`,
    `  ${r.confirmed ? 'added            ' : 'would add        '} ${fmt(r.added)}`,
    `  time              ${(r.durationMs / 1000).toFixed(2)} s (${fmt(Math.round(r.rowsPerSecond))} rows/s)`,
  ];
  for (const m of r.members ?? []) {
    lines.push(m.subscribed ? `  member ${printable(m.name, 80)}: ${fmt(m.rows)} subscribed contacts, skipped`
      : `  member ${printable(m.name, 80)} (${m.format}, ${m.reason ?? ''}${m.jobId === null ? '' : `, job ${m.jobId}`}): ` +
        `rows ${fmt(m.rows)}, unique ${fmt(m.unique)}, ${r.confirmed ? 'added' : 'would add'} ${fmt(m.added)}`);
  }
  if (r.invalidUtf8 > 0) {
    lines.push(`  note: ${fmt(r.invalidUtf8)} cells were not valid UTF-8; if the file is Latin-1 or Windows-1252, pass --encoding latin1`);
  }
  if (r.error !== null) {
    lines.push(`  stopped at        ${r.error.line === undefined ? 'a broken record' : `line ${fmt(r.error.line)}`}: ${r.error.message} [${r.error.code}]`,
      '                    the counts cover the rows before it; an import writes those, then fails');
  }
  if (r.expectedCount !== null) {
    lines.push(`  not confirmed: ${fmt(r.expectedCount)} was given, the list has ${fmt(r.unique)} unique addresses; nothing was written`);
  }
  return lines.join('\n');
}
