import { OptoutError, describeValue } from '../errors.js';

/** How a file's records are written. Line breaks need no entry: LF, CRLF and CR all end a record (see extract.ts). */
export interface Dialect {
  /** One character: `,` `;` `\t` or `|`. */
  delimiter: string;
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
 * Empty lines before the header line are passed over, as the header reader passes over them.
 *
 * @param overrideDelimiter the user's `--delimiter`: `,` `;` `|`, `tab`, `\t` (backslash, t) or
 *   a literal tab.
 */
export function detectDialect(head: Uint8Array, overrideDelimiter?: string): Dialect {
  if (overrideDelimiter !== undefined) {
    return { delimiter: parseDelimiterOption(overrideDelimiter) };
  }
  let best: string = ',';
  let bestCount = 0;
  for (const candidate of CANDIDATES) {
    const count = countOnHeaderLine(head, candidate.charCodeAt(0));
    if (count > bestCount) {
      best = candidate;
      bestCount = count;
    }
  }
  return { delimiter: best };
}

function parseDelimiterOption(value: string): string {
  if (value === ',' || value === ';' || value === '|') return value;
  if (value === '\t' || value === '\\t' || value.toLowerCase() === 'tab') return '\t';
  throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
    `Expected \`delimiter\` to be one of \`,\` \`;\` \`|\` \`tab\`, got ${describeValue(value)}`);
}

/**
 * Counts `delim` outside quotes on the first line that is not empty, with the same quoting rules
 * as the extractor (a quote opens a field only at field start, `""` inside quotes is a literal
 * quote). Never throws: a broken header is reported later by readHeader.
 */
function countOnHeaderLine(head: Uint8Array, delim: number): number {
  const n = head.length;
  let count = 0;
  let p = 0;
  while (p < n && (head[p] === LF || head[p] === CR)) p++;
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
    } else if (c === LF || c === CR) {
      return count;
    } else {
      fieldStart = false;
    }
    p++;
  }
  return count;
}
