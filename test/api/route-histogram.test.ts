/** The request-latency histogram kept as plain numbers reads, on /metrics, as prom-client's own would. */
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RouteHistogram } from '../../src/api/route-histogram.js';

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

describe('RouteHistogram', () => {
  it('gives the exposition text of prom-client\'s Histogram for any observations, and after a reset', async () => {
    // Values on and around the bounds, zero, and far above the last one.
    const value = fc.oneof(
      fc.constantFrom(...BUCKETS, 0, 1.5, 3600),
      fc.double({ min: 0, max: 2, noNaN: true }),
      fc.constantFrom(...BUCKETS).map((b) => b * (1 + Number.EPSILON)),
    );
    const route = fc.constantFrom('/v1/eligibility', '/v1/imports/:id', 'unmatched', 'a "quoted"\\route');
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(route, value), { maxLength: 300 }), fc.boolean(), async (observations, reset) => {
      const [theirs, ours] = [new Registry(), new Registry()];
      const oracle = new Histogram({ name: 'optout_http_request_duration_seconds', help: 'Time to answer', labelNames: ['route'] as const, registers: [theirs], buckets: BUCKETS });
      const kept = new RouteHistogram({ name: 'optout_http_request_duration_seconds', help: 'Time to answer', label: 'route', registers: [ours], buckets: BUCKETS });
      for (const [r, v] of observations) {
        oracle.labels({ route: r }).observe(v);
        kept.observe(r, v);
      }
      expect(await ours.metrics()).toBe(await theirs.metrics());
      if (reset) {
        theirs.resetMetrics();
        ours.resetMetrics();
        oracle.labels({ route: '/after' }).observe(0.003);
        kept.observe('/after', 0.003);
        expect(await ours.metrics()).toBe(await theirs.metrics());
      }
    }), { numRuns: 200 });
  });

  it('refuses a value that is not a finite number, as prom-client does', () => {
    const kept = new RouteHistogram({ name: 'h', help: 'h', label: 'route', registers: [], buckets: BUCKETS });
    expect(() => kept.observe('/x', Number.NaN)).toThrow(TypeError);
    expect(() => kept.observe('/x', Number.POSITIVE_INFINITY)).toThrow(TypeError);
  });
});
