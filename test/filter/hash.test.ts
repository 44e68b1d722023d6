import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HASH_VERSION, hashAsciiKey, hashKey, hashKeyTuple } from '../../src/filter/hash.js';

const N = 100_000;

/** Realistic, highly structured keys: the worst case for a weak hash is near-identical input. */
function keys(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`user${i}@example${i % 7}.com`);
  return out;
}

function hashAll(ks: readonly string[]): Uint32Array {
  const out = new Uint32Array(ks.length * 3);
  ks.forEach((k, i) => hashKey(k, out, i * 3));
  return out;
}

describe('hashKey format (HASH_VERSION 1)', () => {
  it('is version 1', () => {
    expect(HASH_VERSION).toBe(1);
  });

  // Snapshots persist bits placed by these values: if this test fails, the change must bump
  // HASH_VERSION (and the pins), never just update the pins.
  const pins: [string, [number, number, number]][] = [
    ['', [0x1388a0fb, 0xafa3dea3, 0xfd31b77b]],
    ['a', [0x6a618ec8, 0x3a0146f4, 0x06ccdfd7]],
    ['jane@example.com', [0xc8f867ca, 0x054d89a5, 0x85daaeac]],
    ['john.smith+news@gmail.com', [0x71c092da, 0x10572e32, 0x504f6a3e]],
    ['m\u00fcller@b\u00fccher.example', [0x2d590807, 0x3535d93b, 0xc21de695]],
    ['\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a', [0x8ccd6169, 0x92dedab1, 0xfe598e16]],
    ['\u{1F600}@x.org', [0x10cb313f, 0xa5c10f21, 0x851f6464]],
    ['x'.repeat(64) + '@' + 'd'.repeat(60) + '.com', [0xecf19e15, 0x429b3e50, 0xd8918d41]],
  ];
  it.each(pins)('pins %j', (key, expected) => {
    expect(hashKeyTuple(key)).toEqual(expected);
  });

  it('writes exactly three words at the offset', () => {
    const out = new Uint32Array(8).fill(7);
    hashKey('jane@example.com', out, 3);
    expect([...out.subarray(3, 6)]).toEqual(hashKeyTuple('jane@example.com'));
    expect([...out.subarray(0, 3)]).toEqual([7, 7, 7]);
    expect([...out.subarray(6)]).toEqual([7, 7]);
  });

  it('is deterministic and returns unsigned 32-bit numbers', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (key) => {
      const a = hashKeyTuple(key);
      expect(hashKeyTuple(key)).toEqual(a);
      for (const h of a) expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
    }));
  });

  it('separates keys of the same length that differ in one code unit, in every lane', () => {
    // Each step is a bijection of the lane state, so this holds for all inputs, not just most.
    fc.assert(fc.property(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }), fc.nat(), fc.integer({ min: 1, max: 0xffff }),
      (key, at, delta) => {
        const i = at % key.length;
        const other = key.slice(0, i) + String.fromCharCode((key.charCodeAt(i) + delta) & 0xffff) + key.slice(i + 1);
        const a = hashKeyTuple(key);
        const b = hashKeyTuple(other);
        expect(a[0]).not.toBe(b[0]);
        expect(a[1]).not.toBe(b[1]);
        expect(a[2]).not.toBe(b[2]);
      }));
  });

  it('separates a key from its NUL-padded twin (odd length tail)', () => {
    expect(hashKeyTuple('a')).not.toEqual(hashKeyTuple('a\0'));
    expect(hashKeyTuple('')).not.toEqual(hashKeyTuple('\0'));
  });
});

