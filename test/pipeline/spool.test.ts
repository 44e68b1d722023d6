import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { BucketSpool, bucketBitsFor } from '../../src/pipeline/spool.js';
import processChunk, { DEDUP_LIMITS, dedupBucket } from '../../src/workers/import-worker.js';
import { bucketOf } from '../../src/workers/chunk-task.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { entryKey } from '../../src/store/level/keys.js';
import { bucketBytesOf, bucketText } from '../helpers.js';

const dirs: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'optout-spool-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('BucketSpool', () => {
  it('appends per bucket, reports lengths at flush, and truncates back to a checkpoint', () => {
    const spool = new BucketSpool(join(temp(), 's'), 2);
    spool.append(bucketBytesOf(['a@x.org\n', '', 'b@x.org\tB@x.org\n', '']));
    const lengths = spool.flush();
    expect(lengths).toEqual([8, 0, 16, 0]);
    spool.append(bucketBytesOf(['c@x.org\n', 'd@x.org\n', '', '']));
    spool.flush();
    spool.truncateTo(lengths);
    expect(readFileSync(spool.path(0), 'utf8')).toBe('a@x.org\n');
    expect(readFileSync(spool.path(1), 'utf8')).toBe('');
    expect(spool.flush()).toEqual(lengths);
    // A crash before the first checkpoint: nothing written so far counts.
    spool.truncateTo([]);
    expect(spool.flush()).toEqual([0, 0, 0, 0]);
  });

  it('picks more buckets for more keys, within bounds', () => {
    expect(bucketBitsFor(1)).toBe(4);
    expect(bucketBitsFor(10_000_000)).toBeGreaterThan(bucketBitsFor(1_000_000));
    expect(bucketBitsFor(1e12)).toBe(10);
  });
});

/** A bucket's chunk keys, decoded from the bytes the worker wrote. */
function keysOf(r: ReturnType<typeof dedupBucket>): string[] {
  const bytes = Buffer.from(r.keyBytes.buffer, r.keyBytes.byteOffset, r.keyBytes.length);
  return Array.from(r.keyEnds, (end, i) => bytes.toString('utf8', i === 0 ? 0 : r.keyEnds[i - 1], end));
}

