/**
 * End-to-end import benchmark: the real CLI on a generated list, next to what a user would
 * otherwise run (`cut | tr | sort -u`, and sqlite3 when installed), on the same warm file; and
 * the same list written as NDJSON, imported in the same run, against its target rate.
 *
 * `npm run bench:import -- --rows 2000000,10000000 [--seed S] [--runs 3] [--update-readme]`
 *
 * Each tool's wall time (median, fastest and slowest of the runs) and CPU seconds (every
 * thread of its process tree) stand side by side, with the `sort -u` time of the same run as
 * the anchor and the target ratio to it.
 *
 * Progress goes to stderr, the markdown result to stdout. Exit 1 when the CLI fails or its
 * report does not account for every row; exit 2 on bad arguments.
 */
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import {
  formatBytes,
  formatNumber,
  formatRate,
  formatSeconds,
  markdownTable,
  median,
  timeChild,
} from './lib/measure.js';

import type { ImportReport } from '../src/report/summary.js';
import { BenchFailure, ensureList, ensureNdjson, makeLog, packageRoot, parseCount, ensureOk, runIfMain, tail, updateReadme } from './lib/harness.js';

const log = makeLog('bench:import');

const COUNT_FIELDS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const;

const USAGE = 'Usage: npm run bench:import -- --rows N[,N...] [--seed S] [--runs R] [--update-readme]';
const SECTION = 'bench:import';
/** NDJSON lines are parsed in the workers as CSV is: it should import at half the CSV's rate or better. */
const NDJSON_TARGET = 0.5;



function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}



async function onPath(command: string): Promise<boolean> {
  const r = await timeChild('sh', ['-c', `command -v ${shellQuote(command)}`]);
  return r.exitCode === 0;
}

/** Reads the file once so that every tool starts from the same warm page cache. */
async function warm(file: string): Promise<void> {
  const started = performance.now();
  for await (const _ of createReadStream(file, { highWaterMark: 1 << 20 })) {
    // Reading is the point.
  }
  log(`page cache warmed in ${formatSeconds((performance.now() - started) / 1000)} s`);
}

function describeSample(s: Sample | undefined): string {
  if (s === undefined) return '';
  return `${formatSeconds(s.seconds)} s, CPU ${s.cpuSeconds === undefined ? 'n/a' : `${formatSeconds(s.cpuSeconds)} s`}`;
}

function parseReport(stdout: string): ImportReport {
  const trimmed = stdout.trim();
  const candidates = [trimmed, ...trimmed.split('\n').reverse()];
  for (const c of candidates) {
    try {
      const value: unknown = JSON.parse(c);
      if (typeof value === 'object' && value !== null) return value as ImportReport;
    } catch {
      // Not this one; progress lines may precede the report.
    }
  }
  throw new BenchFailure(`no JSON report on the CLI's stdout:\n${tail(stdout)}`);
}

/** Invariant 6 of the design: every row accounted for, and the count is the generator's. */
function checkReport(report: ImportReport, rows: number): void {
  const problems: string[] = [];
  for (const f of COUNT_FIELDS) {
    if (!Number.isSafeInteger(report[f]) || report[f] < 0) {
      problems.push(`${f} is not a count: ${JSON.stringify(report[f])}`);
    }
  }
  const r = report;
  if (r.rows !== rows) problems.push(`rows ${r.rows} !== ${rows} generated`);
  if (r.rows !== r.valid + r.invalid) problems.push(`rows ${r.rows} !== valid ${r.valid} + invalid ${r.invalid}`);
  if (r.valid !== r.unique + r.duplicates) {
    problems.push(`valid ${r.valid} !== unique ${r.unique} + duplicates ${r.duplicates}`);
  }
  if (r.unique !== r.added + r.alreadySuppressed) {
    problems.push(`unique ${r.unique} !== added ${r.added} + alreadySuppressed ${r.alreadySuppressed}`);
  }
  if (r.alreadySuppressed !== 0) problems.push(`alreadySuppressed ${r.alreadySuppressed} in a fresh store`);
  if (problems.length > 0) {
    throw new BenchFailure(`the import report does not add up:\n  ${problems.join('\n  ')}\n${JSON.stringify(r)}`);
  }
}

/** The NDJSON list holds the CSV's rows: its import must count exactly what the CSV's counted. */
function sameCounts(ndjson: ImportReport, csv: ImportReport): void {
  const differ = COUNT_FIELDS.filter((f) => ndjson[f] !== csv[f]);
  if (ndjson.format !== 'ndjson' || differ.length > 0) {
    throw new BenchFailure(`the NDJSON import (format ${ndjson.format}) counted otherwise than the CSV's: ` +
      differ.map((f) => `${f} ${ndjson[f]} != ${csv[f]}`).join(', '));
  }
}

interface Sample {
  seconds: number;
  /** CPU seconds of the process tree, all threads (see `timeChild`); undefined without /proc. */
  cpuSeconds: number | undefined;
  peakRssBytes: number | undefined;
}

