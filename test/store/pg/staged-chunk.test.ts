/** The COPY text of a chunk: PostgreSQL's text format, whatever the rows hold, however many pieces. */
import { describe, expect, it } from 'vitest';
import { StagedChunk, type StagedKey } from '../../../src/store/pg/stage.js';

/** COPY text format, field by field (the PostgreSQL docs, "COPY ... Text Format"). */
function oracle(rows: readonly StagedKey[]): string {
  const field = (v: string | number | null): string => v === null ? '\\N'
    : String(v).replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r').replaceAll('\t', '\\t');
  return rows.map((r) => [r.hash, r.key, r.address, r.reason].map(field).join('\t') + '\n').join('');
}

/** A chunk key as the workers write it for the PostgreSQL ledger: scope, NUL, 8 hex digits, the key. */
const chunkKey = (scope: string, key: string): Buffer => Buffer.from(`${scope}\u00000123abcd${key}`);

const text = (pieces: readonly Buffer[]): string => Buffer.concat(pieces).toString('utf8');

describe('StagedChunk', () => {
  const rows: StagedKey[] = [
    { hash: -2147483648, key: 'a@x.org', address: null, reason: null },
    { hash: 0, key: 'b\\c@x.org', address: 'B\tc@X.org', reason: 'bounced' },
    { hash: 2147483647, key: 'd@x.org', address: 'line\r\nbreak', reason: null },
    { hash: -1, key: 'ü\\ñ\t@bücher.de', address: 'Ü\\Ñ\n@Bücher.de', reason: 'manual' },
    { hash: 10, key: '用户@例子.广告', address: null, reason: null },
  ];
  // Enough rows for several pieces of 64 KiB.
  for (let i = 0; i < 20_000; i++) {
    rows.push({ hash: (i - 10_000) * 99_991, key: `user${i}@example.com`, address: i % 3 === 0 ? `User${i}@Example.com` : null, reason: i % 7 === 0 ? 'complaint' : null });
  }
  // One row longer than a piece: its own piece.
  rows.push({ hash: 5, key: `${'k'.repeat(70_000)}@x.org`, address: `${'\t'.repeat(40_000)}@x.org`, reason: null });

  it('escapes backslashes, tabs and line ends, writes NULL as \\N, and cuts the text only between rows', () => {
    const chunk = new StagedChunk();
    for (const r of rows) chunk.add(r);
    expect(chunk.rows).toBe(rows.length);
    const pieces = chunk.pieces();
    expect(pieces.length).toBeGreaterThan(3);
    for (const p of pieces) expect(p[p.length - 1]).toBe(0x0a);
    expect(text(pieces)).toBe(oracle(rows));
    // Asked again (a retried commit), the same text.
    expect(text(chunk.pieces())).toBe(oracle(rows));
  });

  it('writes a key given as chunk key bytes as the same text as the key given as a string, in any mix', () => {
    for (const bytesWhen of [(): boolean => true, (i: number): boolean => i % 2 === 0, (i: number): boolean => i % 2 === 1]) {
      const chunk = new StagedChunk();
      rows.forEach((r, i) => {
        if (bytesWhen(i)) chunk.addBytes(r.hash, chunkKey('unit-7', r.key), Buffer.byteLength('unit-7') + 1 + 8, r.address, r.reason);
        else chunk.add(r);
      });
      expect(chunk.rows).toBe(rows.length);
      expect(text(chunk.pieces())).toBe(oracle(rows));
    }
  });
});
