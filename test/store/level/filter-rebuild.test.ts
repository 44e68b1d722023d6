/**
 * Loading the key filter when a store opens: from the snapshot, from an older snapshot plus the
 * filter log (a crashed writer), from the log alone, or from the entries; whichever it is, every
 * stored key must be in the filter. The property over random crashed sessions is in
 * filter-rebuild.crash.test.ts.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hashKeyTuple } from '../../../src/filter/hash.js';
import { KeyFilter } from '../../../src/filter/bloom.js';
import { FilterLogRecord, decodeFilterLogRecord } from '../../../src/store/level/filter-log.js';
import { BlockOrderedAdds, scanRanges } from '../../../src/store/level/filter-rebuild.js';
import { entryKey, filterLogKey } from '../../../src/store/level/keys.js';
import { LevelStore } from '../../../src/store/level/level-store.js';
import { removeTempDirs, tempDir } from '../../helpers.js';
import { commit, crash, reopen, session } from './sessions.js';

afterEach(async () => {
  await removeTempDirs();
});

const keysOf = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}@example.org`);

describe('loading the key filter', () => {
  it('loads the snapshot after a clean close', async () => {
    const dir = await tempDir();
    await session(dir, [['*', keysOf('a', 50)]], 'close');
    const r = await reopen(dir);
    expect({ source: r.source, missed: r.missed, stored: r.stored }).toEqual({ source: 'snapshot', missed: [], stored: 50 });
    await r.store.close();
  });

  it('replays the log onto an older snapshot after a writer crashed', async () => {
    const dir = await tempDir();
    await session(dir, [['*', keysOf('a', 30)]], 'close');
    await session(dir, [['*', keysOf('b', 30)], ['emea', keysOf('c', 30)]], 'crash');

    const r = await reopen(dir);
    expect({ source: r.source, missed: r.missed, stored: r.stored }).toEqual({ source: 'replay', missed: [], stored: 90 });
    // The owner saves what it rebuilt, so that the next start is a plain snapshot load.
    expect(await r.store.persistFilter()).toBe(true);
    expect(await r.store.persistFilter()).toBe(false);
    await crash(r.store);
    const again = await reopen(dir);
    expect({ source: again.source, missed: again.missed }).toEqual({ source: 'snapshot', missed: [] });
    await again.store.close();
  });

  it('rebuilds from the log when the snapshot is missing, damaged or from a later generation', async () => {
    for (const damage of ['remove', 'flip', 'later'] as const) {
      const dir = await tempDir();
      await session(dir, [['*', keysOf('a', 40)], ['u1', keysOf('b', 40)]], 'close');
      const path = join(dir, 'filter.snapshot');
      if (damage === 'remove') rmSync(path);
      if (damage === 'flip') {
        const snap = readFileSync(path);
        snap[snap.length - 100] = (snap[snap.length - 100] as number) ^ 0x01;
        writeFileSync(path, snap);
      }
      if (damage === 'later') {
        // A snapshot of a later generation (the store was restored from an older copy): it may
        // lack keys the store has, so it is not used.
        const snap = readFileSync(path);
        snap.writeDoubleLE(99, 8);
        writeFileSync(path, snap);
      }
      const r = await reopen(dir);
      expect({ damage, source: r.source, missed: r.missed, stored: r.stored }).toEqual({ damage, source: 'log', missed: [], stored: 80 });
      await r.store.close();
    }
  });

  it('ignores a snapshot of the same generation from another history', async () => {
    // Two stores at the same generation with other keys: another store's snapshot, or this
    // store's own from before it was restored from an older copy and written again.
    const mine = await tempDir();
    const other = await tempDir();
    await session(mine, [['*', keysOf('mine', 40)], ['*', keysOf('more', 40)]], 'close');
    await session(other, [['*', keysOf('other', 40)], ['*', keysOf('else', 40)]], 'close');
    writeFileSync(join(mine, 'filter.snapshot'), readFileSync(join(other, 'filter.snapshot')));
    const r = await reopen(mine);
    expect({ source: r.source, missed: r.missed, stored: r.stored }).toEqual({ source: 'log', missed: [], stored: 80 });
    await r.store.close();
  });

  it('scans the entries when a log record is missing or damaged', async () => {
    for (const damage of ['delete', 'corrupt'] as const) {
      const dir = await tempDir();
      await session(dir, [['*', keysOf('a', 40)], ['*', keysOf('b', 40)], ['u1', keysOf('c', 40)]], 'close');
      rmSync(join(dir, 'filter.snapshot'));
      const raw = await LevelStore.open(dir);
      if (damage === 'delete') await raw.db.del(filterLogKey(2));
      else {
        const record = await raw.db.get<string, Buffer>(filterLogKey(2), { valueEncoding: 'buffer' });
        const bad = Buffer.from(record as Buffer);
        bad[10] = (bad[10] as number) ^ 0x80;
        await raw.db.put<string, Buffer>(filterLogKey(2), bad, { valueEncoding: 'buffer' });
      }
      await crash(raw);
      const r = await reopen(dir);
      expect({ damage, source: r.source, missed: r.missed, stored: r.stored }).toEqual({ damage, source: 'scan', missed: [], stored: 120 });
      await r.store.close();
    }
  });

  it('scans a store whose older snapshot cannot be brought up to date', async () => {
    const dir = await tempDir();
    await session(dir, [['*', keysOf('a', 20)]], 'close');
    const writer = await LevelStore.open(dir);
    await commit(writer, '*', keysOf('b', 20));
    // A writer that wrote an entry without its log record (an older version, say).
    await writer.db.batch([
      { type: 'put', key: entryKey('*', 'stray@example.org'), value: '1' },
      { type: 'put', key: 'mgeneration', value: '3' },
    ]);
    await crash(writer);
    const r = await reopen(dir);
    expect({ source: r.source, missed: r.missed, stored: r.stored }).toEqual({ source: 'scan', missed: [], stored: 41 });
    await r.store.close();
  });
});

describe('filter log records', () => {
  it('hold the hashes of the keys of the entry keys written, and reject any damage', () => {
    const record = new FilterLogRecord();
    const keys = keysOf('k', 3000);
    for (const k of keys) record.addEntryKey(entryKey(k.length % 2 === 0 ? '*' : 'unit-7', k));
    expect(record.count).toBe(3000);
    const buf = record.encode();
    const pairs = decodeFilterLogRecord(buf)?.pairs;
    expect(pairs).toBeDefined();
    expect(Array.from({ length: 3000 }, (_, i) => [pairs?.[2 * i], pairs?.[2 * i + 1]]))
      .toEqual(keys.map((k) => hashKeyTuple(k).slice(0, 2)));
    expect(decodeFilterLogRecord(new FilterLogRecord().encode())?.pairs).toEqual(new Uint32Array(0));
    for (const at of [0, 2, 4, 9, buf.length - 1]) {
      const bad = Buffer.from(buf);
      bad[at] = (bad[at] as number) ^ 0x10;
      expect(decodeFilterLogRecord(bad), `byte ${at}`).toBeUndefined();
    }
    expect(decodeFilterLogRecord(buf.subarray(0, buf.length - 4))).toBeUndefined();
    expect(decodeFilterLogRecord(Buffer.alloc(3))).toBeUndefined();
  });
});

describe('scan ranges', () => {
  const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
  const inRange = (k: string, r: ReturnType<typeof scanRanges>[number]): boolean => {
    const low = 'gt' in r ? Buffer.compare(bytes(k), bytes(r.gt)) > 0 : Buffer.compare(bytes(k), bytes(r.gte)) >= 0;
    return low && Buffer.compare(bytes(k), bytes(r.lt)) < 0;
  };

  it('put every entry key in exactly one range, whatever the scopes given (property)', () => {
    const scopeArb = fc.oneof(fc.constant('*'), fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }));
    fc.assert(fc.property(
      fc.uniqueArray(scopeArb, { maxLength: 6 }),
      fc.array(fc.tuple(scopeArb, fc.string({ unit: 'binary', maxLength: 12 })), { minLength: 1, maxLength: 40 }),
      (hinted, entries) => {
        const ranges = scanRanges(hinted);
        return entries.every(([scope, key]) => {
          if (scope.includes('\u0000')) return true;
          const dbKey = entryKey(scope, key);
          return ranges.filter((r) => inRange(dbKey, r)).length === 1;
        });
      }), { numRuns: 300 });
  });
});

describe('block-ordered adds', () => {
  it('add every pair, across several staging rounds, once flushed', () => {
    const n = (1 << 20) * 2 + 12_345;
    const filter = KeyFilter.create(n);
    const adds = new BlockOrderedAdds(filter);
    let x = 7;
    const next = (): number => {
      x = (Math.imul(x, 1_664_525) + 1_013_904_223) | 0;
      return (x ^ (x >>> 15)) >>> 0;
    };
    const pairs = new Uint32Array(2 * n);
    for (let i = 0; i < pairs.length; i++) pairs[i] = next();
    for (let i = 0; i < pairs.length; i += 2) adds.add(pairs[i] as number, pairs[i + 1] as number);
    adds.flush();
    expect(filter.count).toBe(n);
    let absent = 0;
    for (let i = 0; i < pairs.length; i += 2) if (!filter.mightContain(pairs[i] as number, pairs[i + 1] as number)) absent++;
    expect(absent).toBe(0);
  });
});
