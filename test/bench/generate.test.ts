import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HEADER, generateRows, main, writeList } from '../../bench/generate.js';

const text = (rows: number, seed?: number): string =>
  [...generateRows(seed === undefined ? { rows } : { rows, seed })].join('');

const records = (csv: string): string[][] => parse(csv, { relax_column_count: true }) as string[][];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'optout-gen-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('generateRows', () => {
  it('gives the same text for the same seed and other text for another seed', () => {
    const a = text(20_000, 7);
    expect(text(20_000, 7)).toBe(a);
    expect(text(20_000, 8)).not.toBe(a);
    expect(text(20_000)).toBe(text(20_000, 42));
  });

  it('a longer list starts with the shorter one (rows depend on their index only)', () => {
    const short = text(3_000, 5);
    expect(text(5_000, 5).startsWith(short)).toBe(true);
  });

  it.each([1, 7, 10_000])('writes the header, then exactly %i rows, LF-terminated', (n) => {
    const csv = text(n, 3);
    expect(csv.slice(0, csv.indexOf('\n'))).toBe(HEADER);
    expect(csv.endsWith('\n')).toBe(true);
    expect(csv).not.toContain('\r');
    const recs = records(csv);
    expect(recs.length).toBe(n + 1);
    for (const r of recs) expect(r.length).toBeGreaterThanOrEqual(5);
    // No field spans lines, so physical lines and records agree.
    expect(csv.split('\n').length - 1).toBe(n + 1);
  });

  it('emits well-formed UTF-8', async () => {
    const file = join(dir, 'utf8.csv');
    await writeList({ rows: 50_000, seed: 11, out: file });
    const bytes = await readFile(file);
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(bytes)).not.toThrow();
    expect(bytes.toString('utf8')).toBe(text(50_000, 11));
  });

  it('rejects a row count that is not an integer from 1', () => {
    expect(() => text(0)).toThrow(RangeError);
    expect(() => text(1.5)).toThrow(RangeError);
    expect(() => text(Number.NaN)).toThrow(RangeError);
    expect(() => text(10, -1)).toThrow(RangeError);
  });
});

describe('content mix on 50k rows', () => {
  const N = 50_000;
  const csv = text(N, 1);
  const recs = records(csv).slice(1);
  const emails = recs.map((r) => r[0] ?? '');
  // A loose shape check, not the address policy: one @, a dot in the domain, no inner space.
  const plausible = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
  const share = (count: number): number => count / N;

  /** Close to the store key: lower-case, trim, cut +tag, gmail dots, googlemail, ya.ru. */
  const key = (e: string): string => {
    const at = e.lastIndexOf('@');
    let local = e.slice(0, at);
    let domain = e.slice(at + 1);
    const plus = local.indexOf('+');
    if (plus > 0) local = local.slice(0, plus);
    if (domain === 'googlemail.com') domain = 'gmail.com';
    if (domain === 'gmail.com') local = local.replaceAll('.', '');
    if (domain === 'ya.ru') domain = 'yandex.ru';
    return `${local}@${domain}`;
  };

  const firstSeen = new Map<string, number>();
  const keys = new Set<string>();
  let invalid = 0;
  let dupSimple = 0;
  let dupKey = 0;
  const distances: number[] = [];
  emails.forEach((raw, i) => {
    const e = raw.trim().toLowerCase();
    if (!plausible.test(e) || e.includes('..')) {
      invalid++;
      return;
    }
    const seen = firstSeen.get(e);
    if (seen === undefined) firstSeen.set(e, i);
    else {
      dupSimple++;
      distances.push(i - seen);
    }
    const k = key(e);
    if (keys.has(k)) dupKey++;
    else keys.add(k);
  });

  it('has about 5% duplicates by key, most of them visible after lower-case + trim', () => {
    expect(share(dupKey)).toBeGreaterThan(0.04);
    expect(share(dupKey)).toBeLessThan(0.065);
    expect(share(dupSimple)).toBeGreaterThan(0.025);
    expect(share(dupSimple)).toBeLessThan(share(dupKey));
  });

  it('repeats addresses from far back in the file, not only recent rows', () => {
    const far = distances.filter((d) => d > N / 4).length;
    expect(far / distances.length).toBeGreaterThan(0.2);
    expect(Math.max(...distances)).toBeGreaterThan(N / 2);
  });

  it('has about 1% invalid cells', () => {
    expect(share(invalid)).toBeGreaterThan(0.006);
    expect(share(invalid)).toBeLessThan(0.015);
    expect(emails.some((e) => e === '')).toBe(true);
    expect(emails.some((e) => e.endsWith('@localhost'))).toBe(true);
  });

  it('mixes case in about 20% of addresses and pads about 1% with spaces', () => {
    const mixed = emails.filter((e) => e !== e.toLowerCase()).length;
    const padded = emails.filter((e) => e !== e.trim()).length;
    expect(share(mixed)).toBeGreaterThan(0.15);
    expect(share(mixed)).toBeLessThan(0.26);
    expect(share(padded)).toBeGreaterThan(0.005);
    expect(share(padded)).toBeLessThan(0.02);
  });

  it('quotes fields in about 3% of rows, with commas and escaped quotes inside', () => {
    const lines = csv.split('\n').slice(1, -1);
    const quoted = lines.filter((l) => l.includes('"')).length;
    expect(share(quoted)).toBeGreaterThan(0.015);
    expect(share(quoted)).toBeLessThan(0.05);
    expect(recs.some((r) => (r[3] ?? '').includes(','))).toBe(true);
    expect(recs.some((r) => (r[1] ?? '').includes('"'))).toBe(true);
  });

  it('has a few rows with an extra trailing column, ISO timestamps, IDN and gmail variants', () => {
    const extra = recs.filter((r) => r.length > 5).length;
    expect(extra).toBeGreaterThan(0);
    expect(share(extra)).toBeLessThan(0.005);
    const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:\d{2})$/;
    expect(recs.every((r) => iso.test(r[4] ?? ''))).toBe(true);
    expect(emails.some((e) => /@[^@]*[^\x00-\x7f]/.test(e))).toBe(true);
    expect(emails.some((e) => e.toLowerCase().endsWith('@googlemail.com'))).toBe(true);
    expect(emails.some((e) => /\+[a-z0-9]+@/i.test(e))).toBe(true);
  });

  it('averages 50 to 66 bytes per row', () => {
    const bytes = Buffer.byteLength(csv);
    expect(bytes / N).toBeGreaterThan(50);
    expect(bytes / N).toBeLessThan(66);
  });
});

