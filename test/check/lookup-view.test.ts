/**
 * Checks on a ledger without synchronous lookups: the keys are looked up a batch at a time, and
 * the checker decides from what was found. A key outside the batch, or a batch that failed to
 * load, answers `unavailable`: never "eligible" on doubt.
 */
import { describe, expect, it } from 'vitest';
import { Checker } from '../../src/check/checker.js';
import { keysOfEmails, ledgerChecker, LookupView } from '../../src/check/ledger-checker.js';
import { addSuppression } from '../../src/manage/suppressions.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';
import type { Ledger } from '../../src/store/store.js';

/** A MemoryStore seen as a ledger alone, as the PostgreSQL one is. */
function ledgerOnly(store: MemoryStore, failing = { lookups: false }): Ledger {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'supports') return { syncLookups: false, feed: true, exclusive: false, settlesChunks: false };
      if (prop === 'entriesOfMany' && failing.lookups) return async () => { throw Object.assign(new Error('connection lost'), { code: 'OPTOUT_ERR_STORE' }); };
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as Ledger;
}

describe('checks on a ledger without synchronous lookups', () => {
  it('decide as the store\'s own view does, once the keys are looked up', async () => {
    const store = new MemoryStore();
    await addSuppression(store, { email: 'a@x.org', unit: 'emea', reason: 'bounced', source: 'crm' });
    await addSuppression(store, { email: 'b@x.org' });
    const reqs = [
      { email: 'A+tag@x.org', unit: 'emea' }, { email: 'a@x.org' }, { email: 'b@x.org', type: 'one-to-one' as const, legalBasis: 'contract' },
      { email: 'c@x.org' }, { email: 'nope' },
    ];
    const own = await ledgerChecker(store, { filter: true });
    const remote = await ledgerChecker(ledgerOnly(store), { filter: true });
    expect(own.needsKeys).toBe(false);
    expect(remote.needsKeys).toBe(true);
    await remote.prepare(keysOfEmails(reqs.map((r) => r.email)));
    const decided = reqs.map((r) => remote.checker.decide(r));
    expect(decided).toEqual(reqs.map((r) => own.checker.decide(r)));
    expect(decided.map((d) => d.reason)).toEqual(['suppressed', 'not_suppressed', 'legal_basis', 'not_suppressed', 'invalid_address']);
    expect(decided[0]?.suppression).toMatchObject({ scope: 'emea', reason: 'bounced', source: 'crm' });
  });

  it('answer unavailable for a key that was not looked up, or when the lookup failed', async () => {
    const store = new MemoryStore();
    await addSuppression(store, { email: 'a@x.org' });
    const failing = { lookups: false };
    const ledger = ledgerOnly(store, failing);
    const view = new LookupView(ledger);
    const checker = new Checker(view, undefined, ledger);
    expect(checker.decide({ email: 'a@x.org' }).reason).toBe('unavailable');
    await view.load(keysOfEmails(['a@x.org']));
    expect(checker.decide({ email: 'a@x.org' }).reason).toBe('suppressed');
    expect(checker.decide({ email: 'other@x.org' }).reason).toBe('unavailable');
    failing.lookups = true;
    await expect(view.load(keysOfEmails(['a@x.org']))).rejects.toMatchObject({ code: 'OPTOUT_ERR_STORE' });
    // The batch before is gone too: nothing is answered from it.
    expect(checker.decide({ email: 'a@x.org' }).reason).toBe('unavailable');
  });
});
