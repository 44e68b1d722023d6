import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { ROOT, removeTempDirs, runCli, tempDir } from '../helpers.js';

const lib = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');
const { LevelStore, runImport, addSuppression, exportText, EXPORT_COLUMNS } = lib;

afterAll(removeTempDirs);

async function text(gen: AsyncGenerator<string>): Promise<string> {
  let out = '';
  for await (const piece of gen) out += piece;
  return out;
}

async function entryKeys(db: string, scope: string): Promise<string[]> {
  const store = await LevelStore.open(db);
  try {
    return await store.db.keys({ gt: `e${scope}\u0000`, lt: `e${scope}\u0001` }).all();
  } finally {
    await store.close();
  }
}

describe('export', () => {
  it('re-imports to the identical set (CLI round trip, formula-like addresses included)', async () => {
    const dir = await tempDir('optout-export-');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 30_000, seed: 11, out: list });
    const extra = join(dir, 'extra.csv');
    writeFileSync(extra, "email\n=cmd@example.com\n-dash@example.com\no'brien@example.ie\n");
    const db = join(dir, 'db');
    await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' } });
    await runImport({ source: { kind: 'file', path: extra }, db, confirm: { mode: 'yes' } });

    const out = join(dir, 'export.csv');
    const r = await runCli(['--db', db, 'export', '--out', out]);
    expect(r.code).toBe(0);
    const rows = parse(readFileSync(out), { columns: true }) as Array<Record<string, string>>;
    expect(Object.keys(rows[0] as object)).toEqual([...EXPORT_COLUMNS]);
    expect(rows.filter((x) => ['=cmd@example.com', '-dash@example.com', "o'brien@example.ie"].includes(x['email'] as string))).toHaveLength(3);

    const db2 = join(dir, 'db2');
    const again = await runCli(['--db', db2, 'import', out, '--yes', '--json']);
    expect(again.code).toBe(0);
    expect(await entryKeys(db2, '*')).toEqual(await entryKeys(db, '*'));
    expect(JSON.parse(again.stdout)).toMatchObject({ invalid: 0, duplicates: 0, added: rows.length });
  });

  it('filters by unit and reason, and writes NDJSON', async () => {
    const dir = await tempDir('optout-export-');
    const store = await LevelStore.open(join(dir, 'db'));
    try {
      await addSuppression(store, { email: 'a@x.org', reason: 'bounced' });
      await addSuppression(store, { email: 'b@x.org', unit: 'emea', reason: 'complaint', source: 'zendesk' });
      await addSuppression(store, { email: 'c@x.org', unit: 'emea' });
      const nd = (await text(exportText(store, { unit: 'emea', format: 'ndjson' }))).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
      expect(nd.map((r) => r['email']).sort()).toEqual(['b@x.org', 'c@x.org']);
      expect(nd.find((r) => r['email'] === 'b@x.org')).toMatchObject({ unit: 'emea', reason: 'complaint', source: 'zendesk' });
      const bounced = await text(exportText(store, { reason: 'bounced' }));
      expect(bounced.trim().split('\n').slice(1)).toEqual([expect.stringMatching(/^a@x\.org,a@x\.org,,bounced,library,\d+,/)]);
      const accountWide = await text(exportText(store, { unit: '*' }));
      expect(accountWide.trim().split('\n')).toHaveLength(2);
      await expect(text(exportText(store, { format: 'xml' as 'csv' }))).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
      await expect(text(exportText(store, { unit: 'bad unit' }))).rejects.toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    } finally {
      await store.close();
    }
  });

  it('--spreadsheet-safe defuses cells a spreadsheet would run as formulas', async () => {
    const dir = await tempDir('optout-export-');
    const db = join(dir, 'db');
    const store = await LevelStore.open(db);
    try {
      for (const email of ['=cmd@example.com', '+sum@example.com', '-x@example.com', 'plain@example.com']) {
        await addSuppression(store, { email, source: '@import' });
      }
    } finally {
      await store.close();
    }
    const safe = await runCli(['--db', db, 'export', '--spreadsheet-safe']);
    const rows = parse(safe.stdout, { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => r['email']).sort()).toEqual(["'+sum@example.com", "'-x@example.com", "'=cmd@example.com", 'plain@example.com']);
    expect(rows.every((r) => r['source'] === "'@import")).toBe(true);
    const plain = await runCli(['--db', db, 'export']);
    expect((parse(plain.stdout, { columns: true }) as Array<Record<string, string>>).map((r) => r['email']).sort())
      .toEqual(['+sum@example.com', '-x@example.com', '=cmd@example.com', 'plain@example.com']);
  });
});
