/**
 * The eligibility rules, as a pure function: which sends a suppression blocks. No I/O here; the
 * checker finds the matching suppression and this decides.
 */

export type SendType = 'marketing' | 'sequence' | 'one-to-one';
export const SEND_TYPES: readonly SendType[] = ['marketing', 'sequence', 'one-to-one'];

/**
 * Stable reasons of a decision:
 * - `not_suppressed`: no suppression applies; eligible.
 * - `suppressed`: a suppression in scope blocks this send.
 * - `legal_basis`: suppressed, but a one-to-one send with a stated legal basis is allowed (and recorded).
 * - `invalid_address`: the address fails the address policy; never eligible.
 * - `unavailable`: the store could not answer; never eligible (fail closed).
 */
export type DecisionReason = 'not_suppressed' | 'suppressed' | 'legal_basis' | 'invalid_address' | 'unavailable';

/** The suppression that matched: its scope (`*` = account-wide), why, from where, since when. */
export interface SuppressionInfo {
  scope: string;
  reason: string;
  source: string;
  addedAt: string;
  jobId: string;
}

export interface Decision {
  address: string | null;
  key: string | null;
  eligible: boolean;
  reason: DecisionReason;
  /** The address policy's code, for `invalid_address`. */
  invalidReason?: string;
  suppression?: SuppressionInfo;
}

// Shared and frozen: checks decide millions of addresses a second.
const NOT_SUPPRESSED = Object.freeze({ eligible: true, reason: 'not_suppressed' as const });
const LEGAL_BASIS = Object.freeze({ eligible: true, reason: 'legal_basis' as const });
const SUPPRESSED = Object.freeze({ eligible: false, reason: 'suppressed' as const });

/**
 * Account-wide suppressions block marketing and sequences in every unit, a unit's only in that
 * unit (the checker only passes matches in scope). A one-to-one send to a suppressed address
 * needs a non-empty legal basis.
 */
export function decide(match: SuppressionInfo | undefined, type: SendType, legalBasis: string | undefined): Readonly<{ eligible: boolean; reason: DecisionReason }> {
  if (match === undefined) return NOT_SUPPRESSED;
  if (type === 'one-to-one' && legalBasis !== undefined && legalBasis.trim() !== '') return LEGAL_BASIS;
  return SUPPRESSED;
}