describe('spool buckets', () => {
  it('puts every copy of a key in the same bucket, whatever its spelling', () => {
    const csv = 'email\nJane.Doe@Example.org\n jane.doe+news@example.org\nother@example.org\n<jane.doe@EXAMPLE.org>\n';
    const r = processChunk({ bytes: Buffer.from(csv).subarray(6), delimiter: 44, column: 0, maxRecordBytes: 1 << 20, bucketBits: 4, final: true, substitutes: false });
    expect(r.valid).toBe(4);
    const b = bucketOf(hashKeyTuple('jane.doe@example.org')[0], 4);
    expect(bucketText(r.buckets, b).split('\n').filter((l) => l.startsWith('jane.doe@example.org'))).toHaveLength(3);
  });

  it('dedups a bucket exactly: distinct keys sorted, the first address kept, hashes matching', () => {
    const dir = temp();
    const spool = new BucketSpool(dir, 0);
    spool.append(bucketBytesOf(['zed@x.org\nann@x.org\tAnn+A@x.org\nann@x.org\nzed@x.org\nann@x.org\tann+b@x.org\n']));
    spool.flush();
    const r = dedupBucket({ path: spool.path(0), codec: { prefix: 'e*\u0000', withHash: true } });
    expect(r.lines).toBe(5);
    const keys = keysOf(r);
    // Store order: by first hash.
    const expected = ['ann@x.org', 'zed@x.org'].sort((a, b) => hashKeyTuple(a)[0] - hashKeyTuple(b)[0]);
    expect(keys).toEqual(expected.map((k) => entryKey('*', k)));
    const ann = expected.indexOf('ann@x.org');
    expect(r.addressRows).toEqual([ann]);
    expect(r.addresses).toEqual(['Ann+A@x.org']);
    expect([...r.hashes.subarray(ann * 3, ann * 3 + 3)]).toEqual(hashKeyTuple('ann@x.org'));
  });

  it('treats a missing bucket file as empty', () => {
    const r = dedupBucket({ path: join(temp(), 'none'), codec: { prefix: '', withHash: false } });
    expect(r).toMatchObject({ lines: 0, addresses: [], addressRows: [] });
    expect(keysOf(r)).toEqual([]);
  });

  /** The result as the merge pass reads it: distinct keys and each one's kept address. */
  const view = (r: ReturnType<typeof dedupBucket>): { lines: number; keys: string[]; addresses: Map<number, string>; hashes: number[] } => {
    const addresses = r.addresses.flatMap((p) => p.split('\n'));
    return {
      lines: r.lines,
      keys: keysOf(r),
      addresses: new Map(r.addressRows.map((row, i) => [row, addresses[i] as string])),
      hashes: [...r.hashes],
    };
  };

  // Keys with multi-byte characters, so that piece cuts fall inside UTF-8 sequences too.
  const line = fc.record({
    key: fc.constantFrom('a@x.org', 'bb@x.org', 'jöns@x.org', 'ærlig.løs@eksempel.no', '中文@例子.cn', 'z'.repeat(40) + '@x.org'),
    address: fc.option(fc.constantFrom('A@x.org', 'Jöns+news@x.org', '中文+x@例子.cn'), { nil: undefined }),
  });

  it('dedups exactly whatever the piece size, duplicates spanning piece boundaries included (property)', () => {
    const path = join(temp(), 'bucket');
    fc.assert(fc.property(fc.array(line, { maxLength: 200 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5 }),
      (rows, pieceBytes, addressesPerPart) => {
        writeFileSync(path, rows.map((r) => (r.address === undefined ? r.key : `${r.key}\t${r.address}`) + '\n').join(''));
        const got = view(dedupBucket({ path, codec: { prefix: '', withHash: false } }, { pieceBytes, addressesPerPart }));
        // The oracle: a Set of keys, and the first address seen for each.
        const first = new Map<string, string | undefined>();
        for (const r of rows) if (!first.has(r.key)) first.set(r.key, r.address);
        expect(got.lines).toBe(rows.length);
        const keys = got.keys;
        expect(new Set(keys).size).toBe(keys.length);
        expect([...keys].sort()).toEqual([...first.keys()].sort());
        keys.forEach((k, i) => expect(got.addresses.get(i)).toBe(first.get(k)));
      }), { numRuns: 300 });
  });

  it('dedups thousands of keys exactly, in store order, each with its own hashes, first address and first reason (property)', () => {
    const path = join(temp(), 'bucket');
    const row = fc.record({ key: fc.integer({ min: 0, max: 4_000 }), address: fc.boolean(), reason: fc.integer({ min: 0, max: 3 }) });
    fc.assert(fc.property(fc.array(row, { minLength: 1, maxLength: 6_000 }), (rows) => {
      const keyOf = (k: number): string => (k % 7 === 0 ? `jöns.${k}@exämple.org` : `user${k}@example${k % 13}.org`);
      // `key[\t[address][\t<reason>]]`, as the workers spool rows.
      writeFileSync(path, rows.map((r, i) => {
        const address = r.address ? `User${r.key}+${i}@x.org` : '';
        return r.reason > 0 ? `${keyOf(r.key)}\t${address}\t${r.reason}\n` : address !== '' ? `${keyOf(r.key)}\t${address}\n` : `${keyOf(r.key)}\n`;
      }).join(''));
      const r = dedupBucket({ path, codec: { prefix: 'e*\u0000', withHash: true } });
      const got = view(r);
      const first = new Map<string, { address: string | undefined; reason: number }>();
      rows.forEach((x, i) => {
        if (!first.has(keyOf(x.key))) first.set(keyOf(x.key), { address: x.address ? `User${x.key}+${i}@x.org` : undefined, reason: x.reason });
      });
      const expected = [...first.keys()].sort((a, b) => hashKeyTuple(a)[0] - hashKeyTuple(b)[0] || Buffer.compare(Buffer.from(a), Buffer.from(b)));
      expect(got.lines).toBe(rows.length);
      expect(got.keys).toEqual(expected.map((k) => entryKey('*', k)));
      expected.forEach((k, i) => {
        expect(got.hashes.slice(i * 3, i * 3 + 3)).toEqual(hashKeyTuple(k));
        expect(got.addresses.get(i)).toBe(first.get(k)?.address);
      });
      const reasons = [...r.reasons];
      expect(reasons.length === 0 ? expected.map(() => 0) : reasons).toEqual(expected.map((k) => first.get(k)?.reason));
    }), { numRuns: 25 });
  });

  it('orders keys that share their first hash by their UTF-8 bytes, as LevelDB does', () => {
    // The first two keys of this form whose first hashes are equal (a birthday search).
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined && i < 1_000_000; i++) {
      const key = `tie${i}@x.org`;
      const h1 = hashKeyTuple(key)[0];
      const other = seen.get(h1);
      if (other === undefined) seen.set(h1, key);
      else pair = [other, key];
    }
    expect(pair).toBeDefined();
    const [a, b] = pair as [string, string];
    const path = join(temp(), 'bucket');
    const bytesOrder = [a, b].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    for (const rows of [[a, b], [b, a], [b, 'z@x.org', a, b]]) {
      writeFileSync(path, rows.join('\n') + '\n');
      const keys = keysOf(dedupBucket({ path, codec: { prefix: '', withHash: false } }));
      expect(keys.filter((k) => k === a || k === b)).toEqual(bytesOrder);
    }
  });

  it('reads a last line that has no line break', () => {
    const path = join(temp(), 'bucket');
    writeFileSync(path, 'a@x.org\nb@x.org\tB@x.org\na@x.org\nc@x.org\tC@x.org');
    for (const pieceBytes of [1, 3, 1 << 20]) {
      const got = view(dedupBucket({ path, codec: { prefix: '', withHash: false } }, { ...DEDUP_LIMITS, pieceBytes }));
      expect(got.lines).toBe(4);
      expect(new Map([...got.addresses].map(([row, address]) => [got.keys[row], address]))).toEqual(new Map([['b@x.org', 'B@x.org'], ['c@x.org', 'C@x.org']]));
      expect([...got.keys].sort()).toEqual(['a@x.org', 'b@x.org', 'c@x.org']);
    }
  });

  it('a bucket file many pieces long gives the same result as reading it whole', () => {
    const dir = temp();
    const spool = new BucketSpool(join(dir, 's'), 0);
    const csv = Array.from({ length: 20_000 }, (_, i) => `User${i % 7000}+tag${i}@Example${i % 7000 % 13}.org`).join('\n') + '\n';
    spool.append(processChunk({ bytes: Buffer.from(csv), delimiter: 44, column: 0, maxRecordBytes: 1 << 20, bucketBits: 0, final: true, substitutes: false }).buckets);
    spool.flush();
    const task = { path: spool.path(0), codec: { prefix: 'e*\u0000', withHash: true } };
    expect(statSync(task.path).size).toBeGreaterThan(100 * 4096);
    const whole = dedupBucket(task, { ...DEDUP_LIMITS, pieceBytes: 1 << 30 });
    expect(whole.addresses).toHaveLength(1);
    expect(whole.lines).toBe(20_000);
    expect(whole.addressRows.length).toBe(7000);
    const pieces = dedupBucket(task, { pieceBytes: 4096, addressesPerPart: 1000 });
    expect(pieces.addresses).toHaveLength(7);
    expect(view(pieces)).toEqual(view(whole));
  });
});
