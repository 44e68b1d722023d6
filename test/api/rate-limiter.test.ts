import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/api/rate-limiter.js';

describe('RateLimiter', () => {
  it('lets a burst of one second through, then one request per 1/rate seconds', () => {
    const l = new RateLimiter();
    const passed = Array.from({ length: 12 }, () => l.take('k', 10, 0)).filter((w) => w === 0).length;
    expect(passed).toBe(10);
    expect(l.take('k', 10, 0)).toBeGreaterThan(0);
    expect(l.take('k', 10, 100)).toBe(0);
  });

  it('keeps at most maxIds buckets: the oldest goes for a new id, and starts afresh', () => {
    const l = new RateLimiter(2);
    expect(l.take('a', 1, 0)).toBe(0);
    expect(l.take('a', 1, 0)).toBeGreaterThan(0);
    expect(l.take('b', 1, 0)).toBe(0);
    expect(l.take('c', 1, 0)).toBe(0);
    expect(l.take('b', 1, 0)).toBeGreaterThan(0);
    expect(l.take('a', 1, 0)).toBe(0);
  });

  it('never locks out a key whose rate is below one request a second', () => {
    const l = new RateLimiter();
    expect(l.take('slow', 0.2, 0)).toBe(0);
    const wait = l.take('slow', 0.2, 0);
    expect(wait).toBe(5);
    expect(l.take('slow', 0.2, wait * 1000)).toBe(0);
  });

  it('admits at most rate x seconds + burst requests over any run of requests (property)', () => {
    fc.assert(fc.property(fc.double({ min: 0.05, max: 50, noNaN: true }), fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 200 }), (rate, gaps) => {
      const l = new RateLimiter();
      let now = 0;
      let passed = 0;
      for (const g of gaps) {
        now += g;
        if (l.take('k', rate, now) === 0) passed++;
      }
      expect(passed).toBeLessThanOrEqual(Math.max(1, rate) + (now / 1000) * rate + 1e-9);
    }), { numRuns: 500 });
  });
});
