import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAtOnce, openStore, type CheckAtOnce, type OptoutStore } from '../../src/check/open-store.js';
import { Checker, normalizeCheckOptions, normalizeCheckRequest } from '../../src/check/checker.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { encodeEntryValue, entryKey } from '../../src/store/level/keys.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { emptyCounts } from '../../src/store/counts.js';
import { isOptoutError } from '../../src/errors.js';
import { readAudit } from '../../src/manage/audit-log.js';
import type { AuditRecord } from '../../src/store/audit.js';

let dir: string;
let opened: OptoutStore;

/** A store with `all@x.org` suppressed account-wide and `unit@x.org` in unit A only, as imports leave them. */
async function seed(path: string): Promise<void> {
  const store = await LevelStore.open(path);
  const filter = await store.filter();
  const now = new Date().toISOString();
  for (const [scope, key, id] of [['*', 'all@x.org', '1'], ['A', 'unit@x.org', '2']] as const) {
    const job = await store.createJob({
      kind: 'import', state: 'completed', scope, reason: scope === '*' ? 'complaint' : 'unsubscribed', source: `list-${id}.csv`,
      fingerprint: { path: null, size: null, mtimeMs: null, column: null, delimiter: null, encoding: 'utf8', rejects: null },
      confirmed: 'yes', confirmedCount: null, createdAt: now, updatedAt: now, finishedAt: now, resumedCount: 0,
      checkpoint: { phase: 'merge', offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0, spool: { dir: '', bits: 4, lengths: [] }, bucket: 0 },
      error: null,
    });
    expect(job.id).toBe(id);
    const [h1, h2] = hashKeyTuple(key);
    filter.add(h1, h2);
    const batch = store.batch();
    batch.putEntry(entryKey(scope, key), encodeEntryValue(id, undefined));
    await store.commitBatch(batch, new Map([[scope, 1]]), job);
  }
  await store.close();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'optout-checker-'));
  await seed(dir);
  opened = await openStore(dir);
});
afterAll(async () => {
  await opened.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('checks of one batch asked with different options', () => {
  it('answers each with its own unit, type and legal basis, and refuses an invalid one whatever came before', async () => {
    // The checker reuses the last validated options while the next check asks with the same ones.
    const reqs = [
      { email: 'unit@x.org', unit: 'A' },
      { email: 'unit@x.org' },
      { email: 'unit@x.org', unit: 'A', type: 'one-to-one' as const, legalBasis: 'contract' },
      { email: 'unit@x.org', unit: 'A', type: 'one-to-one' as const },
      { email: 'unit@x.org', type: 'sequence' as const },
      { email: 'unit@x.org', unit: 'A' },
      { email: 'unit@x.org', unit: 'B' },
    ];
    const answers = (await opened.checkMany(reqs)).map((d) => d.reason);
    expect(answers).toEqual(['suppressed', 'not_suppressed', 'legal_basis', 'suppressed', 'not_suppressed', 'suppressed', 'not_suppressed']);
    await expect(opened.checkMany([{ email: 'unit@x.org', unit: 'A' }, { email: 'unit@x.org', unit: 'A!' }])).rejects.toThrow(/unit/);
    await expect(opened.checkMany([{ email: 'unit@x.org', type: 'sequence' }, { email: 'unit@x.org', type: 'bulk' as 'sequence' }])).rejects.toThrow(/type/);
  });
});

describe('openStore().check', () => {
  it('applies account-wide suppressions in every unit, unit ones in their unit only', async () => {
    expect(await opened.check({ email: 'ALL@x.org' })).toMatchObject({ eligible: false, reason: 'suppressed', suppression: { scope: '*', reason: 'complaint', source: 'list-1.csv', jobId: '1' } });
    expect((await opened.check({ email: 'all@x.org', unit: 'B' })).eligible).toBe(false);
    expect(await opened.check({ email: 'unit@x.org', unit: 'A' })).toMatchObject({ eligible: false, suppression: { scope: 'A' } });
    expect(await opened.check({ email: 'unit@x.org', unit: 'B' })).toMatchObject({ eligible: true, reason: 'not_suppressed' });
    expect(await opened.check({ email: 'unit@x.org' })).toMatchObject({ eligible: true, reason: 'not_suppressed' });
    expect(await opened.check({ email: 'unit+tag@x.org', unit: 'A' })).toMatchObject({ eligible: false, address: 'unit+tag@x.org', key: 'unit@x.org' });
  });

  it('never lets an invalid address through, with the policy code', async () => {
    expect(await opened.check({ email: 'not an address' })).toEqual({ address: null, key: null, eligible: false, reason: 'invalid_address', invalidReason: 'INVALID_CHARACTER' });
  });

  it('allows one-to-one with a legal basis and records the decision', async () => {
    const before = await legalRecords();
    const d = await opened.check({ email: 'all@x.org', type: 'one-to-one', legalBasis: 'invoice 77', caller: 'key-1' });
    expect(d).toMatchObject({ eligible: true, reason: 'legal_basis' });
    expect(await opened.check({ email: 'all@x.org', type: 'one-to-one' })).toMatchObject({ eligible: false, reason: 'suppressed' });
    const after = await legalRecords();
    expect(after.length).toBe(before.length + 1);
    expect(after.at(-1)).toMatchObject({
      action: 'legal_basis', actor: 'key-1', key: 'all@x.org', unit: null, job: '1',
      details: { type: 'one-to-one', basis: 'invoice 77', scope: '*' },
    });
  });

  it('answers checkMany in input order', async () => {
    const emails = ['fresh@x.org', 'all@x.org', 'bad', 'unit@x.org', 'ALL@X.ORG'];
    const ds = await opened.checkMany(emails.map((email) => ({ email, unit: 'A' })));
    expect(ds.map((d) => d.eligible)).toEqual([true, false, false, false, false]);
    expect(ds.map((d) => d.reason)).toEqual(['not_suppressed', 'suppressed', 'invalid_address', 'suppressed', 'suppressed']);
  });

  it('answers checkEmails as checkMany answers the same addresses with the same options, and records legal-basis decisions alike', async () => {
    const emails = ['fresh@x.org', 'all@x.org', 'bad', 'unit@x.org', 'ALL@X.ORG', 'unit+tag@x.org'];
    for (const options of [{}, { unit: 'A' }, { unit: 'A', type: 'one-to-one' as const, legalBasis: 'order 5', caller: 'key-2' }]) {
      const before = await legalRecords();
      const many = await opened.checkMany(emails.map((email) => ({ email, ...options })));
      const viaMany = (await legalRecords()).slice(before.length);
      const batch = await opened.checkEmails(emails, options);
      const viaBatch = (await legalRecords()).slice(before.length + viaMany.length);
      expect(batch).toEqual(many);
      const content = (r: AuditRecord): unknown => ({ ...r, id: undefined, time: undefined });
      expect(viaBatch.map(content)).toEqual(viaMany.map(content));
      if (options.type === 'one-to-one') {
        expect(viaBatch).toMatchObject([
          { key: 'all@x.org', actor: 'key-2', unit: 'A', job: '1', details: { scope: '*', basis: 'order 5' } },
          { key: 'unit@x.org', job: '2', details: { scope: 'A' } }, { key: 'all@x.org' }, { key: 'unit@x.org' },
        ]);
      }
    }
  });

  it('refuses a batch with an address that is not a string, or bad options', async () => {
    for (const [emails, options] of [[['a@x.org', 42 as never], {}], [['a@x.org'], { unit: 'bad unit' }]] as const) {
      const err = await opened.checkEmails(emails, options).catch((e: unknown) => e);
      expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    }
  });

  it('rejects bad options with OPTOUT_ERR_INVALID_OPTION', async () => {
    for (const req of [{ email: 'a@x.org', unit: 'bad unit' }, { email: 'a@x.org', type: 'bulk' as never }, { email: 42 as never }]) {
      const err = await opened.check(req).catch((e: unknown) => e);
      expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_INVALID_OPTION');
      const now = checkAtOnce(opened) as CheckAtOnce;
      let thrown: unknown;
      try {
        now(req);
      } catch (e) {
        thrown = e;
      }
      expect(isOptoutError(thrown) && thrown.code, 'checkAtOnce throws what check rejects with').toBe('OPTOUT_ERR_INVALID_OPTION');
    }
  });

  it('answers at once (checkAtOnce) what check answers, except what must wait or be recorded, and never for a wrapped check', async () => {
    const now = checkAtOnce(opened);
    expect(now).toBeDefined();
    for (const req of [{ email: 'fresh@x.org' }, { email: 'ALL@x.org', unit: 'B' }, { email: 'unit@x.org', unit: 'A' }, { email: 'unit@x.org', unit: 'B' },
      { email: 'bad' }, { email: 'all@x.org', type: 'one-to-one' as const }, { email: 'fresh@x.org', type: 'one-to-one' as const, legalBasis: 'order 9' }]) {
      const d = now?.(req);
      expect(d, JSON.stringify(req)).toEqual(await opened.check(req));
    }
    const before = await legalRecords();
    const legal = { email: 'all@x.org', type: 'one-to-one' as const, legalBasis: 'invoice 78', caller: 'key-3' };
    expect(now?.(legal), 'a decision to record is left to check').toBeUndefined();
    expect(await legalRecords()).toHaveLength(before.length);
    expect(now?.({ email: 'fresh@x.org' }, { minSeq: 0 }), 'a wait is left to check').toBeUndefined();
    // A caller's wrapper of check is never bypassed.
    expect(checkAtOnce({ ...opened, check: async (req) => opened.check(req) })).toBeUndefined();
  });
});

describe('Checker', () => {
  it('fails closed: a store that cannot answer gives "unavailable", never eligible', async () => {
    const other = mkdtempSync(join(tmpdir(), 'optout-checker-closed-'));
    try {
      await seed(other);
      const store = await LevelStore.open(other);
      const checker = new Checker(store, await store.filter());
      expect(checker.decide({ email: 'all@x.org' }).eligible).toBe(false);
      await store.close();
      // Closed store: a possible filter hit cannot be settled.
      expect(checker.decide({ email: 'all@x.org' })).toMatchObject({ eligible: false, reason: 'unavailable' });
      // Without a filter every check reads the store, so even a never-seen address fails closed.
      expect(new Checker(store, undefined).decide({ email: 'fresh@x.org' })).toMatchObject({ eligible: false, reason: 'unavailable' });
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});

describe('Checker.decideKey and recordKeys', () => {
  it('decides a key and its hashes (alone, or cut from a longer text) exactly as decide decides the address', async () => {
    const checker = new Checker(opened.store, undefined);
    const filtered = new Checker(opened.store, await opened.store.filter());
    for (const email of ['all@x.org', 'ALL+x@X.org', 'unit@x.org', 'fresh@x.org']) {
      for (const options of [{ unit: undefined }, { unit: 'A' }, { unit: 'B' }, { unit: 'A', type: 'one-to-one' as const, legalBasis: 'contract' },
        { unit: undefined, type: 'one-to-one' as const, legalBasis: ' ' }]) {
        const r = normalizeCheckRequest({ email, ...options });
        const whole = checker.decide(r);
        const [h1, h2] = hashKeyTuple(whole.key as string);
        const { address: _a, key: _k, ...rest } = whole;
        expect(filtered.decideKey(whole.key as string, h1, h2, r), `${email} ${JSON.stringify(options)}`).toEqual(rest);
        const text = `x@y.org${whole.key as string}z@y.org`;
        expect(checker.decideKeyIn(text, 7, text.length - 7, h1, h2, r)).toEqual(rest);
      }
    }
  });

  it('records many legal-basis decisions in one batch, with the options given', async () => {
    const before = await legalRecords();
    await new Checker(opened.store, undefined).recordKeys(normalizeCheckOptions({ unit: 'A', type: 'one-to-one', legalBasis: 'contract 9', caller: 'cli' }), ['all@x.org', 'unit@x.org']);
    const added = (await legalRecords()).slice(before.length);
    expect(added).toMatchObject([
      { key: 'all@x.org', unit: 'A', actor: 'cli', details: { type: 'one-to-one', basis: 'contract 9' } },
      { key: 'unit@x.org', unit: 'A', actor: 'cli', details: { type: 'one-to-one', basis: 'contract 9' } },
    ]);
  });
});

async function legalRecords(): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of readAudit(opened.store)) if (r.action === 'legal_basis') out.push(r);
  return out;
}
