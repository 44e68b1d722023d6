import { OptoutError } from '../errors.js';
import { printable } from '../report/printable.js';
import type { Dialect } from './dialect.js';
import { extractColumn, type ExtractOptions } from './extract.js';

const QUOTE = 0x22;

export interface HeaderInfo {
  /** Field names as written (quoting removed, not trimmed). */
  names: string[];
  /** Bytes from the start of `buf` to the first data byte: leading empty lines, the header record and its line break. */
  byteLength: number;
  /** Physical lines those bytes span: data starts on line `lines + 1` (1-based). */
  lines: number;
}

/**
 * Reads the header record at the start of `buf` (BOM already stripped), with the same dialect as
 * the data (see extract.ts). extractColumn finds and validates the record, so that the header
 * and the data can never disagree on where a record ends or what is broken; the names are then
 * split out of the validated bytes in one linear pass. Empty lines before it are skipped.
 *
 * @returns `undefined` when `buf` does not hold the whole record yet and more bytes may come.
 * @throws OptoutError OPTOUT_ERR_CSV_PARSE for an empty file or a broken quote,
 *   OPTOUT_ERR_RECORD_TOO_LARGE for a header over `maxRecordBytes`; `location.line` is 1-based.
 */
export function readHeader(buf: Uint8Array, dialect: Dialect, maxRecordBytes: number,
  final: boolean): HeaderInfo | undefined {
  const delimiter = dialect.delimiter.charCodeAt(0);
  const opts: ExtractOptions = { delimiter, column: 0, maxRecordBytes, final };
  let start = 0;
  let end = 0;
  let next = 0;
  const first = extractColumn(buf, 0, buf.length, opts, (_value, _line, recordStart, recordEnd, recordNext) => {
    start = recordStart;
    end = recordEnd;
    next = recordNext;
  }, 1);
  if (first.error) {
    const e = first.error;
    const where = e.column === undefined ? { line: e.line + 1 } : { line: e.line + 1, column: e.column };
    throw new OptoutError(e.code, `Broken CSV header at line ${e.line + 1}: ${e.detail}`, { location: where });
  }
  if (first.records === 0) {
    if (!final) return undefined;
    throw new OptoutError('OPTOUT_ERR_CSV_PARSE', 'The file is empty: expected a header row', { location: { line: 1 } });
  }
  // Without a line break (a header-only file) the record still occupies a line.
  const terminated = next > end;
  return { names: splitFields(buf, start, end, delimiter), byteLength: first.consumed, lines: first.lines + (terminated ? 0 : 1) };
}

/**
 * The records of `buf` as arrays of fields, up to `max`, for sampling (column detection): stops
 * quietly at an incomplete or broken record, which the import itself reports where it is.
 */
export function readRecords(buf: Uint8Array, dialect: Dialect, maxRecordBytes: number, final: boolean, max: number): string[][] {
  const delimiter = dialect.delimiter.charCodeAt(0);
  const records: string[][] = [];
  extractColumn(buf, 0, buf.length, { delimiter, column: 0, maxRecordBytes, final }, (_value, _line, start, end) => {
    records.push(splitFields(buf, start, end, delimiter));
  }, max);
  return records;
}

/** Splits one record that extractColumn has already accepted: no error can remain in it. */
function splitFields(buf: Uint8Array, start: number, end: number, delimiter: number): string[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const names: string[] = [];
  let p = start;
  for (;;) {
    if (p < end && b[p] === QUOTE) {
      const s = ++p;
      let escaped = false;
      while (p < end) {
        if (b[p] === QUOTE) {
          if (p + 1 < end && b[p + 1] === QUOTE) {
            escaped = true;
            p += 2;
            continue;
          }
          break;
        }
        p++;
      }
      const value = b.toString('utf8', s, p);
      names.push(escaped ? value.replaceAll('""', '"') : value);
      p++;
    } else {
      const s = p;
      while (p < end && b[p] !== delimiter) p++;
      names.push(b.toString('utf8', s, p));
    }
    if (p >= end) return names;
    p++;
  }
}

