import type { CheckOptions, Checker } from '../check/checker.js';
import { extractColumn } from '../csv/extract.js';
import { OptoutError } from '../errors.js';
import type { Scanned } from '../pipeline/scan.js';
import type { HeaderRecord } from '../source/chunks.js';
import type { HashedKey } from '../store/store.js';
import type { ScrubResult } from '../workers/scrub-task.js';

/** The columns the removed file adds after the list's own. */
export const REMOVED_COLUMNS = ['optout_reason', 'optout_detail'] as const;

/**
 * Why a row was removed (`optout_reason`): `suppressed` (`optout_detail`: the scope of the
 * suppression, `*` for account-wide or the unit id) or `invalid_address` (`optout_detail`: the
 * reason code, as in import rejects).
 */
export type RemovedReason = 'suppressed' | 'invalid_address';

export interface ScrubCounts {
  /** Data rows read: eligible + suppressed + invalid. */
  rows: number;
  /** Rows written to the eligible file (legal-basis rows included). */
  eligible: number;
  suppressed: number;
  invalid: number;
  /** Eligible rows that are suppressed but may be sent one-to-one on the legal basis given. */
  legalBasis: number;
}

/** The header lines of both output files. */
export interface OutputHeaders {
  eligible: Buffer;
  removed: Buffer;
  /** The line break given to a removed row that has none (the last row of a file without a final line break). */
  lineBreak: Buffer;
}

/**
 * The header record as written, for the eligible file, and with the two added columns for the
 * removed file. Empty lines before it are left out; its line break is kept as it was.
 */
export function outputHeaders(header: HeaderRecord): OutputHeaders {
  const raw = header.bytes;
  const d = header.dialect.delimiter;
  // The extractor already read these bytes as the header record: ask it where the record is.
  let start = 0;
  let end = raw.length;
  extractColumn(raw, 0, raw.length, { delimiter: d.charCodeAt(0), column: 0, maxRecordBytes: raw.length, final: true },
    (_value, _line, recordStart, recordEnd) => {
      start = recordStart;
      end = recordEnd;
    }, 1);
  const own = raw.subarray(end);
  const lineBreak = own.length > 0 ? own : Buffer.from('\n');
  return {
    eligible: raw.subarray(start),
    removed: Buffer.concat([raw.subarray(start, end), Buffer.from(d + REMOVED_COLUMNS.join(d)), own]),
    lineBreak,
  };
}

/** The keys of a chunk's valid rows, with their hashes: what a ledger without local lookups is asked first. */
export function keysOfChunk(result: ScrubResult): HashedKey[] {
  const { keys, keyEnds, hashes } = result;
  const out: HashedKey[] = [];
  let keyStart = 0;
  for (let i = 0; i < result.records; i++) {
    const keyEnd = keyEnds[i] as number;
    if (keyEnd === keyStart) continue;
    out.push({ key: keys.slice(keyStart, keyEnd), h1: hashes[i * 2] as number, h2: hashes[i * 2 + 1] as number });
    keyStart = keyEnd;
  }
  return out;
}

/** What one chunk gives each output file, and the legal-basis decisions to record before. */
export interface SortedChunk {
  eligible: Buffer;
  removed: Buffer | undefined;
  legalBasisKeys: string[];
}

/**
 * Decides every row of a scanned chunk with the checker, the way `optout check` decides one
 * address, and sorts the rows' original bytes into the eligible and the removed output. Runs of
 * adjacent eligible rows are copied as one piece. Anything but an eligible decision or a
 * suppression (a store that cannot answer) throws: no row is let through on doubt.
 */
export class RowSorter {
  readonly counts: ScrubCounts = { rows: 0, eligible: 0, suppressed: 0, invalid: 0, legalBasis: 0 };
  readonly #checker: Checker;
  readonly #options: CheckOptions;
  readonly #headers: OutputHeaders;
  readonly #withRemoved: boolean;
  readonly #delimiter: string;
  readonly #headerFields: number;
  /** `<d>reason<d>detail` per distinct pair and padding: there are only a few. */
  readonly #suffixes = new Map<string, Buffer>();

