/**
 * End-to-end scrub benchmark: the real CLI filters generated send lists through a store of
 * `--entries` suppressions, next to the import of that store and to what a user would otherwise
 * run (an awk hash join on the lower-cased first column, which neither normalizes addresses nor
 * reads quoted fields), on the same warm files.
 *
 * The send lists are the import benchmark's generated lists (`list-<rows>-<seed>.csv`); the
 * store holds every 10th row of the largest one, so that about 10% of each list is suppressed
 * (its rows are a pure function of seed and index: a shorter list is a prefix of a longer one).
 *
 * `npm run bench:scrub -- [--entries 1000000] [--rows 1000000,10000000] [--seed S] [--update-readme]`
 *
 * Progress goes to stderr, the markdown result to stdout. Exit 1 when a run fails or a report
 * does not account for every row; exit 2 on bad arguments.
 */
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { formatBytes, formatNumber, formatRate, formatSeconds, markdownTable, timeChild } from './lib/measure.js';
import { BenchFailure, ensureList, ensureOk, makeLog, packageRoot, parseCount, runIfMain, tail, updateReadme } from './lib/harness.js';
import type { ImportReport } from '../src/report/summary.js';
import type { ScrubReport } from '../src/scrub/report.js';

const log = makeLog('bench:scrub');

const USAGE = 'Usage: npm run bench:scrub -- [--entries N] [--rows N,N...] [--seed S] [--update-readme]';
const SECTION = 'bench:scrub';
/** One suppressed address every this many rows of the send lists. */
const EVERY = 10;

interface Row {
  what: string;
  rows: number;
  seconds: number;
  fileBytes: number;
  peakRssBytes: number | undefined;
  note: string;
}

function lastJson<T>(stdout: string): T {
  try {
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as T;
  } catch {
    throw new BenchFailure(`no JSON report on the CLI's stdout:\n${tail(stdout)}`);
  }
}

/** Every {@link EVERY}th data row of `from` (header kept), at most `entries` of them. */
async function ensureStoreList(file: string, from: string, entries: number): Promise<void> {
  if (existsSync(file)) {
    log(`reusing ${file}`);
    return;
  }
  log(`writing every ${EVERY}th row of ${from} (at most ${formatNumber(entries)}) -> ${file}`);
  const partial = `${file}.${process.pid}.tmp`;
  const out = createWriteStream(partial);
  let index = -1;
  let kept = 0;
  try {
    // The generator never breaks a line inside a field: a line is a row (the header is index -1).
    for await (const line of createInterface({ input: createReadStream(from), crlfDelay: Infinity })) {
      if (index < 0 || index % EVERY === 0) {
        if (!out.write(line + '\n')) await once(out, 'drain');
        if (index >= 0 && ++kept >= entries) break;
      }
      index++;
    }
    out.end();
    await once(out, 'finish');
    await rename(partial, file);
  } finally {
    out.destroy();
    await rm(partial, { force: true });
  }
}

async function warm(file: string): Promise<void> {
  for await (const _ of createReadStream(file, { highWaterMark: 1 << 20 })) {
    // Reading is the point.
  }
}

function checkScrub(r: ScrubReport, rows: number): void {
  const problems: string[] = [];
  if (r.rows !== rows) problems.push(`rows ${r.rows} !== ${rows} generated`);
  if (r.rows !== r.eligible + r.suppressed + r.invalid) problems.push(`rows ${r.rows} !== eligible + suppressed + invalid`);
  if (r.suppressed < rows / EVERY * 0.9) problems.push(`suppressed ${r.suppressed}: expected about ${rows / EVERY}`);
  if (problems.length > 0) throw new BenchFailure(`the scrub report does not add up:\n  ${problems.join('\n  ')}\n${JSON.stringify(r)}`);
}

