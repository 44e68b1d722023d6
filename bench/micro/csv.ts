/**
 * extractColumn against csv-parse (sync API) on the same in-memory CSV: 1M rows of
 * `email,first_name,last_name,company,unsubscribed_at`, about 60 bytes a row, generated once.
 *
 * One iteration parses one slice of SLICE_ROWS rows, the next iteration the next slice, so that
 * tinybench's minimum iteration count (64 by default, plus warmup) stays within seconds for
 * csv-parse while the whole buffer is still walked. Rows/s = SLICE_ROWS x ops/s; it is printed
 * when each task completes.
 */
import type { Bench } from 'tinybench';
import { parse } from 'csv-parse/sync';
import { extractColumn } from '../../src/csv/extract.js';

export const CSV_BENCH_ROWS = 1_000_000;
export const SLICE_ROWS = 25_000;

export interface CsvBenchData {
  buf: Buffer;
  /** Record-aligned byte ranges of SLICE_ROWS rows (the last one may be shorter). */
  slices: Array<{ start: number; end: number; rows: number }>;
  rows: number;
}

const FIRST = ['anna', 'bjorn', 'chloe', 'dmitri', 'elena', 'farid', 'grete', 'hiro', 'ines', 'jonas', 'kari', 'lea',
  'sørina', 'élodie'];
const LAST = ['berg', 'dubois', 'garcia', 'hansen', 'ito', 'jensen', 'kowalski', 'larsen', 'muller', 'novak',
  'olsen', 'øvrebø'];
const DOMAINS = ['example.com', 'mail.example.org', 'example.net', 'example.no', 'example.de'];
const COMPANIES = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', 'Vandelay', 'Stark', 'Wayne'];

/** Deterministic: the same rows, byte for byte, on every run (a 32-bit LCG, no Math.random). */
export function makeCsvBenchData(rows = CSV_BENCH_ROWS, sliceRows = SLICE_ROWS): CsvBenchData {
  let state = 0x9e3779b9;
  const rand = (n: number): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
  const pick = <T>(list: readonly T[]): T => list[rand(list.length)] as T;
  const parts: string[] = [];
  const slices: CsvBenchData['slices'] = [];
  let bytes = 0;
  for (let i = 0; i < rows; i++) {
    const first = pick(FIRST);
    const last = pick(LAST);
    const email = `${first}.${last}${rand(1000)}@${pick(DOMAINS)}`;
    const r = rand(100);
    // ~3% quoted companies with a delimiter and an escaped quote, as real exports have.
    const company = r < 3 ? `"${pick(COMPANIES)}, ""Intl"" Inc"` : pick(COMPANIES);
    const date = `2024-${String(1 + rand(12)).padStart(2, '0')}-${String(1 + rand(28)).padStart(2, '0')}`;
    const row = `${r === 50 ? email.toUpperCase() : email},${first},${last},${company},${date}\n`;
    if (i % sliceRows === 0) slices.push({ start: bytes, end: bytes, rows: 0 });
    const current = slices[slices.length - 1] as CsvBenchData['slices'][number];
    parts.push(row);
    bytes += Buffer.byteLength(row);
    current.end = bytes;
    current.rows++;
  }
  return { buf: Buffer.from(parts.join('')), slices, rows };
}

/** The csv-parse options that express extractColumn's dialect (see src/csv/extract.ts). */
export const CSV_PARSE_OPTIONS = {
  delimiter: ',',
  record_delimiter: ['\r\n', '\n'],
  relax_quotes: true,
  relax_column_count: true,
  skip_empty_lines: true,
};

export function registerCsvBenches(bench: Bench): void {
  let data: CsvBenchData | undefined;
  const setup = (): void => {
    data ??= makeCsvBenchData();
  };
  let next = 0;
  const slice = (): [Buffer, number, number, number] => {
    const d = data as CsvBenchData;
    const s = d.slices[next++ % d.slices.length] as CsvBenchData['slices'][number];
    return [d.buf, s.start, s.end, s.rows];
  };

  const names = {
    extract: `csv: extractColumn, email column (${SLICE_ROWS} rows/op)`,
    csvParse: `csv: csv-parse sync, same dialect (${SLICE_ROWS} rows/op)`,
  };
  // Keeps the decoded values observable, so that no engine can skip producing them.
  let sink = 0;
  bench.add(names.extract, () => {
    const [buf, start, end, rows] = slice();
    let n = 0;
    const r = extractColumn(buf, start, end, { delimiter: 0x2c, column: 0, maxRecordBytes: 1 << 20, final: true },
      (v) => {
        if (v !== undefined) n += v.length;
      });
    if (r.records !== rows || r.error) throw new Error(`extractColumn read ${r.records} rows`);
    sink += n;
  }, { beforeAll: setup });
  bench.add(names.csvParse, () => {
    const [buf, start, end, rows] = slice();
    const records = parse(buf.subarray(start, end), CSV_PARSE_OPTIONS) as string[][];
    let n = 0;
    for (const rec of records) n += (rec[0] ?? '').length;
    if (records.length !== rows) throw new Error(`csv-parse read ${records.length} rows`);
    sink += n;
  }, { beforeAll: setup });

  const ours = new Set<string>(Object.values(names));
  bench.addEventListener('cycle', (evt) => {
    const task = evt.task;
    if (task === undefined || !ours.has(task.name ?? '')) return;
    const result = task.result;
    if (result.state !== 'completed') return;
    const rowsPerSecond = (SLICE_ROWS * 1000) / result.period;
    console.log(`${task.name}: ${(rowsPerSecond / 1e6).toFixed(2)}M rows/s (${result.period.toFixed(1)} ms/op)`);
  });
}