  /**
   * @param header the list's header: its delimiter, and its number of fields, to which a removed
   *   row with fewer fields is padded so that the added columns line up.
   */
  constructor(checker: Checker, options: CheckOptions, header: HeaderRecord, withRemoved: boolean) {
    this.#checker = checker;
    this.#options = options;
    this.#headers = outputHeaders(header);
    this.#delimiter = header.dialect.delimiter;
    this.#headerFields = header.names.length;
    this.#withRemoved = withRemoved;
  }

  /** The header lines of both output files. */
  get headers(): OutputHeaders {
    return this.#headers;
  }

  sort(chunk: Scanned<ScrubResult>): SortedChunk {
    const { spans, fields, keys, keyEnds, hashes, reasons } = chunk.result;
    const bytes = chunk.bytes;
    const n = chunk.result.records;
    const keep: Buffer[] = [];
    const drop: Buffer[] = [];
    const legalBasisKeys: string[] = [];
    const c = this.counts;
    let runStart = 0;
    let runEnd = -1;
    let keyStart = 0;
    let invalidAt = 0;

    for (let i = 0; i < n; i++) {
      const start = spans[i * 3] as number;
      const end = spans[i * 3 + 1] as number;
      const next = spans[i * 3 + 2] as number;
      const keyEnd = keyEnds[i] as number;
      let reason: RemovedReason;
      let detail: string;
      if (keyEnd === keyStart) {
        reason = 'invalid_address';
        detail = reasons[invalidAt++] as string;
        c.invalid++;
      } else {
        const d = this.#checker.decideKeyIn(keys, keyStart, keyEnd, hashes[i * 2] as number, hashes[i * 2 + 1] as number, this.#options);
        const key0 = keyStart;
        keyStart = keyEnd;
        if (d.eligible && (d.reason === 'not_suppressed' || d.reason === 'legal_basis')) {
          if (d.reason === 'legal_basis') {
            legalBasisKeys.push(keys.slice(key0, keyEnd));
            c.legalBasis++;
          }
          c.eligible++;
          if (start !== runEnd) {
            if (runEnd >= 0) keep.push(bytes.subarray(runStart, runEnd));
            runStart = start;
          }
          runEnd = next;
          continue;
        }
        if (d.reason !== 'suppressed' || d.suppression === undefined) {
          throw new OptoutError('OPTOUT_ERR_STORE', `The store could not answer for row ${chunk.baseRow + i + 1} ` +
            `(${d.reason}); the scrub stopped and wrote no output`, { location: { row: chunk.baseRow + i + 1 } });
        }
        reason = 'suppressed';
        detail = d.suppression.scope;
        c.suppressed++;
      }
      if (this.#withRemoved) {
        drop.push(bytes.subarray(start, end), this.#suffix(reason, detail, this.#headerFields - (fields[i] as number)),
          next > end ? bytes.subarray(end, next) : this.#headers.lineBreak);
      }
    }
    if (runEnd >= 0) keep.push(bytes.subarray(runStart, runEnd));
    c.rows += n;
    return {
      eligible: Buffer.concat(keep),
      removed: this.#withRemoved ? Buffer.concat(drop) : undefined,
      legalBasisKeys,
    };
  }

  #suffix(reason: RemovedReason, detail: string, missing: number): Buffer {
    const pad = Math.max(0, missing);
    const id = reason + '\0' + detail + '\0' + pad;
    let b = this.#suffixes.get(id);
    if (b === undefined) {
      b = Buffer.from(this.#delimiter.repeat(pad) + this.#delimiter + reason + this.#delimiter + this.#field(detail));
      this.#suffixes.set(id, b);
    }
    return b;
  }

  /** Details are scope ids and reason codes, which never need quoting; quote anyway if one ever does. */
  #field(value: string): string {
    return value.includes(this.#delimiter) || /["\r\n]/.test(value) ? '"' + value.replaceAll('"', '""') + '"' : value;
  }
}
