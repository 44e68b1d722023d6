import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BLOCK_BITS, BloomFilter, KeyFilter, blockedFpr, bloomParams, layerFpr } from '../../src/filter/bloom.js';
import { hashKey, hashKeyTuple } from '../../src/filter/hash.js';
import { OptoutError } from '../../src/errors.js';

/** Hashes of `prefix0..prefix<n-1>`-style keys, three words per key. */
function hashes(n: number, make: (i: number) => string): Uint32Array {
  const out = new Uint32Array(n * 3);
  for (let i = 0; i < n; i++) hashKey(make(i), out, i * 3);
  return out;
}

const present = (i: number): string => `p${i}.someone@example.org`;
const absent = (i: number): string => `a${i}.other@example.net`;
const ABSENT = hashes(200_000, absent);

function falsePositiveRate(f: { mightContain(h1: number, h2: number): boolean }): number {
  let fp = 0;
  for (let i = 0; i < ABSENT.length; i += 3) if (f.mightContain(ABSENT[i]!, ABSENT[i + 1]!)) fp++;
  return fp / (ABSENT.length / 3);
}

function addAll(f: { add(h1: number, h2: number): void }, h: Uint32Array): void {
  for (let i = 0; i < h.length; i += 3) f.add(h[i]!, h[i + 1]!);
}

function expectCode(fn: () => unknown, code: string, label = ''): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, label).toBeInstanceOf(OptoutError);
  expect((caught as OptoutError).code, label).toBe(code);
}

describe('bloomParams', () => {
  it('uses the measured constants for the default 0.1%', () => {
    const p = bloomParams(10_000_000);
    expect(p.fpr).toBe(0.001);
    expect(p.k).toBe(10);
    const bitsPerKey = (p.blocks * BLOCK_BITS) / p.capacity;
    expect(bitsPerKey).toBeGreaterThan(15.5);
    expect(bitsPerKey).toBeLessThan(16.5);
  });

  it('sizes so that the model stays under the target', () => {
    for (const fpr of [0.1, 0.01, 0.001, 0.0001, 1e-6]) {
      const p = bloomParams(1_000_000, fpr);
      expect(blockedFpr(p.capacity / p.blocks, p.k)).toBeLessThanOrEqual(fpr);
    }
  });

  it('rejects bad capacities and rates with OPTOUT_ERR_INVALID_OPTION', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 60]) {
      expectCode(() => BloomFilter.forCapacity(bad), 'OPTOUT_ERR_INVALID_OPTION');
    }
    for (const bad of [0, -0.1, 0.6, 1, Number.NaN]) {
      expectCode(() => BloomFilter.forCapacity(1000, bad), 'OPTOUT_ERR_INVALID_OPTION');
      expectCode(() => KeyFilter.create(1000, bad), 'OPTOUT_ERR_INVALID_OPTION');
    }
    expectCode(() => KeyFilter.create(-1), 'OPTOUT_ERR_INVALID_OPTION');
    expectCode(() => KeyFilter.create(10).ensureCapacity(1.5), 'OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('BloomFilter', () => {
  it('has no false negatives and a measured FPR under the target at full capacity', () => {
    for (const fpr of [0.01, 0.001]) {
      const n = 100_000;
      const f = BloomFilter.forCapacity(n, fpr);
      const h = hashes(n, present);
      addAll(f, h);
      expect(f.count).toBe(n);
      for (let i = 0; i < h.length; i += 3) if (!f.mightContain(h[i]!, h[i + 1]!)) expect.fail(`false negative ${i / 3}`);
      expect(falsePositiveRate(f)).toBeLessThanOrEqual(fpr);
    }
  });

  it('reports its size', () => {
    const f = BloomFilter.forCapacity(1000);
    expect(f.byteLength).toBe(f.blocks * 64);
    expect(f.capacity).toBe(1000);
  });

  it('treats int32 and uint32 spellings of a hash alike', () => {
    const f = BloomFilter.forCapacity(10);
    f.add(-1, -2);
    expect(f.mightContain(0xffffffff, 0xfffffffe)).toBe(true);
    f.add(0x80000000, 0);
    expect(f.mightContain(-0x80000000, 0)).toBe(true);
  });
});

