import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BloomFilter, KeyFilter } from '../../src/filter/bloom.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { OptoutError } from '../../src/errors.js';

const key = fc.string({ unit: 'binary', maxLength: 40 });
const u32 = fc.nat({ max: 0xffffffff });
/** Raw hash pairs, biased to the edges (0, all ones, sign bit) where int/uint handling breaks. */
const pair = fc.tuple(
  fc.oneof(u32, fc.constantFrom(0, 0xffffffff, 0x80000000, 0x7fffffff)),
  fc.oneof(u32, fc.constantFrom(0, 0xffffffff, 0x80000000, 0x7fffffff)),
);

function allPresent(f: { mightContain(h1: number, h2: number): boolean }, keys: readonly string[]): boolean {
  return keys.every((k) => {
    const [h1, h2] = hashKeyTuple(k);
    return f.mightContain(h1, h2);
  });
}

describe('no false negatives', () => {
  it('BloomFilter, at or far over capacity', () => {
    fc.assert(fc.property(fc.array(key, { maxLength: 300 }), fc.integer({ min: 1, max: 400 }), (keys, capacity) => {
      const f = BloomFilter.forCapacity(capacity);
      for (const k of keys) {
        const [h1, h2] = hashKeyTuple(k);
        f.add(h1, h2);
      }
      expect(allPresent(f, keys)).toBe(true);
    }));
  });

  it('BloomFilter, raw hash values', () => {
    fc.assert(fc.property(fc.array(pair, { maxLength: 200 }), fc.integer({ min: 1, max: 100_000 }), (pairs, capacity) => {
      const f = BloomFilter.forCapacity(capacity);
      for (const [h1, h2] of pairs) f.add(h1, h2);
      for (const [h1, h2] of pairs) expect(f.mightContain(h1, h2)).toBe(true);
    }));
  });

  it('KeyFilter, across ensureCapacity growth and snapshot round trips', () => {
    const step = fc.oneof(
      fc.record({ add: fc.array(key, { maxLength: 200 }) }),
      fc.record({ ensure: fc.integer({ min: 0, max: 3000 }) }),
      fc.constant({ roundTrip: true as const }),
    );
    fc.assert(fc.property(fc.integer({ min: 0, max: 500 }), fc.array(step, { maxLength: 12 }), (capacity, steps) => {
      let f = KeyFilter.create(capacity, 0.01);
      const added: string[] = [];
      for (const s of steps) {
        if ('add' in s) {
          for (const k of s.add) {
            const [h1, h2] = hashKeyTuple(k);
            f.add(h1, h2);
            added.push(k);
          }
        } else if ('ensure' in s) {
          const before = f.capacity;
          f.ensureCapacity(s.ensure);
          expect(f.capacity).toBeGreaterThanOrEqual(Math.max(before, s.ensure));
        } else {
          f = KeyFilter.fromBuffer(f.toBuffer());
        }
        expect(f.count).toBe(added.length);
        expect(allPresent(f, added)).toBe(true);
      }
      const g = KeyFilter.fromBuffer(f.toBuffer());
      expect(allPresent(g, added)).toBe(true);
      expect(g.count).toBe(added.length);
      // Logarithmic layer count: each layer at least doubles the previous one.
      expect(g.layers).toBeLessThanOrEqual(1 + Math.ceil(Math.log2(Math.max(1, g.capacity / 64))));
    }), { numRuns: 60 });
  });
});

describe('corrupt snapshots', () => {
  const f = KeyFilter.create(300);
  for (let i = 0; i < 700; i++) {
    const [h1, h2] = hashKeyTuple(`k${i}@x.org`);
    f.add(h1, h2);
  }
  const buf = f.toBuffer();

  function rejects(b: Uint8Array): void {
    let caught: unknown;
    try {
      KeyFilter.fromBuffer(b);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptoutError);
    expect((caught as OptoutError).code).toBe('OPTOUT_ERR_STORE_CORRUPT');
  }

  it('rejects any change of one byte', () => {
    // CRC-32 detects every error burst up to 32 bits, so this holds for every position and value.
    fc.assert(fc.property(fc.nat({ max: buf.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bad = Buffer.from(buf);
      bad[at] = bad[at]! ^ x;
      rejects(bad);
    }));
  });

  it('rejects any truncation or extension', () => {
    fc.assert(fc.property(fc.nat({ max: buf.length - 1 }), (len) => rejects(buf.subarray(0, len))));
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (tail) => rejects(Buffer.concat([buf, tail]))));
  });

  it('rejects arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (junk) => rejects(junk)));
  });
});
