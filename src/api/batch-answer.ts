/**
 * The body of a batch of decisions, `{ "results": [...] }`, as the bytes sent. The compact form
 * (`compact: true`) holds what a sender acts on, `eligible` and `reason` (and an invalid
 * address's `invalidReason`), in input order: about 45 bytes an address instead of 100 to 250,
 * and its common answers are constant texts rather than objects serialized each time.
 */
import type { Decision, DecisionReason } from '../check/rules.js';

const CONSTANT: Partial<Record<DecisionReason, string>> = {
  not_suppressed: '{"eligible":true,"reason":"not_suppressed"}',
  suppressed: '{"eligible":false,"reason":"suppressed"}',
  legal_basis: '{"eligible":true,"reason":"legal_basis"}',
};

function compactOf(d: Decision): string {
  const text = CONSTANT[d.reason];
  // The eligibility always comes from the decision: a constant is used only where it agrees.
  if (text !== undefined && d.eligible === (d.reason !== 'suppressed')) return text;
  return JSON.stringify(d.invalidReason === undefined ? { eligible: d.eligible, reason: d.reason } : { eligible: d.eligible, reason: d.reason, invalidReason: d.invalidReason });
}

export function batchAnswer(decisions: readonly Decision[], compact: boolean): Buffer {
  if (!compact) return Buffer.from(JSON.stringify({ results: decisions }));
  let text = '{"results":[';
  for (let i = 0; i < decisions.length; i++) text += (i === 0 ? '' : ',') + compactOf(decisions[i] as Decision);
  return Buffer.from(`${text}]}`);
}
