import { normalizeEmail, type NormalizedAddress } from '../policy/email.js';

/** Why a cell is not an address before the policy even sees it. */
export type CellReason = 'MISSING_FIELD' | 'INVALID_ENCODING';

export type CellOutcome = NormalizedAddress | { valid: false; reason: CellReason };

const MISSING: CellOutcome = Object.freeze({ valid: false, reason: 'MISSING_FIELD' });
const BAD_ENCODING: CellOutcome = Object.freeze({ valid: false, reason: 'INVALID_ENCODING' });

/**
 * The address policy applied to one CSV cell, as every reader of lists applies it (import and
 * scrub): a row without the column is `MISSING_FIELD`; a cell with bytes that were not valid in
 * the input encoding is `INVALID_ENCODING`, because a key with a replacement character would
 * match nobody (the hint: fix the encoding); anything else goes through `normalizeEmail`.
 *
 * `undecodable`: the extractor found bytes that are not UTF-8 in the cell. A source transcoded
 * to UTF-8 (`substitutes`) had its undecodable input replaced with U+FFFD by the decoder: there
 * any U+FFFD counts as such. In UTF-8 read as it is, a U+FFFD written as valid UTF-8 is a
 * character like any other, and the policy decides about it (as it does for the API).
 */
export function readCell(value: string | undefined, undecodable: boolean, substitutes: boolean): CellOutcome {
  if (value === undefined) return MISSING;
  if (undecodable || (substitutes && value.includes('\uFFFD'))) return BAD_ENCODING;
  return normalizeEmail(value);
}
