/**
 * Export of the list, streamed from the ledger's entry scan: rows are formatted a batch at a time
 * and handed to a consumer with backpressure, so memory stays flat whatever the list's size.
 */
import { OptoutError, describeValue } from '../errors.js';
import { csvCell } from '../report/csv-cell.js';
import { normalizeReason, normalizeUnit } from '../options.js';
import { entryMetaOf, JobMetas } from '../store/jobs.js';
import { ACCOUNT_WIDE, type Ledger } from '../store/store.js';

export type ExportFormat = 'csv' | 'ndjson';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['csv', 'ndjson'];
export const EXPORT_COLUMNS = ['email', 'key', 'unit', 'reason', 'source', 'job', 'added_at'] as const;

export interface ExportRow {
  email: string;
  key: string;
  /** Business unit; empty for account-wide. */
  unit: string;
  reason: string;
  source: string;
  job: string;
  added_at: string;
}

export interface ExportOptions {
  /** One unit's entries, or `*` for the account-wide ones only. @default every scope */
  unit?: string | undefined;
  /** Only entries of this reason. @default every reason */
  reason?: string | undefined;
  /** @default 'csv' */
  format?: ExportFormat | undefined;
  /**
   * Prefixes cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
   * tab or CR) with `'`. Such a file is for reading, not for re-import: the prefix is kept.
   * @default false
   */
  spreadsheetSafe?: boolean | undefined;
}

/** Export options checked and filled in: what {@link exportText} runs with. */
export interface NormalizedExportOptions {
  /** A normalized unit, `*`, or undefined for every scope. */
  unit: string | undefined;
  reason: string | undefined;
  format: ExportFormat;
  spreadsheetSafe: boolean;
}

/**
 * Checks every export option at once, so that a caller that streams the export (the HTTP API)
 * can refuse a bad option before the first byte rather than cut the stream after it.
 */
export function normalizeExportOptions(o: ExportOptions = {}): NormalizedExportOptions {
  const format = o.format ?? 'csv';
  if (!EXPORT_FORMATS.includes(format)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`format\` to be one of ${EXPORT_FORMATS.join(', ')}, got ${describeValue(o.format)}`);
  }
  return {
    unit: o.unit === undefined || o.unit === ACCOUNT_WIDE ? o.unit : normalizeUnit(o.unit),
    reason: o.reason === undefined ? undefined : normalizeReason(o.reason),
    format,
    spreadsheetSafe: o.spreadsheetSafe === true,
  };
}

/** The entries, in store order (scope, then hash), with their job's metadata. */
export async function* exportRows(store: Pick<Ledger, 'scanEntries' | 'getJob'>, o: Pick<ExportOptions, 'unit' | 'reason'> = {}): AsyncGenerator<ExportRow[]> {
  const { unit: scope, reason } = normalizeExportOptions({ unit: o.unit, reason: o.reason });
  const jobs = new JobMetas(store);
  for await (const entries of store.scanEntries(scope)) {
    const rows: ExportRow[] = [];
    for (const entry of entries) {
      const { scope: s, key, jobId, address } = entry;
      const meta = entryMetaOf(entry, await jobs.get(jobId));
      if (reason !== undefined && meta.reason !== reason) continue;
      rows.push({ email: address ?? key, key, unit: s === ACCOUNT_WIDE ? '' : s, reason: meta.reason, source: meta.source, job: jobId, added_at: meta.addedAt });
    }
    if (rows.length > 0) yield rows;
  }
}

/** The export as text pieces (the CSV header first), ready to be written to a file or a response. */
export async function* exportText(store: Pick<Ledger, 'scanEntries' | 'getJob'>, o: ExportOptions = {}): AsyncGenerator<string> {
  const n = normalizeExportOptions(o);
  const format = n.format;
  const cell = { spreadsheetSafe: n.spreadsheetSafe };
  if (format === 'csv') yield EXPORT_COLUMNS.join(',') + '\n';
  for await (const rows of exportRows(store, n)) {
    let text = '';
    for (const r of rows) {
      text += format === 'ndjson'
        ? JSON.stringify(r) + '\n'
        : EXPORT_COLUMNS.map((c) => csvCell(r[c], cell)).join(',') + '\n';
    }
    yield text;
  }
}
