import { describe, expect, it } from 'vitest';
import { targetRatio } from '../../bench/import.e2e.js';
import { childrenCpuSeconds } from '../../bench/lib/measure.js';

describe('bench:import', () => {
  it('asks 3x the sort -u time at 2M rows and below, 2x from 10M up, a straight line between', () => {
    expect(targetRatio(100_000)).toBe(3);
    expect(targetRatio(2_000_000)).toBe(3);
    expect(targetRatio(6_000_000)).toBeCloseTo(2.5);
    expect(targetRatio(10_000_000)).toBe(2);
    expect(targetRatio(50_000_000)).toBe(2);
  });

  it.runIf(process.platform === 'linux')('reads the CPU seconds of reaped children from /proc', () => {
    const cpu = childrenCpuSeconds();
    expect(typeof cpu).toBe('number');
    expect(cpu).toBeGreaterThanOrEqual(0);
  });
});