describe('writeList', () => {
  it('writes gzip that inflates to the same bytes', async () => {
    const plain = join(dir, 'list.csv');
    const gz = join(dir, 'list.csv.gz');
    const a = await writeList({ rows: 30_000, seed: 9, out: plain });
    const b = await writeList({ rows: 30_000, seed: 9, out: gz, gzip: true });
    const raw = await readFile(plain);
    const packed = await readFile(gz);
    expect(a).toEqual({ rows: 30_000, bytes: raw.length });
    expect(b).toEqual({ rows: 30_000, bytes: packed.length });
    expect(packed.length).toBeLessThan(raw.length);
    expect(gunzipSync(packed).equals(raw)).toBe(true);
  });

  it('is byte-identical across runs', async () => {
    const x = join(dir, 'x.csv');
    const y = join(dir, 'nested', 'y.csv');
    await writeList({ rows: 40_000, seed: 4, out: x });
    await writeList({ rows: 40_000, seed: 4, out: y });
    expect((await readFile(x)).equals(await readFile(y))).toBe(true);
  });
});

describe('CLI', () => {
  const run = async (args: string[]): Promise<{ code: number; err: string }> => {
    let err = '';
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
    try {
      return { code: await main(args), err };
    } finally {
      spy.mockRestore();
    }
  };

  it.each([
    [['--out', 'x.csv']],
    [['--rows', '100']],
    [['--rows', '0', '--out', 'x.csv']],
    [['--rows', '-5', '--out', 'x.csv']],
    [['--rows', '1.5', '--out', 'x.csv']],
    [['--rows', 'ten', '--out', 'x.csv']],
    [['--rows', '10', '--out', 'x.csv', '--seed', 'abc']],
    [['--rows', '10', '--out', 'x.csv', '--bogus']],
    [['--rows', '10', '--out', 'x.csv', 'extra']],
  ])('exits 2 with a message on bad arguments %j', async (args) => {
    const { code, err } = await run(args);
    expect(code).toBe(2);
    expect(err).toMatch(/Usage/);
  });

  it('writes the file and reports rows, bytes and seconds on stderr', async () => {
    const out = join(dir, 'cli.csv');
    const { code, err } = await run(['--rows', '1_000', '--out', out, '--seed', '3']);
    expect(code).toBe(0);
    const bytes = (await readFile(out)).length;
    expect(err).toContain('rows=1000');
    expect(err).toContain(`bytes=${bytes}`);
    expect(err).toMatch(/seconds=\d/);
    expect((await readFile(out, 'utf8')) === text(1_000, 3)).toBe(true);
  });
});
