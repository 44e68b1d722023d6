import { normalizeEmail } from '../policy/email.js';
import { ACCOUNT_WIDE, decodeEntryValue } from '../store/keys.js';
import type { LevelStore } from '../store/level-store.js';

export interface SuppressionMatch {
  /** `*` for account-wide, else the business unit. */
  scope: string;
  jobId: string;
}

export interface CheckResult {
  address: string | null;
  key: string | null;
  eligible: boolean;
  /** `not_suppressed`, `suppressed` or `invalid_address`. */
  reason: 'not_suppressed' | 'suppressed' | 'invalid_address';
  /** The address policy's code when the address is invalid. */
  invalidReason?: string;
  suppression?: SuppressionMatch;
}

/**
 * Is this address suppressed for marketing in this unit? Account-wide entries apply in every
 * unit; a unit's entries only in that unit. An invalid address is never eligible.
 */
export async function checkAddress(store: LevelStore, email: string, unit?: string): Promise<CheckResult> {
  const n = normalizeEmail(email);
  if (!n.valid) return { address: null, key: null, eligible: false, reason: 'invalid_address', invalidReason: n.reason };
  const scopes = unit === undefined || unit === ACCOUNT_WIDE ? [ACCOUNT_WIDE] : [ACCOUNT_WIDE, unit];
  const found = await store.lookup(n.key, scopes);
  const first = found[0];
  if (first === undefined) return { address: n.address, key: n.key, eligible: true, reason: 'not_suppressed' };
  return {
    address: n.address,
    key: n.key,
    eligible: false,
    reason: 'suppressed',
    suppression: { scope: first.scope, jobId: decodeEntryValue(first.value).jobId },
  };
}