describe('KeyFilter', () => {
  it('splits the FPR budget so that any number of layers sums under it', () => {
    let sum = 0;
    for (let i = 0; i < 10_000; i++) sum += layerFpr(0.001, i);
    expect(sum).toBeLessThan(0.001);
    expect(layerFpr(0.001, 0)).toBe(0.0005);
  });

  it('measures under its FPR at capacity, in one layer', () => {
    const f = KeyFilter.create(100_000);
    addAll(f, hashes(100_000, present));
    expect(f.layers).toBe(1);
    expect(falsePositiveRate(f)).toBeLessThanOrEqual(0.001);
  });

  it('grows by layers of at least twice the previous capacity and stays under its FPR', () => {
    const f = KeyFilter.create(1000);
    expect(f.capacity).toBe(1000);
    const h = hashes(60_000, present);
    addAll(f, h);
    expect(f.count).toBe(60_000);
    // 1000 + 2000 + 4000 + 8000 + 16000 + 32000 covers 60k.
    expect(f.layers).toBe(6);
    expect(f.capacity).toBe(63_000);
    for (let i = 0; i < h.length; i += 3) if (!f.mightContain(h[i]!, h[i + 1]!)) expect.fail(`false negative ${i / 3}`);
    expect(falsePositiveRate(f)).toBeLessThanOrEqual(0.001);
  });

  it('ensureCapacity adds one layer for the shortfall, only when needed', () => {
    const f = KeyFilter.create(1000);
    expect(f.ensureCapacity(1000)).toBe(false);
    expect(f.layers).toBe(1);
    expect(f.ensureCapacity(1500)).toBe(true);
    expect(f.layers).toBe(2);
    expect(f.capacity).toBe(3000); // at least twice the previous layer
    expect(f.ensureCapacity(100_000)).toBe(true);
    expect(f.capacity).toBe(100_000);
    expect(f.layers).toBe(3);
    const bytes = f.byteLength;
    expect(f.ensureCapacity(100_000)).toBe(false);
    expect(f.byteLength).toBe(bytes);
  });

  it('fills older layers first after an early ensureCapacity', () => {
    const f = KeyFilter.create(1000);
    f.ensureCapacity(5000);
    addAll(f, hashes(1000, present));
    const snap = KeyFilter.fromBuffer(f.toBuffer());
    // Layer counts are in the layer table: first layer full, second untouched.
    const buf = snap.toBuffer();
    expect(buf.readDoubleLE(24 + 8)).toBe(1000);
    expect(buf.readDoubleLE(24 + 32 + 8)).toBe(0);
  });

  it('never grows a filter smaller than a few blocks', () => {
    const f = KeyFilter.create(0);
    expect(f.capacity).toBeGreaterThanOrEqual(1);
    f.add(1, 2);
    expect(f.mightContain(1, 2)).toBe(true);
  });
});

