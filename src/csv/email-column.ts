import { OptoutError } from '../errors.js';
import { normalizeEmail } from '../policy/email.js';
import { ambiguousColumns, matchEmailHeader, noEmailColumn, pickEmailColumn } from './header.js';

/** Cells per column that content detection reads: the first this many non-empty ones. */
export const SAMPLE_CELLS = 1000;
/** Share of those cells that must pass the address policy for a column to be the email column. */
export const CONTENT_SHARE = 0.9;

export interface EmailColumnOptions {
  /** The user's `--column`: a header name or a 1-based index. */
  column?: string | undefined;
  /** `true`: the first record is a header (`--header`); `false`: it is data (`--no-header`); unset: detected. */
  header?: boolean | undefined;
}

export interface EmailColumn {
  /** 0-based index of the email column. */
  index: number;
  /** Whether the first record is a header; when not, it is imported as data. */
  header: boolean;
  /** What chose the column. */
  by: 'option' | 'header' | 'content';
}

/** A cell that is an address under the policy (the cheap test first: most cells hold no `@`). */
function isAddress(cell: string | undefined): boolean {
  return cell !== undefined && cell.includes('@') && normalizeEmail(cell).valid;
}

/**
 * The columns where at least {@link CONTENT_SHARE} of the first {@link SAMPLE_CELLS} non-empty
 * cells are addresses. A column with no non-empty cell is none.
 */
export function addressColumns(rows: readonly string[][], width: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < width; c++) {
    let cells = 0;
    let passed = 0;
    for (const row of rows) {
      const cell = row[c];
      if (cell === undefined || cell.trim() === '') continue;
      cells++;
      if (isAddress(cell)) passed++;
      if (cells === SAMPLE_CELLS) break;
    }
    if (cells > 0 && passed >= CONTENT_SHARE * cells) out.push(c);
  }
  return out;
}

/**
 * Finds the email column, in this order: `--column`; a header name (see header.ts; a weak name
 * only when its cells are addresses); then content, the one column whose sampled cells are
 * addresses. Then whether the first record is a header: not when its cell in that column is
 * itself an address (that line is data, and is imported), unless `--header` says it is.
 *
 * @param first the first record's fields (the would-be header).
 * @param sample the records after it, read ahead and bounded; only called when needed.
 * @throws OptoutError OPTOUT_ERR_NO_EMAIL_COLUMN, OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN (several
 *   columns of addresses, listed), OPTOUT_ERR_COLUMN_NOT_FOUND.
 */
export async function chooseEmailColumn(first: string[], sample: () => Promise<string[][]>,
  o: EmailColumnOptions): Promise<EmailColumn> {
  const headerless = (index: number): boolean => o.header === false || (o.header === undefined && isAddress(first[index]));
  if (o.header === false) {
    if (o.column !== undefined && !/^\d+$/.test(o.column)) {
      throw new OptoutError('OPTOUT_ERR_COLUMN_NOT_FOUND',
        `The file has no header (--no-header): pass --column with the number of the email column, not a name`,
        { location: { line: 1, column: o.column } });
    }
  }
  if (o.column !== undefined) {
    const index = pickEmailColumn(first, o.column);
    // A name given by the user that matched the first record makes that record a header.
    return { index, header: /^\d+$/.test(o.column) ? !headerless(index) : true, by: 'option' };
  }
  if (o.header !== false) {
    const named = matchEmailHeader(first);
    if (named !== undefined && !named.weak) return { index: named.index, header: true, by: 'header' };
    if (named !== undefined && addressColumns(await sample(), first.length).includes(named.index)) {
      return { index: named.index, header: true, by: 'header' };
    }
  }
  const rest = await sample();
  // The first record is a header or data: judged on the rows after it, it cannot tip the share.
  // A file of one line has nothing else to judge.
  const rows = o.header === false ? [first, ...rest] : rest.length > 0 ? rest : [first];
  const width = rows.reduce((w, r) => Math.max(w, r.length), first.length);
  const found = addressColumns(rows, width);
  const names = o.header === false ? first.map((_, i) => String(i + 1)) : first;
  if (found.length === 0) {
    throw noEmailColumn(names, `, and no column holds addresses in ${Math.round(CONTENT_SHARE * 100)}% of its first ` +
      `${SAMPLE_CELLS.toLocaleString('en-US')} non-empty cells`);
  }
  if (found.length > 1) throw ambiguousColumns(names, found, 'Several columns hold email addresses');
  const index = found[0] as number;
  return { index, header: !headerless(index), by: 'content' };
}
