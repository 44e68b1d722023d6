/**
 * One way to write a CSV cell, for every file optout writes (the export, the rejects file):
 * RFC 4180 quoting, and for files a person opens in a spreadsheet, formulas neutralised and
 * control characters made visible.
 *
 * A cell that starts with `=`, `+`, `-`, `@`, a tab or a CR is run as a formula by Excel, LibreOffice
 * and Google Sheets (CSV injection: `=HYPERLINK(...)` in a partner's list). Prefixing `'` makes
 * them show it as text; the prefix stays in the file, so such a file is for reading, not for
 * re-import.
 */

export interface CsvCellOptions {
  /** Prefix formula-like cells with `'`. @default false */
  spreadsheetSafe?: boolean;
  /**
   * Show C0 control characters and DEL as `\xNN` (a raw NUL or escape sequence from a broken
   * list would otherwise reach the reader's terminal or spreadsheet). @default false
   */
  escapeControls?: boolean;
}

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/;
// Tab, LF and CR stay: quoting keeps them inside the cell, and a reader shows them as such.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

export function csvCell(value: string, o: CsvCellOptions = {}): string {
  let v = o.escapeControls === true ? value.replace(CONTROL, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0')) : value;
  if (o.spreadsheetSafe === true && FORMULA_START.test(v)) v = "'" + v;
  return NEEDS_QUOTES.test(v) ? '"' + v.replaceAll('"', '""') + '"' : v;
}