describe('KeyFilter snapshots', () => {
  function sample(): { f: KeyFilter; h: Uint32Array } {
    const f = KeyFilter.create(2000, 0.01);
    const h = hashes(5000, present);
    addAll(f, h);
    return { f, h };
  }

  it('round-trips bits, counts and layers, and keeps accepting adds', () => {
    const { f, h } = sample();
    const buf = f.toBuffer();
    const g = KeyFilter.fromBuffer(buf);
    expect(g.count).toBe(f.count);
    expect(g.capacity).toBe(f.capacity);
    expect(g.layers).toBe(f.layers);
    expect(g.byteLength).toBe(f.byteLength);
    expect(g.fpr).toBe(0.01);
    expect(g.toBuffer().equals(buf)).toBe(true);
    for (let i = 0; i < h.length; i += 3) if (!g.mightContain(h[i]!, h[i + 1]!)) expect.fail(`false negative ${i / 3}`);
    const more = hashes(3000, absent);
    addAll(g, more);
    addAll(f, more);
    expect(g.toBuffer().equals(f.toBuffer())).toBe(true);
  });

  it('loads from an unaligned plain Uint8Array', () => {
    const { f } = sample();
    const buf = f.toBuffer();
    const raw = new Uint8Array(buf.length + 1);
    raw.set(buf, 1);
    const g = KeyFilter.fromBuffer(raw.subarray(1));
    expect(g.toBuffer().equals(buf)).toBe(true);
  });

  it('rejects truncated, extended and bit-flipped snapshots with OPTOUT_ERR_STORE_CORRUPT', () => {
    const { f } = sample();
    const buf = f.toBuffer();
    for (const len of [0, 3, 23, 24, 27, 60, 100, buf.length - 5, buf.length - 1]) {
      expectCode(() => KeyFilter.fromBuffer(buf.subarray(0, len)), 'OPTOUT_ERR_STORE_CORRUPT', `length ${len}`);
    }
    expectCode(() => KeyFilter.fromBuffer(Buffer.concat([buf, Buffer.alloc(1)])), 'OPTOUT_ERR_STORE_CORRUPT');
    for (const at of [0, 4, 6, 8, 12, 16, 24, 40, 52, 56, 200, buf.length - 10, buf.length - 1]) {
      const bad = Buffer.from(buf);
      bad[at] = bad[at]! ^ 0x10;
      expectCode(() => KeyFilter.fromBuffer(bad), 'OPTOUT_ERR_STORE_CORRUPT', `byte ${at}`);
    }
  });

  it('rejects a wrong magic, format, hash version or block size even with a valid checksum', () => {
    const { f } = sample();
    const patches: [string, (b: Buffer) => void][] = [
      ['magic', (b) => b.write('XXXX', 0, 'latin1')],
      ['format', (b) => b.writeUInt16LE(b.readUInt16LE(4) + 1, 4)],
      ['hash version', (b) => b.writeUInt16LE(2, 6)],
      ['block bits', (b) => b.writeUInt32LE(256, 8)],
      ['no layers', (b) => b.writeUInt32LE(0, 12)],
      ['fpr', (b) => b.writeDoubleLE(0.9, 16)],
      ['count over capacity', (b) => b.writeDoubleLE(1e9, 24 + 8)],
      ['fractional capacity', (b) => b.writeDoubleLE(1.5, 24)],
      ['k', (b) => b.writeUInt32LE(0, 24 + 24)],
      ['blocks', (b) => b.writeUInt32LE(b.readUInt32LE(24 + 28) + 1, 24 + 28)],
    ];
    for (const [name, patch] of patches) {
      const bad = Buffer.from(f.toBuffer());
      patch(bad);
      resealed(bad);
      expectCode(() => KeyFilter.fromBuffer(bad), 'OPTOUT_ERR_STORE_CORRUPT', name);
    }
  });
});

/** Rewrites the trailing CRC so that only the semantic checks can catch a patch. */
function resealed(b: Buffer): void {
  const end = b.length - 4;
  b.writeUInt32LE(crc32(b.subarray(0, end)), end);
}

describe('KeyFilter, keys added in hash order', () => {
  // Imports add keys in the store's order, which is h1 order; a layer filled part-way through
  // must still spread its keys over all its blocks (a regression: 10% false positives).
  it('keeps its false-positive rate when keys arrive sorted by h1 and a layer fills part-way', () => {
    const keys = Array.from({ length: 95_000 }, (_, i) => hashKeyTuple(`sorted${i}@example.org`));
    keys.sort((a, b) => (a[0] >>> 0) - (b[0] >>> 0));
    const f = KeyFilter.create(10_000);
    f.ensureCapacity(100_000);
    for (const [h1, h2] of keys) f.add(h1, h2);
    let hits = 0;
    for (let i = 0; i < 100_000; i++) {
      const [h1, h2] = hashKeyTuple(`absent${i}@example.net`);
      if (f.mightContain(h1, h2)) hits++;
    }
    expect(hits / 100_000).toBeLessThan(0.002);
  });
});
