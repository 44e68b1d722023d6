import { OptoutError, describeValue } from '../errors.js';

/**
 * How records end. `'lf'`: LF or CRLF (a lone CR is an ordinary character). `'cr'`: CR,
 * the line ending of old Mac exports (an LF is then an ordinary character).
 */
export type Eol = 'lf' | 'cr';

export interface Dialect {
  /** One character: `,` `;` `\t` or `|`. */
  delimiter: string;
  eol: Eol;
}

/** Candidates in tie-break order: on equal counts the earlier one wins. */
const CANDIDATES = [',', ';', '\t', '|'] as const;

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/**
 * Guesses the dialect from the first bytes of a file (BOM already stripped).
 *
 * The delimiter is the candidate that occurs most often outside quotes on the header line (ties
 * go to `,` then `;` then tab then `|`); a header with none of them is a one-column file and gets
 * `,`. Each candidate is counted with its own quoting (a quote opens a field only right after
 * that candidate or at the line start), so a quoted header like `"Name, full";Email` is read as
 * two `;`-separated fields rather than as having one comma.
 *
 * The line ending is `'cr'` only when the first line break outside quotes is a CR that is not
 * followed by an LF. A CR that is the very last byte of `head` counts as a lone CR: `head` is
 * expected to hold more than the header line whenever the file does.
 *
 * @param overrideDelimiter the user's `--delimiter`: `,` `;` `|`, `tab`, `\t` (backslash, t) or
 *   a literal tab.
 */
export function detectDialect(head: Uint8Array, overrideDelimiter?: string): Dialect {
  if (overrideDelimiter !== undefined) {
    const delimiter = parseDelimiterOption(overrideDelimiter);
    return { delimiter, eol: scanHeaderLine(head, delimiter.charCodeAt(0)).eol };
  }
  let best: string = ',';
  let bestCount = 0;
  let bestEol: Eol = 'lf';
  let commaEol: Eol = 'lf';
  for (const candidate of CANDIDATES) {
    const { count, eol } = scanHeaderLine(head, candidate.charCodeAt(0));
    if (candidate === ',') commaEol = eol;
    if (count > bestCount) {
      best = candidate;
      bestCount = count;
      bestEol = eol;
    }
  }
  return { delimiter: best, eol: bestCount === 0 ? commaEol : bestEol };
}

function parseDelimiterOption(value: string): string {
  if (value === ',' || value === ';' || value === '|') return value;
  if (value === '\t' || value === '\\t' || value.toLowerCase() === 'tab') return '\t';
  throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
    `Expected \`delimiter\` to be one of \`,\` \`;\` \`|\` \`tab\`, got ${describeValue(value)}`);
}

/**
 * Counts `delim` outside quotes on the first line and finds how that line ends, with the same
 * quoting rules as the extractor (a quote opens a field only at field start, `""` inside quotes
 * is a literal quote). Never throws: a broken header is reported later by readHeader.
 */
function scanHeaderLine(head: Uint8Array, delim: number): { count: number; eol: Eol } {
  const n = head.length;
  let count = 0;
  let p = 0;
  let fieldStart = true;
  while (p < n) {
    const c = head[p] as number;
    if (fieldStart && c === QUOTE) {
      p++;
      while (p < n) {
        if (head[p] === QUOTE) {
          if (head[p + 1] === QUOTE) p += 2;
          else break;
        } else {
          p++;
        }
      }
      p++;
      fieldStart = false;
      continue;
    }
    if (c === delim) {
      count++;
      fieldStart = true;
    } else if (c === LF) {
      return { count, eol: 'lf' };
    } else if (c === CR) {
      return { count, eol: head[p + 1] === LF ? 'lf' : 'cr' };
    } else {
      fieldStart = false;
    }
    p++;
  }
  return { count, eol: 'lf' };
}
