/**
 * LevelDB table options against the cost of a lookup of a stored key, the part of a check that
 * the key filter cannot skip: `getSync` of present keys (and of absent ones, for reference) on
 * copies of an imported store written with each option set.
 *
 * `npm run bench:store-options -- [--entries 1000000] [--seed S] [--seconds 2]`
 *
 * The store is imported once with the CLI under data/bench/ and copied, entry for entry, into
 * temporary LevelDB folders with other table options (compression, block size), compacted; each
 * is then opened with each block cache size. Lookups ask about a random sample of stored keys
 * (every 25th), so that most miss the block cache as a large store's do. Best of several rounds,
 * interleaved across the variants, so that other load on the machine touches them alike.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { entryKey, entryRange } from '../src/store/level/keys.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { formatBytes, formatNumber, formatRate, markdownTable } from './lib/measure.js';
import { ensureList, ensureStore, makeLog, packageRoot, parseCount, runIfMain } from './lib/harness.js';

const log = makeLog('bench:store-options');
const USAGE = 'Usage: npm run bench:store-options -- [--entries N] [--seed S] [--seconds S]';
const ROWS_PER_ENTRY = 1.07;
const SAMPLE = 200_000;
const ROUNDS = 6;

interface TableOptions { compression: boolean; blockSize: number }

const TABLES: TableOptions[] = [
  { compression: true, blockSize: 4096 },
  { compression: false, blockSize: 4096 },
  { compression: true, blockSize: 1024 },
  { compression: false, blockSize: 1024 },
  { compression: true, blockSize: 16_384 },
];
const CACHES = [8 << 20, 32 << 20, 128 << 20];

type Db = ClassicLevel<Buffer, Buffer>;

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/** Copies every key and value, bytes as they are, into a new LevelDB written with `table`. */
async function copyStore(from: string, to: string, table: TableOptions): Promise<void> {
  const src: Db = new ClassicLevel(from, { keyEncoding: 'buffer', valueEncoding: 'buffer', createIfMissing: false });
  const dst: Db = new ClassicLevel(to, { keyEncoding: 'buffer', valueEncoding: 'buffer', writeBufferSize: 16 << 20, ...table });
  await src.open();
  await dst.open();
  try {
    let batch = dst.batch();
    let n = 0;
    for await (const [k, v] of src.iterator()) {
      batch.put(k, v);
      if (++n % 10_000 === 0) {
        await batch.write();
        batch = dst.batch();
      }
    }
    await batch.write();
    await dst.compactRange(Buffer.from([0]), Buffer.from([0xff]));
  } finally {
    await src.close();
    await dst.close();
  }
}

/** Lookups a second over `keys`, best of the rounds given. */
function lookupRate(db: ClassicLevel<string, string>, keys: readonly string[], seconds: number, expectFound: boolean): number {
  let i = 0;
  let found = 0;
  const started = performance.now();
  let done = 0;
  while (performance.now() - started < seconds * 1000) {
    for (let j = 0; j < 1000; j++) if (db.getSync(keys[i++ % keys.length] as string) !== undefined) found++;
    done += 1000;
  }
  const rate = done / ((performance.now() - started) / 1000);
  if (expectFound ? found !== done : found !== 0) throw new Error(`expected every key ${expectFound ? 'found' : 'absent'}, found ${found} of ${done}`);
  return rate;
}

export async function main(argv: readonly string[]): Promise<number> {
  let entries: number;
  let seed: number;
  let seconds: number;
  try {
    const { values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: { entries: { type: 'string' }, seed: { type: 'string' }, seconds: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 1_000_000 : parseCount('--entries', values.entries, 1_000, Math.floor(MAX_ROWS / ROWS_PER_ENTRY));
    seed = values.seed === undefined ? DEFAULT_SEED : parseCount('--seed', values.seed, 0, 0xffff_ffff);
    seconds = values.seconds === undefined ? 2 : parseCount('--seconds', values.seconds, 1, 60);
  } catch (err) {
    process.stderr.write(`bench:store-options: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const root = packageRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const rows = Math.ceil(entries * ROWS_PER_ENTRY);
  const file = join(root, 'data', 'bench', `list-${rows}-${seed}.csv`);
  const db = join(root, 'data', 'bench', `store-${rows}-${seed}`);
  await ensureList(file, rows, seed, log);
  await ensureStore(cli, file, db, log);

  // The sample: every 25th stored key, shuffled; absent keys of the same shape.
  const source = new ClassicLevel<string, string>(join(db, 'leveldb'), { createIfMissing: false });
  await source.open();
  const stored: string[] = [];
  let n = 0;
  for await (const k of source.keys(entryRange())) if (n++ % 25 === 0) stored.push(k);
  await source.close();
  let s = seed | 1;
  const random = (): number => ((s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32);
  const present = Array.from({ length: Math.min(SAMPLE, stored.length) }, () => stored[Math.floor(random() * stored.length)] as string);
  const absent = Array.from({ length: SAMPLE }, (_, i) => entryKey('*', `nobody.${i}@absent-bench-domain.com`));

  const work = await mkdtemp(join(tmpdir(), 'optout-bench-options-'));
  try {
    const copies: Array<{ table: TableOptions; dir: string; bytes: number }> = [];
    for (const table of TABLES) {
      const dir = join(work, `c${copies.length}`);
      log(`copying into compression ${table.compression ? 'on' : 'off'}, blocks of ${table.blockSize} bytes`);
      await copyStore(join(db, 'leveldb'), dir, table);
      copies.push({ table, dir, bytes: await sizeOf(dir) });
    }
    const rowsOut: string[][] = [];
    for (const cacheSize of CACHES) {
      const open = await Promise.all(copies.map(async (c) => {
        const d = new ClassicLevel<string, string>(c.dir, { createIfMissing: false, cacheSize });
        await d.open();
        return d;
      }));
      const best = copies.map(() => ({ present: 0, absent: 0 }));
      for (let round = 0; round < ROUNDS; round++) {
        open.forEach((d, i) => {
          const b = best[i] as { present: number; absent: number };
          b.present = Math.max(b.present, lookupRate(d, present, seconds / ROUNDS, true));
          b.absent = Math.max(b.absent, lookupRate(d, absent, seconds / ROUNDS / 2, false));
        });
      }
      for (const d of open) await d.close();
      copies.forEach((c, i) => {
        const b = best[i] as { present: number; absent: number };
        rowsOut.push([c.table.compression ? 'on' : 'off', String(c.table.blockSize), formatBytes(cacheSize), formatBytes(c.bytes),
          `${formatRate(b.present)}/s`, `${(1e6 / b.present).toFixed(2)} us`, `${formatRate(b.absent)}/s`]);
      });
      log(`block cache ${formatBytes(cacheSize)} done`);
    }
    const table = markdownTable(['compression', 'block bytes', 'block cache', 'on disk', 'getSync present', 'per present key', 'getSync absent'], rowsOut,
      ['left', 'right', 'right', 'right', 'right', 'right', 'right']);
    process.stdout.write(`\`npm run bench:store-options -- --entries ${entries}${seed === DEFAULT_SEED ? '' : ` --seed ${seed}`} --seconds ${seconds}\`\n\n${table}\n\n` +
      `Store: ${formatNumber(rows)} generated rows imported with optout import, copied into each table format and compacted; ` +
      `lookups of ${formatRate(present.length)} keys drawn at random from every 25th stored key, ${formatRate(absent.length)} absent keys; best of ${ROUNDS} interleaved rounds.\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return 0;
}

runIfMain(import.meta.url, 'bench:store-options', main);
