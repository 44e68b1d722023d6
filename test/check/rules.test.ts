import { describe, expect, it } from 'vitest';
import { decide, SEND_TYPES, type SuppressionInfo } from '../../src/check/rules.js';

const match: SuppressionInfo = { scope: '*', reason: 'unsubscribed', source: 'list.csv', addedAt: '2026-01-01T00:00:00.000Z', jobId: '1' };

describe('decide', () => {
  it('lets every send type through when nothing matches', () => {
    for (const type of SEND_TYPES) expect(decide(undefined, type, undefined)).toEqual({ eligible: true, reason: 'not_suppressed' });
  });

  it('blocks marketing and sequences to a suppressed address, legal basis or not', () => {
    for (const type of ['marketing', 'sequence'] as const) {
      expect(decide(match, type, undefined)).toEqual({ eligible: false, reason: 'suppressed' });
      expect(decide(match, type, 'contract')).toEqual({ eligible: false, reason: 'suppressed' });
    }
  });

  it('allows one-to-one to a suppressed address only with a non-empty legal basis', () => {
    expect(decide(match, 'one-to-one', undefined)).toEqual({ eligible: false, reason: 'suppressed' });
    expect(decide(match, 'one-to-one', '   ')).toEqual({ eligible: false, reason: 'suppressed' });
    expect(decide(match, 'one-to-one', 'order 4711: delivery notice')).toEqual({ eligible: true, reason: 'legal_basis' });
  });
});