describe('hashAsciiKey', () => {
  it('gives hashKey\'s hashes for an ASCII key read from the middle of its bytes (property)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary-ascii', maxLength: 80 }), fc.string({ unit: 'binary-ascii', maxLength: 5 }),
      fc.string({ unit: 'binary-ascii', maxLength: 5 }), (key, before, after) => {
        const bytes = Buffer.from(before + key + after, 'latin1');
        const out = new Uint32Array(5).fill(7);
        expect(hashAsciiKey(bytes, before.length, before.length + key.length, out, 1)).toBe(true);
        expect([...out]).toEqual([7, ...hashKeyTuple(key), 7]);
      }));
  });

  it('refuses a key with any byte that is not ASCII, odd position or even, and leaves the output alone', () => {
    for (const key of ['jöns@x.org', 'ab\u00ff', '\u0080', 'a@\u4f8b.cn', '\u{1F600}@x.org']) {
      const bytes = Buffer.from(key, 'utf8');
      const out = new Uint32Array(3).fill(7);
      expect(hashAsciiKey(bytes, 0, bytes.length, out, 0), key).toBe(false);
      expect([...out]).toEqual([7, 7, 7]);
    }
    // Lone bytes, at an even and at an odd position.
    for (const raw of [[0x80, 0x61], [0x61, 0x80], [0x61, 0x62, 0xff]]) {
      expect(hashAsciiKey(Uint8Array.from(raw), 0, raw.length, new Uint32Array(3), 0), raw.join(',')).toBe(false);
    }
  });
});

describe('hashKey distribution over 100k structured keys', () => {
  const h = hashAll(keys(N));

  it('balances every bit of every lane', () => {
    // Binomial sd at 100k is 0.16%; 1% is over 6 sd.
    for (let lane = 0; lane < 3; lane++) {
      for (let bit = 0; bit < 32; bit++) {
        let ones = 0;
        for (let i = lane; i < h.length; i += 3) ones += (h[i]! >>> bit) & 1;
        expect(Math.abs(ones / N - 0.5), `lane ${lane} bit ${bit}`).toBeLessThan(0.01);
      }
    }
  });

  it('keeps lanes independent: balanced xor bits and uniform joint nibbles', () => {
    for (const [x, y] of [[0, 1], [0, 2], [1, 2]] as const) {
      for (let bit = 0; bit < 32; bit++) {
        let ones = 0;
        for (let i = 0; i < h.length; i += 3) ones += ((h[i + x]! ^ h[i + y]!) >>> bit) & 1;
        expect(Math.abs(ones / N - 0.5), `lanes ${x}^${y} bit ${bit}`).toBeLessThan(0.01);
      }
      // Chi-square over 256 cells (255 degrees of freedom: mean 255, sd 22.6); 400 is > 6 sd.
      for (const shift of [0, 14, 28]) {
        const cells = new Float64Array(256);
        for (let i = 0; i < h.length; i += 3) {
          cells[(((h[i + x]! >>> shift) & 15) << 4) | ((h[i + y]! >>> shift) & 15)]! += 1;
        }
        const expected = N / 256;
        let chi = 0;
        for (const c of cells) chi += (c - expected) ** 2 / expected;
        expect(chi, `lanes ${x},${y} nibble at ${shift}`).toBeLessThan(400);
      }
    }
  });

  it('has no 96-bit collisions and about the birthday count of 32-bit ones', () => {
    const triples = new Set<string>();
    for (let i = 0; i < h.length; i += 3) triples.add(`${h[i]},${h[i + 1]},${h[i + 2]}`);
    expect(triples.size).toBe(N);
    for (let lane = 0; lane < 3; lane++) {
      const seen = new Set<number>();
      for (let i = lane; i < h.length; i += 3) seen.add(h[i]!);
      // Expected N^2 / 2^33 = 1.16 collisions per lane.
      expect(N - seen.size, `lane ${lane}`).toBeLessThanOrEqual(8);
    }
  });

  it('avalanches: changing one character flips each output bit about half the time', () => {
    const M = 20_000;
    const flips = new Float64Array(96);
    const ks = keys(M);
    for (let j = 0; j < M; j++) {
      const key = ks[j]!;
      const i = (j * 7) % key.length;
      const other = key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) ^ (1 << (j % 7))) + key.slice(i + 1);
      const a = hashKeyTuple(key);
      const b = hashKeyTuple(other);
      for (let lane = 0; lane < 3; lane++) {
        const d = a[lane]! ^ b[lane]!;
        for (let bit = 0; bit < 32; bit++) flips[lane * 32 + bit]! += (d >>> bit) & 1;
      }
    }
    // sd at 20k samples is 0.35%; 3% is over 8 sd.
    for (let b = 0; b < 96; b++) expect(Math.abs(flips[b]! / M - 0.5), `output bit ${b}`).toBeLessThan(0.03);
  });
});