export async function main(argv: readonly string[]): Promise<number> {
  let entries: number;
  let sizes: number[];
  let seed: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        entries: { type: 'string' },
        rows: { type: 'string' },
        seed: { type: 'string' },
        'update-readme': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 1_000_000 : parseCount('--entries', values.entries, 1, MAX_ROWS);
    sizes = (values.rows ?? '1000000,10000000').split(',').map((s) => parseCount('--rows', s, 1, MAX_ROWS));
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:scrub: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(cli)) throw new BenchFailure(`the CLI is not built: ${cli} is missing (npm run build)`);
  const generated = join(root, 'data', 'generated');
  const lists = sizes.map((rows) => ({ rows, file: join(generated, `list-${rows}-${seed}.csv`) }));
  for (const l of lists) await ensureList(l.file, l.rows, seed, log);
  const largest = lists.reduce((a, b) => (b.rows > a.rows ? b : a));
  const storeFile = join(generated, `store-${entries}-every${EVERY}-of-${largest.rows}-${seed}.csv`);
  await ensureStoreList(storeFile, largest.file, entries);

  // Other work on the machine slows every row of the table alike; the reader should know of it.
  const load = loadavg()[0] ?? 0;
  const work = await mkdtemp(join(tmpdir(), 'optout-bench-scrub-'));
  const results: Row[] = [];
  try {
    const db = join(work, 'db');
    await warm(storeFile);
    log(`optout import of the store list...`);
    const imp = await timeChild(process.execPath, [cli, '--db', db, 'import', storeFile, '--yes', '--json']);
    ensureOk('optout import', imp);
    const importReport = lastJson<ImportReport>(imp.stdout);
    log(`  ${formatSeconds(imp.seconds)} s, ${formatNumber(importReport.added)} entries`);
    results.push({
      what: 'optout import (the store)', rows: importReport.rows, seconds: imp.seconds, fileBytes: (await stat(storeFile)).size,
      peakRssBytes: importReport.peakRssBytes, note: `${formatNumber(importReport.added)} entries added`,
    });

    for (const l of lists) {
      const fileBytes = (await stat(l.file)).size;
      await warm(l.file);
      log(`optout scrub of ${formatNumber(l.rows)} rows...`);
      const out = join(work, 'eligible.csv');
      const removed = join(work, 'removed.csv');
      const r = await timeChild(process.execPath, [cli, '--db', db, 'scrub', l.file, '--out', out, '--removed', removed, '--json']);
      ensureOk('optout scrub', r);
      const report = lastJson<ScrubReport>(r.stdout);
      checkScrub(report, l.rows);
      log(`  ${formatSeconds(r.seconds)} s, report ${JSON.stringify(report)}`);
      results.push({
        what: 'optout scrub (--out + --removed)', rows: l.rows, seconds: r.seconds, fileBytes, peakRssBytes: report.peakRssBytes,
        note: `eligible ${formatNumber(report.eligible)}, suppressed ${formatNumber(report.suppressed)}, invalid ${formatNumber(report.invalid)}`,
      });
      await rm(out, { force: true });
      await rm(removed, { force: true });

      log(`awk hash join of ${formatNumber(l.rows)} rows...`);
      // Paths go in as the script's arguments: no quoting to get wrong.
      const awk = await timeChild('sh', ['-c',
        `LC_ALL=C awk -F, 'NR==FNR{s[tolower($1)]=1;next} FNR==1||!(tolower($1) in s)' "$1" "$2" > "$3"`, 'sh', storeFile, l.file, out]);
      ensureOk('awk', awk);
      results.push({
        what: 'awk join on lower($1)', rows: l.rows, seconds: awk.seconds, fileBytes, peakRssBytes: awk.peakRssBytes,
        note: 'no address policy, no quoted fields, no removed file',
      });
      await rm(out, { force: true });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const importRate = (results[0] as Row).rows / (results[0] as Row).seconds;
  const table = markdownTable(
    ['run', 'rows', 'seconds', 'rows/s', 'MB/s', 'peak RSS', 'rate vs import', 'notes'],
    results.map((r) => [
      r.what, formatNumber(r.rows), formatSeconds(r.seconds), formatRate(r.rows / r.seconds),
      formatNumber(r.fileBytes / 1e6 / r.seconds, 1), r.peakRssBytes === undefined ? 'n/a' : formatBytes(r.peakRssBytes),
      `${(r.rows / r.seconds / importRate).toFixed(2)}x`, r.note,
    ]),
    ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'left'],
  );
  const command = `npm run bench:scrub -- --entries ${entries} --rows ${sizes.join(',')} --seed ${seed}${toReadme ? ' --update-readme' : ''}`;
  const cpu = cpus();
  const block = [
    `\`${command}\``,
    '',
    table,
    '',
    `Store: every ${EVERY}th row of the ${formatNumber(largest.rows)}-row list (seed ${seed}), imported once; the send lists are the ` +
      'generated lists of the import benchmark (5 columns, ~5% duplicates, ~1% invalid). Seconds: wall time of the CLI process, ' +
      'start to exit. Peak RSS: the report\'s for optout, the process tree\'s for awk; MB = 10^6 bytes. ' +
      `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${formatBytes(totalmem())} RAM, ` +
      `Node ${process.version}, ${platform()} ${arch()}; load average ${load.toFixed(1)} at the start; warm page cache; one run.`,
  ].join('\n');
  process.stdout.write(`${block}\n`);
  if (toReadme) {
    await updateReadme(root, SECTION, block, log);
  }
  return 0;
}

runIfMain(import.meta.url, 'bench:scrub', main);
