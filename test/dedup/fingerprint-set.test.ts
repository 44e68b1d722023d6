import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FingerprintSet } from '../../src/dedup/fingerprint-set.js';
import { hashKeyTuple } from '../../src/dedup/hash.js';
import { OptoutError } from '../../src/errors.js';

/** Words from a tiny pool, so that fingerprints share slots and partial words often. */
const word = fc.oneof(
  fc.constantFrom(0, 1, 2, 16, 0x80000000, 0xffffffff),
  fc.nat({ max: 0xffffffff }),
);
const fingerprint = fc.tuple(word, word, word);

describe('FingerprintSet', () => {
  it('agrees with a Set oracle', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fingerprint), { maxLength: 400 }), (ops) => {
      const set = new FingerprintSet();
      const oracle = new Set<string>();
      for (const [isAdd, [a, b, c]] of ops) {
        const id = `${a},${b},${c}`;
        if (isAdd) {
          expect(set.add(a, b, c)).toBe(!oracle.has(id));
          oracle.add(id);
        } else {
          expect(set.has(a, b, c)).toBe(oracle.has(id));
        }
        expect(set.size).toBe(oracle.size);
      }
      for (const id of oracle) {
        const [a, b, c] = id.split(',').map(Number) as [number, number, number];
        expect(set.has(a, b, c)).toBe(true);
      }
    }));
  });

  it('stores the all-zero fingerprint apart from empty slots', () => {
    const set = new FingerprintSet();
    expect(set.has(0, 0, 0)).toBe(false);
    expect(set.add(0, 0, 0)).toBe(true);
    expect(set.add(0, 0, 0)).toBe(false);
    expect(set.has(0, 0, 0)).toBe(true);
    expect(set.size).toBe(1);
    expect(set.has(0, 0, 1)).toBe(false);
    expect(set.add(0, 0, 1)).toBe(true);
    expect(set.add(1, 0, 0)).toBe(true);
    expect(set.size).toBe(3);
  });

  it('treats int32 and uint32 spellings alike', () => {
    const set = new FingerprintSet();
    expect(set.add(-1, -2, -3)).toBe(true);
    expect(set.add(0xffffffff, 0xfffffffe, 0xfffffffd)).toBe(false);
    expect(set.has(0xffffffff, 0xfffffffe, 0xfffffffd)).toBe(true);
  });

  it('grows by rehashing, keeps every entry and stays within ~12-35 bytes per key', () => {
    const set = new FingerprintSet();
    const n = 200_000;
    const start = set.byteLength;
    let fresh = 0;
    for (let i = 0; i < n; i++) {
      const [a, b, c] = hashKeyTuple(`user${i}@example.com`);
      if (set.add(a, b, c)) fresh++;
    }
    expect(fresh).toBe(n);
    expect(set.size).toBe(n);
    expect(set.byteLength).toBeGreaterThan(start);
    // Load factor between 0.35 and 0.7 at 12 bytes per slot.
    expect(set.byteLength / n).toBeGreaterThanOrEqual(12 / 0.7);
    expect(set.byteLength / n).toBeLessThanOrEqual(12 / 0.35);
    let found = 0;
    let readded = 0;
    for (let i = 0; i < n; i++) {
      const [a, b, c] = hashKeyTuple(`user${i}@example.com`);
      if (set.has(a, b, c)) found++;
      if (set.add(a, b, c)) readded++;
    }
    expect(found).toBe(n);
    expect(readded).toBe(0);
    const [a, b, c] = hashKeyTuple('not-added@example.com');
    expect(set.has(a, b, c)).toBe(false);
  });

  it('presizes from expectedSize so that no rehash is needed', () => {
    const set = new FingerprintSet(1000);
    const bytes = set.byteLength;
    for (let i = 0; i < 1000; i++) set.add(i + 1, i, i);
    expect(set.byteLength).toBe(bytes);
    expect(set.size).toBe(1000);
  });

  it('rejects a bad expectedSize with OPTOUT_ERR_INVALID_OPTION', () => {
    for (const bad of [-1, 1.5, Number.NaN]) {
      expect(() => new FingerprintSet(bad)).toThrow(OptoutError);
      try {
        new FingerprintSet(bad);
      } catch (err) {
        expect((err as OptoutError).code).toBe('OPTOUT_ERR_INVALID_OPTION');
      }
    }
  });

  it('handles many fingerprints that share h3 (one long probe run)', () => {
    const set = new FingerprintSet();
    for (let i = 0; i < 3000; i++) expect(set.add(i, ~i, 42)).toBe(true);
    for (let i = 0; i < 3000; i++) expect(set.has(i, ~i, 42)).toBe(true);
    expect(set.has(3000, ~3000, 42)).toBe(false);
    expect(set.size).toBe(3000);
  });
});