/**
 * Header names that auto-detection takes for the email column, compared after {@link headerKey},
 * in tiers: the first tier with a match decides (one match: that column; several: ambiguous), so
 * that `Email` beside `Work Email` is the email column, and `Primary Email` beside `Work Email`.
 *
 * Tier 1 is "email address" in the languages exports come in (English, German, French, Spanish,
 * Portuguese, Italian, Dutch, the Nordic languages, Polish, Czech, Hungarian, Romanian, Turkish),
 * accented and typed without accents; tier 2 the primary address of a contacts export; tier 3 the
 * other qualified addresses.
 */
export const EMAIL_HEADER_TIERS: readonly (readonly string[])[] = [
  ['email', 'mail', 'emailaddress', 'mailaddress', 'emailaddr', 'emailadresse', 'mailadresse', 'epost', 'epostadresse',
    'epostadress', 'eposta', 'epostaadresi', 'courriel', 'adresseemail', 'adressemail', 'adressecourriel',
    'adresseélectronique', 'adresseelectronique', 'correo', 'correoelectronico', 'correoelectrónico', 'direcciondecorreo',
    'direccióndecorreo', 'direcciondecorreoelectronico', 'direccióndecorreoelectrónico', 'direcciondeemail',
    'direccióndeemail', 'enderecodeemail', 'endereçodeemail', 'correioeletronico', 'correioeletrônico', 'indirizzoemail',
    'indirizzomail', 'postaelettronica', 'indirizzodipostaelettronica', 'emailadres', 'mailadres', 'mejladress',
    'sähköposti', 'sahkoposti', 'sähköpostiosoite', 'sahkopostiosoite', 'adresemail', 'emailováadresa',
    'emailovaadresa', 'emailcím', 'emailcim', 'adresadeemail', 'adresădeemail'],
  ['primaryemail', 'primaryemailaddress', 'emailprimary'],
  ['workemail', 'businessemail', 'personalemail', 'homeemail', 'contactemail', 'subscriberemail', 'recipientemail',
    'workemailaddress', 'businessemailaddress', 'personalemailaddress', 'contactemailaddress', 'subscriberemailaddress',
    'recipientemailaddress', 'useremail', 'customeremail'],
];

/**
 * Names that are an email column in some providers' exports and something else in others
 * (Mailgun's `address` and `recipient`; a postal address elsewhere): taken only when no tier
 * matches and the column's cells are addresses (see email-column.ts).
 */
export const WEAK_EMAIL_HEADER_NAMES: readonly string[] = ['address', 'recipient', 'to'];

/** Every name of {@link EMAIL_HEADER_TIERS}, in tier order. */
export const EMAIL_HEADER_NAMES: readonly string[] = EMAIL_HEADER_TIERS.flat();

/**
 * The comparison form of a header name: trimmed, lower-cased, without white space, `-` or `_`.
 * Accents are kept, and the accented forms are listed beside the plain ones: folding accents
 * would make the match depend on a transliteration table and could pick a column nobody meant.
 */
export function headerKey(name: string): string {
  return name.trim().normalize('NFC').toLowerCase().replace(/[\s_-]+/gu, '');
}

/**
 * The email column by header name: the one match of the first tier that has any, `weak` when
 * only a {@link WEAK_EMAIL_HEADER_NAMES} name matched, `undefined` when none did.
 *
 * @throws OptoutError OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN for several matches in one tier.
 */
export function matchEmailHeader(names: string[]): { index: number; weak: boolean } | undefined {
  for (const [tier, weak] of [...EMAIL_HEADER_TIERS.map((t) => [t, false] as const), [WEAK_EMAIL_HEADER_NAMES, true] as const]) {
    const hits = indexesWhere(names, (name) => tier.includes(headerKey(name)));
    if (hits.length === 1) return { index: hits[0] as number, weak };
    if (hits.length > 1) throw ambiguousColumns(names, hits, 'Several headers look like an email column');
  }
  return undefined;
}

/** OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN naming the candidates. */
export function ambiguousColumns(names: string[], hits: number[], what: string): OptoutError {
  return new OptoutError('OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN',
    `${what}: ${listHeaders(names, hits)}. Pass --column with the name or the number of the one to import.`,
    { location: { line: 1 } });
}

