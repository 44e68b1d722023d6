import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BucketSpool, bucketBitsFor } from '../../src/pipeline/spool.js';
import processChunk, { dedupBucket } from '../../src/normalize/worker.js';
import { bucketOf } from '../../src/normalize/chunk-task.js';
import { hashKeyTuple } from '../../src/dedup/hash.js';
import { entryKey } from '../../src/store/keys.js';

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
    spool.append(['a@x.org\n', '', 'b@x.org\tB@x.org\n', '']);
    const lengths = spool.flush();
    expect(lengths).toEqual([8, 0, 16, 0]);
    spool.append(['c@x.org\n', 'd@x.org\n', '', '']);
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

describe('spool buckets', () => {
  it('puts every copy of a key in the same bucket, whatever its spelling', () => {
    const csv = 'email\nJane.Doe@Example.org\n jane.doe+news@example.org\nother@example.org\n<jane.doe@EXAMPLE.org>\n';
    const r = processChunk({ bytes: Buffer.from(csv).subarray(6), delimiter: 44, column: 0, maxRecordBytes: 1 << 20, bucketBits: 4, final: true });
    expect(r.valid).toBe(4);
    const b = bucketOf(hashKeyTuple('jane.doe@example.org')[0], 4);
    expect(r.buckets[b]?.split('\n').filter((l) => l.startsWith('jane.doe@example.org'))).toHaveLength(3);
  });

  it('dedups a bucket exactly: distinct keys sorted, the first address kept, hashes matching', () => {
    const dir = temp();
    const spool = new BucketSpool(dir, 0);
    spool.append(['zed@x.org\nann@x.org\tAnn+A@x.org\nann@x.org\nzed@x.org\nann@x.org\tann+b@x.org\n']);
    spool.flush();
    const r = dedupBucket({ path: spool.path(0), keyPrefix: 'e*\u0000' });
    expect(r.lines).toBe(5);
    const keys = r.keys.split('\n');
    // Store order: by first hash.
    const expected = ['ann@x.org', 'zed@x.org'].sort((a, b) => hashKeyTuple(a)[0] - hashKeyTuple(b)[0]);
    expect(keys).toEqual(expected.map((k) => entryKey('*', k)));
    const ann = expected.indexOf('ann@x.org');
    expect(r.addressRows).toEqual([ann]);
    expect(r.addresses).toBe('Ann+A@x.org');
    expect([...r.hashes.subarray(ann * 3, ann * 3 + 3)]).toEqual(hashKeyTuple('ann@x.org'));
  });

  it('treats a missing bucket file as empty', () => {
    const r = dedupBucket({ path: join(temp(), 'none'), keyPrefix: '' });
    expect(r).toMatchObject({ lines: 0, keys: '', addressRows: [] });
  });
});
