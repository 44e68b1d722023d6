import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normalizeEmail, type NormalizedAddress } from '../../src/policy/email.js';

interface CorpusCase {
  input: string;
  valid: boolean;
  address?: string;
  key?: string;
  reason?: string;
  source: string;
}

const corpus = JSON.parse(
  readFileSync(new URL('../fixtures/conformance/email-corpus.json', import.meta.url), 'utf8'),
) as CorpusCase[];

/** What the corpus pins for a case: the verdict, and the address, key or reason when given. */
function expected(c: CorpusCase): Record<string, unknown> {
  if (c.valid) return { valid: true, address: c.address, key: c.key };
  return c.reason === undefined ? { valid: false } : { valid: false, reason: c.reason };
}

/** The same fields of an actual result, so that a mismatch shows as one readable diff. */
function actual(c: CorpusCase, r: NormalizedAddress): Record<string, unknown> {
  if (r.valid) return { valid: true, address: r.address, key: r.key };
  return c.reason === undefined ? { valid: false } : { valid: false, reason: r.reason };
}

describe('address policy optout/1: conformance corpus', () => {
  it('holds all 474 cases', () => {
    expect(corpus).toHaveLength(474);
  });

  it('agrees with every case (all mismatches listed with their input)', () => {
    const mismatches: string[] = [];
    for (const c of corpus) {
      const got = actual(c, normalizeEmail(c.input));
      const want = expected(c);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        const input = JSON.stringify(c.input);
        mismatches.push(`${input}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)} (${c.source})`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  // One test per case as well, so that a failure names its input in the report.
  it.each(corpus.map((c, i) => ({ ...c, label: `#${i} ${JSON.stringify(c.input)}` })))('$label', (c) => {
    expect(actual(c, normalizeEmail(c.input))).toEqual(expected(c));
  });
});
