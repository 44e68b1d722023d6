/** The COPY text of a chunk: PostgreSQL's text format, whatever the rows hold, however many pieces. */
import { describe, expect, it } from 'vitest';
import { StagedChunk, type StagedKey } from '../../../src/store/pg/stage.js';

/** COPY text format, field by field (the PostgreSQL docs, "COPY ... Text Format"). */
function oracle(rows: readonly StagedKey[]): string {
  const field = (v: string | number | null): string => v === null ? '\\N'
    : String(v).replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r').replaceAll('\t', '\\t');
  return rows.map((r) => [r.hash, r.key, r.address, r.reason].map(field).join('\t') + '\n').join('');
}

describe('StagedChunk', () => {
  it('escapes backslashes, tabs and line ends, writes NULL as \\N, and cuts the text only between rows', () => {
    const rows: StagedKey[] = [
      { hash: -2147483648, key: 'a@x.org', address: null, reason: null },
      { hash: 7, key: 'b\\c@x.org', address: 'B\tc@X.org', reason: 'bounce' },
      { hash: 2147483647, key: 'd@x.org', address: 'line\r\nbreak', reason: null },
    ];
    // Enough rows for several pieces of 64 KiB.
    for (let i = 0; i < 20_000; i++) rows.push({ hash: i - 10_000, key: `user${i}@example.com`, address: i % 3 === 0 ? `User${i}@Example.com` : null, reason: i % 7 === 0 ? 'complaint' : null });
    const chunk = new StagedChunk();
    for (const r of rows) chunk.add(r);
    expect(chunk.rows).toBe(rows.length);
    const pieces = chunk.pieces();
    expect(pieces.length).toBeGreaterThan(3);
    for (const p of pieces) expect(p.endsWith('\n')).toBe(true);
    expect(pieces.join('')).toBe(oracle(rows));
    // Asked again (a retried commit), the same text.
    expect(chunk.pieces().join('')).toBe(oracle(rows));
  });
});