async function runOptout(cli: string, file: string, rows: number): Promise<{ sample: Sample; report: ImportReport }> {
  const db = await mkdtemp(join(tmpdir(), 'optout-bench-db-'));
  try {
    const r = await timeChild(process.execPath, [cli, 'import', file, '--yes', '--json', '--db', db]);
    ensureOk('optout import', r);
    const report = parseReport(r.stdout);
    checkReport(report, rows);
    const peak = Number.isFinite(report.peakRssBytes) && report.peakRssBytes > 0 ? report.peakRssBytes : r.peakRssBytes;
    return { sample: { seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssBytes: peak }, report };
  } finally {
    await rm(db, { recursive: true, force: true });
  }
}

async function runPipeline(file: string): Promise<Sample> {
  const r = await timeChild('sh', ['-c', `cut -d, -f1 ${shellQuote(file)} | tr A-Z a-z | LC_ALL=C sort -u > /dev/null`]);
  ensureOk('cut | tr | sort', r);
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssBytes: r.peakRssBytes };
}

async function runSqlite(file: string): Promise<Sample> {
  const dir = await mkdtemp(join(tmpdir(), 'optout-bench-sqlite-'));
  try {
    // Single quotes: the sqlite3 shell takes them literally (double quotes process escapes).
    const r = await timeChild('sqlite3', [
      '-batch',
      join(dir, 'list.db'),
      `.import --csv '${file.replaceAll("'", "''")}' raw`,
      'CREATE TABLE optout(email TEXT NOT NULL UNIQUE);',
      'INSERT OR IGNORE INTO optout(email) SELECT lower(trim(email)) FROM raw;',
    ]);
    ensureOk('sqlite3', r);
    return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssBytes: r.peakRssBytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Summary {
  /** Median, fastest and slowest wall time. */
  seconds: number;
  min: number;
  max: number;
  /** Median CPU seconds, when measured. */
  cpu: number | undefined;
  peak: number | undefined;
}

function summarize(samples: readonly Sample[]): Summary {
  const peaks = samples.map((s) => s.peakRssBytes).filter((p): p is number => p !== undefined);
  const cpus = samples.map((s) => s.cpuSeconds).filter((c): c is number => c !== undefined);
  const walls = samples.map((s) => s.seconds);
  return {
    seconds: median(walls),
    min: Math.min(...walls),
    max: Math.max(...walls),
    cpu: cpus.length === samples.length ? median(cpus) : undefined,
    peak: peaks.length > 0 ? Math.max(...peaks) : undefined,
  };
}

/** `1.23-4.56` for several runs, nothing to show for one. */
function spread(s: Summary, runs: number): string {
  return runs > 1 ? `${formatSeconds(s.min)}-${formatSeconds(s.max)}` : '-';
}

/**
 * Wall time against `cut | tr | sort -u` that an import should reach: 3x at 2M rows, 2x from
 * 10M up (fixed costs weigh less on a larger list), in between on a straight line.
 */
export function targetRatio(rows: number): number {
  if (rows <= 2_000_000) return 3;
  if (rows >= 10_000_000) return 2;
  return 3 - (rows - 2_000_000) / 8_000_000;
}

/** What one list size measured, every tool in turn each round. */
interface SizeResult {
  rows: number;
  fileBytes: number;
  ndjsonBytes: number;
  optout: Sample[];
  ndjson: Sample[];
  pipeline: Sample[];
  sqlite: Sample[];
  report: ImportReport;
}

async function measureSize(cli: string, root: string, rows: number, seed: number, runs: number, sqlite: boolean): Promise<SizeResult> {
  const file = join(root, 'data', 'generated', `list-${rows}-${seed}.csv`);
  await ensureList(file, rows, seed, log);
  const ndjsonFile = file.replace(/\.csv$/, '.ndjson');
  await ensureNdjson(file, ndjsonFile, log);
  await warm(file);
  await warm(ndjsonFile);
  const out: Omit<SizeResult, 'report'> & { report?: ImportReport } = {
    rows, fileBytes: (await stat(file)).size, ndjsonBytes: (await stat(ndjsonFile)).size, optout: [], ndjson: [], pipeline: [], sqlite: [],
  };
  for (let run = 1; run <= runs; run++) {
    const tag = ` (${formatNumber(rows)} rows${runs > 1 ? `, run ${run}/${runs}` : ''})`;
    log(`cut | tr | sort -u${tag}...`);
    out.pipeline.push(await runPipeline(file));
    log(`  ${describeSample(out.pipeline.at(-1))}`);
    if (sqlite) {
      log(`sqlite3 .import + INSERT OR IGNORE${tag}...`);
      out.sqlite.push(await runSqlite(file));
      log(`  ${describeSample(out.sqlite.at(-1))}`);
    }
    log(`optout import${tag}...`);
    const r = await runOptout(cli, file, rows);
    out.optout.push(r.sample);
    out.report = r.report;
    log(`  ${describeSample(r.sample)}, report ${JSON.stringify(r.report)}`);
    log(`optout import of the same list as NDJSON${tag}...`);
    const n = await runOptout(cli, ndjsonFile, rows);
    sameCounts(n.report, r.report);
    out.ndjson.push(n.sample);
    log(`  ${describeSample(n.sample)}`);
  }
  return out as SizeResult;
}

export async function main(argv: readonly string[]): Promise<number> {
  let sizes: number[];
  let seed: number;
  let runs: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        rows: { type: 'string' },
        seed: { type: 'string' },
        runs: { type: 'string' },
        'update-readme': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (values.rows === undefined) throw new RangeError('Missing `--rows`');
    sizes = values.rows.split(',').map((r) => parseCount('--rows', r, 1, MAX_ROWS));
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    runs = values.runs === undefined ? 1 : parseCount('--runs', values.runs, 1, 100);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:import: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new BenchFailure(`the CLI is not built: ${cli} is missing (npm run build)`);
  const sqlite = await onPath('sqlite3');
  if (!sqlite) log('sqlite3 is not on PATH: skipping the sqlite baseline');
  const loadBefore = loadavg()[0] ?? 0;
  const results: SizeResult[] = [];
  for (const rows of sizes) results.push(await measureSize(cli, root, rows, seed, runs, sqlite));
  const loadAfter = loadavg()[0] ?? 0;

  const tableRows: string[][] = [];
  const notes: string[] = [];
  for (const r of results) {
    const base = summarize(r.pipeline).seconds;
    const line = (tool: string, samples: readonly Sample[], bytes = r.fileBytes): string[] => {
      const sum = summarize(samples);
      const { seconds, peak, cpu } = sum;
      return [
        tool,
        formatNumber(r.rows),
        formatSeconds(seconds),
        spread(sum, runs),
        cpu === undefined ? 'n/a' : formatSeconds(cpu),
        cpu === undefined ? 'n/a' : `${formatNumber((cpu * 1e6) / r.rows, 2)} us`,
        formatRate(r.rows / seconds),
        formatNumber(bytes / 1e6 / seconds, 1),
        peak === undefined ? 'n/a' : formatBytes(peak),
        `${(seconds / base).toFixed(2)}x`,
      ];
    };
    tableRows.push(
      line('optout import', r.optout),
      line('optout import, the same list as NDJSON', r.ndjson, r.ndjsonBytes),
      line('cut | tr A-Z a-z | LC_ALL=C sort -u', r.pipeline),
      ...(sqlite ? [line('sqlite3 .import + INSERT OR IGNORE', r.sqlite)] : []),
    );
    const ratio = summarize(r.optout).seconds / base;
    const target = targetRatio(r.rows);
    const ndjsonRatio = summarize(r.optout).seconds / summarize(r.ndjson).seconds;
    notes.push(`${formatNumber(r.rows)} rows (file ${formatBytes(r.fileBytes)}, NDJSON ${formatBytes(r.ndjsonBytes)}): ` +
      `optout at ${ratio.toFixed(2)}x the \`sort -u\` time (target ${target.toFixed(1)}x or less: ${ratio <= target ? 'met' : 'missed'}); ` +
      `NDJSON at ${ndjsonRatio.toFixed(2)}x the CSV's rows per second (target ${NDJSON_TARGET}x or better: ${ndjsonRatio >= NDJSON_TARGET ? 'met' : 'missed'}); ` +
      `counts ${COUNT_FIELDS.map((f) => `${f} ${formatNumber(r.report[f])}`).join(', ')} (the same for the NDJSON list).`);
  }
  const table = markdownTable(
    ['tool', 'rows', 'seconds', 'min-max', 'CPU s', 'CPU a row', 'rows/s', 'MB/s', 'peak RSS', 'time vs cut|tr|sort'],
    tableRows,
    ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  );
  const command = `npm run bench:import -- --rows ${sizes.join(',')} --seed ${seed} --runs ${runs}${toReadme ? ' --update-readme' : ''}`;
  const cpu = cpus();
  const block = [
    `\`${command}\``,
    '',
    table,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${formatBytes(totalmem())} RAM, ` +
      `Node ${process.version}, ${platform()} ${arch()}; generated lists (seed ${seed}), warm page cache; ` +
      `seconds: the median of ${runs} run${runs > 1 ? 's' : ''} (each tool once a round, in turn), min-max the fastest and slowest; ` +
      `load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after. ` +
      'CPU s: user + system seconds of the process tree, every thread (the kernel\'s times of the reaped children), the median of the runs. ' +
      'Peak RSS: the import report for optout, the sum over the process tree for the others; MB = 10^6 bytes.' +
      (sqlite ? '' : ' sqlite3 was not installed.'),
  ].join('\n');
  process.stdout.write(`${block}\n`);

  if (toReadme) {
    await updateReadme(root, SECTION, block, log);
  }
  return 0;
}

runIfMain(import.meta.url, 'bench:import', main);
