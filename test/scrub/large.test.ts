/**
 * A generated send list of 50,000 rows scrubbed in 1 KiB chunks (thousands of chunk boundaries,
 * two threads) against a store holding its first 20,000 rows: the output must equal the rows
 * computed here from csv-parse and the address policy, and must not depend on the chunk size.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { normalizeEmail } from '../../src/policy/email.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport, runScrub } from '../inline.js';

let dir: string;
let db: string;
let send: string;
let want: { eligible: string; removed: string; counts: Record<string, number> };

/** Keys of the valid email cells (first column) of a generated list. */
function keysOf(text: string): string[] {
  return (parse(text, { relax_column_count: true, skip_empty_lines: true }) as string[][]).slice(1).flatMap((r) => {
    const n = normalizeEmail(r[0] ?? '');
    return n.valid ? [n.key] : [];
  });
}

beforeAll(async () => {
  dir = await tempDir('optout-scrub-large-');
  db = join(dir, 'db');
  const listed = join(dir, 'listed.csv');
  send = join(dir, 'send.csv');
  await writeList({ rows: 20_000, seed: 42, out: listed });
  await writeList({ rows: 50_000, seed: 42, out: send });
  await runImport({ source: { kind: 'file', path: listed }, db, confirm: { mode: 'yes' } });

  const suppressed = new Set(keysOf(await readFile(listed, 'utf8')));
  const text = await readFile(send, 'utf8');
  // The generator never breaks a line inside a field: each line after the header is one row.
  const lines = text.split('\n');
  expect(lines.pop()).toBe('');
  const [header, ...rows] = lines as [string, ...string[]];
  const records = (parse(text, { relax_column_count: true }) as string[][]).slice(1);
  expect(records).toHaveLength(rows.length);
  const headerFields = header.split(',').length;
  want = { eligible: header + '\n', removed: `${header},optout_reason,optout_detail\n`, counts: { rows: rows.length, eligible: 0, suppressed: 0, invalid: 0 } };
  records.forEach((record, i) => {
    const n = normalizeEmail(record[0] ?? '');
    const row = rows[i] as string;
    const pad = ','.repeat(Math.max(0, headerFields - record.length));
    if (!n.valid) {
      want.removed += `${row}${pad},invalid_address,${n.reason}\n`;
      want.counts['invalid']!++;
    } else if (suppressed.has(n.key)) {
      want.removed += `${row}${pad},suppressed,*\n`;
      want.counts['suppressed']!++;
    } else {
      want.eligible += row + '\n';
      want.counts['eligible']!++;
    }
  });
});

afterAll(removeTempDirs);

describe('runScrub on 50,000 generated rows', () => {
  it.each([['1 KiB', 1024], ['64 KiB', 64 * 1024], ['1 MiB (the default)', undefined]])('chunks of %s: the expected rows, in order, as written', async (_label, chunkBytes) => {
    const out = join(dir, `eligible-${chunkBytes}.csv`);
    const removed = join(dir, `removed-${chunkBytes}.csv`);
    const report = await runScrub({ source: { kind: 'file', path: send }, db, out, removed, threads: 2, ...(chunkBytes ? { chunkBytes } : {}) });
    expect(report).toMatchObject(want.counts);
    // Enough of each kind for the comparison to mean something.
    expect(report.suppressed).toBeGreaterThan(15_000);
    expect(report.eligible).toBeGreaterThan(25_000);
    expect(report.invalid).toBeGreaterThan(300);
    expect(await readFile(out, 'utf8')).toBe(want.eligible);
    expect(await readFile(removed, 'utf8')).toBe(want.removed);
  });
});
