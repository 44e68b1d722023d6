import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { generateRows } from '../../bench/generate.js';
import { ensureNdjson } from '../../bench/lib/harness.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

describe('the benchmark list as NDJSON', () => {
  it('holds the CSV\'s records in order, keyed by its header, and imports to the same counts', async () => {
    const dir = await tempDir('optout-bench-ndjson-');
    const csvFile = join(dir, 'list.csv');
    const csv = [...generateRows({ rows: 5_000, seed: 9 })].join('');
    writeFileSync(csvFile, csv);
    const file = join(dir, 'list.ndjson');
    const lines: string[] = [];
    await ensureNdjson(csvFile, file, (l) => lines.push(l));
    const records = (parse(csv, { relax_column_count: true }) as string[][]);
    const [header, ...rows] = records as [string[], ...string[][]];
    const objects = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(objects).toHaveLength(5_000);
    expect(objects.map((o) => o['email'])).toEqual(rows.map((r) => r[0]));
    expect(Object.keys(objects[0] ?? {})).toEqual(header);
    await ensureNdjson(csvFile, file, (l) => lines.push(l));
    expect(lines.at(-1)).toBe(`reusing ${file}`);

    const counts = async (path: string) => {
      const r = await runImport({ source: { kind: 'file', path }, db: join(dir, `db-${path.slice(-6)}`), confirm: { mode: 'yes' } });
      return { format: r.format, rows: r.rows, valid: r.valid, invalid: r.invalid, unique: r.unique, added: r.added };
    };
    const fromCsv = await counts(csvFile);
    expect(await counts(file)).toEqual({ ...fromCsv, format: 'ndjson' });
  });
});