/** OPTOUT_ERR_NO_EMAIL_COLUMN listing the headers; `more` says what else was tried. */
export function noEmailColumn(names: string[], more = ''): OptoutError {
  return new OptoutError('OPTOUT_ERR_NO_EMAIL_COLUMN',
    `No header looks like an email column (${EMAIL_HEADER_TIERS[0]?.slice(0, 8).join(', ')}, ... in ${EMAIL_HEADER_NAMES.length} ` +
    `spellings)${more}. The header has: ${listHeaders(names)}. Pass --column with the name or the number of the email ` +
    `column.${utf16Hint(names)}`, { location: { line: 1 } });
}

/**
 * The 0-based index of the email column.
 *
 * `column` (the user's `--column`): all digits means a 1-based index; anything else is a header
 * name, matched exactly first, then trimmed and case-insensitively. Without it, the header
 * {@link matchEmailHeader} finds, a weak name included.
 *
 * @throws OptoutError OPTOUT_ERR_NO_EMAIL_COLUMN, OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN (several
 *   candidates, also for a name given twice in the header), OPTOUT_ERR_COLUMN_NOT_FOUND.
 */
export function pickEmailColumn(names: string[], column?: string): number {
  if (column !== undefined) {
    if (/^\d+$/.test(column)) {
      const n = Number(column);
      if (n >= 1 && n <= names.length) return n - 1;
      throw new OptoutError('OPTOUT_ERR_COLUMN_NOT_FOUND',
        `Column ${column} is out of range: the header has ${names.length} column${names.length === 1 ? '' : 's'} ` +
        `(${listHeaders(names)}). Pass --column with a number from 1 to ${names.length} or a header name.`,
        { location: { line: 1, column: n } });
    }
    let hits = indexesWhere(names, (name) => name === column);
    if (hits.length === 0) {
      const wanted = column.trim().toLowerCase();
      hits = indexesWhere(names, (name) => name.trim().toLowerCase() === wanted);
    }
    if (hits.length === 1) return hits[0] as number;
    if (hits.length === 0) {
      throw new OptoutError('OPTOUT_ERR_COLUMN_NOT_FOUND',
        `No header is named \`${printable(column, 64)}\`. The header has: ${listHeaders(names)}. ` +
        'Pass --column with one of these names or its number.', { location: { line: 1, column } });
    }
    throw new OptoutError('OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN',
      `Several headers match \`${printable(column, 64)}\`: ${listHeaders(names, hits)}. Pass --column with the column number.`,
      { location: { line: 1 } });
  }
  const found = matchEmailHeader(names);
  if (found === undefined) throw noEmailColumn(names);
  return found.index;
}

function indexesWhere(names: string[], test: (name: string) => boolean): number[] {
  const out: number[] = [];
  names.forEach((name, i) => {
    if (test(name)) out.push(i);
  });
  return out;
}

const LISTED_HEADERS = 20;

/**
 * `1 \`id\`, 2 \`E-post\``: 1-based numbers, as --column takes them. Printable and bounded: a
 * binary file's "header" can hold NULs, escape sequences and thousands of fields.
 */
function listHeaders(names: string[], only?: number[]): string {
  const shown = only ?? names.map((_, i) => i);
  if (shown.length === 0) return '(no columns)';
  const listed = shown.slice(0, LISTED_HEADERS).map((i) => `${i + 1} \`${printable(names[i] ?? '', 64)}\``).join(', ');
  return shown.length > LISTED_HEADERS ? `${listed} and ${shown.length - LISTED_HEADERS} more` : listed;
}

/** UTF-16 read as UTF-8 has a NUL beside every ASCII character: say which option reads it. */
function utf16Hint(names: string[]): string {
  const text = names.join('');
  let nuls = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0) nuls++;
  return text.length >= 4 && nuls * 3 >= text.length
    ? ` The header looks like UTF-16 without a byte-order mark: try --encoding ${text.charCodeAt(0) === 0 ? 'utf16be' : 'utf16le'}.`
    : '';
}
