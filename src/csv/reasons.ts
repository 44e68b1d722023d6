import { SUPPRESSION_REASONS, type SuppressionReason } from '../store/jobs.js';

/**
 * A row's own reason, from the words providers and people write for it. Compared without case,
 * spaces, `_` or `-`, so that `HardBounce`, `hard_bounce` and `Hard bounce` are one word.
 * A word nobody mapped gives no reason: the row keeps the import's (and is imported all the same).
 */
const WORDS: Readonly<Record<string, SuppressionReason>> = {
  bounce: 'bounced', bounced: 'bounced', hardbounce: 'bounced', permanent: 'bounced', invalidemail: 'bounced', cleaned: 'bounced',
  complaint: 'complaint', complained: 'complaint', spam: 'complaint', spamcomplaint: 'complaint', spamreport: 'complaint',
  abuse: 'complaint', markedasspam: 'complaint',
  unsubscribe: 'unsubscribed', unsubscribed: 'unsubscribed', optout: 'unsubscribed', optedout: 'unsubscribed', unsub: 'unsubscribed',
  manual: 'manual', manualsuppression: 'manual', manuallysuppressed: 'manual', usersuppressed: 'manual', suppressedmanually: 'manual',
};

/** The reason a cell names, or undefined for an empty or unknown one. */
export function reasonOfCell(value: string | undefined): SuppressionReason | undefined {
  if (value === undefined) return undefined;
  return WORDS[value.toLowerCase().replace(/[\s_-]+/gu, '')];
}

/** A reason as one small number (0 for none), how workers hand reasons back without strings. */
export function reasonCode(reason: SuppressionReason | undefined): number {
  return reason === undefined ? 0 : SUPPRESSION_REASONS.indexOf(reason) + 1;
}

export function reasonOfCode(code: number): SuppressionReason | undefined {
  return code === 0 ? undefined : SUPPRESSION_REASONS[code - 1];
}

/**
 * Valid rows per reason, for the report: the rows that gave their own reason (`own`, per reason
 * code) under it, every other valid row under the import's. Reasons with no rows are left out.
 */
export function rowsPerReason(valid: number, own: readonly number[] | undefined, importReason: SuppressionReason): Partial<Record<SuppressionReason, number>> {
  const out: Partial<Record<SuppressionReason, number>> = {};
  let rest = valid;
  SUPPRESSION_REASONS.forEach((reason, i) => {
    const n = own?.[i + 1] ?? 0;
    rest -= n;
    if (n > 0) out[reason] = n;
  });
  if (rest > 0) out[importReason] = (out[importReason] ?? 0) + rest;
  return out;
}

/**
 * Counts per reason (a report's `reasons`) as counts per reason code: {@link rowsPerReason} gives
 * them back unchanged, whatever the import's reason.
 */
export function reasonCodeCounts(counts: Partial<Record<SuppressionReason, number>>): number[] {
  const out = new Array<number>(SUPPRESSION_REASONS.length + 1).fill(0);
  for (const reason of SUPPRESSION_REASONS) out[reasonCode(reason)] = counts[reason] ?? 0;
  return out;
}

/** Adds one chunk's counts per reason code to a running total. */
export function addReasonCounts(total: number[], chunk: readonly number[]): void {
  for (let i = 0; i < chunk.length; i++) total[i] = (total[i] ?? 0) + (chunk[i] as number);
}
