import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeList } from '../generate.js';
import { formatNumber, formatSeconds, timeChild, updateMarkedSection } from './measure.js';

/** A benchmark that cannot produce a trustworthy figure (wrong answers, a failed child). */
export class BenchFailure extends Error {}

/** Progress lines on stderr, prefixed with the benchmark's name; stdout keeps the table. */
export function makeLog(name: string): (line: string) => void {
  return (line) => {
    process.stderr.write(`${name}: ${line}\n`);
  };
}

/** A count from the command line: digits, `_` allowed as a separator. */
export function parseCount(flag: string, text: string | undefined, min: number, max: number): number {
  const digits = text?.replaceAll('_', '');
  const n = digits !== undefined && /^\d+$/.test(digits) ? Number(digits) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new RangeError(`Expected \`${flag}\` to be an integer from ${min} to ${max}, got \`${text ?? ''}\``);
  }
  return n;
}

/** The folder holding package.json, found from this file so that any working directory works. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new BenchFailure('package.json not found above this script');
    dir = up;
  }
  return dir;
}

/** Generates the list once; later runs reuse it (data/generated is not committed). */
export async function ensureList(file: string, rows: number, seed: number, log: (line: string) => void): Promise<void> {
  if (existsSync(file)) {
    log(`reusing ${file}`);
    return;
  }
  log(`generating ${formatNumber(rows)} rows (seed ${seed}) -> ${file}`);
  const started = performance.now();
  const partial = `${file}.${process.pid}.tmp`;
  try {
    await writeList({ rows, seed, out: partial });
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
  log(`generated in ${formatSeconds((performance.now() - started) / 1000)} s`);
}

/**
 * The same list as NDJSON: one object a record, keyed by the CSV's header (a record with fewer
 * cells lacks the last keys), so that an import of it reads the same addresses in the same
 * order. Written once beside the CSV, as the list is.
 */
export async function ensureNdjson(csvFile: string, file: string, log: (line: string) => void): Promise<void> {
  if (existsSync(file)) {
    log(`reusing ${file}`);
    return;
  }
  log(`writing ${csvFile} as NDJSON -> ${file}`);
  const started = performance.now();
  const partial = `${file}.${process.pid}.tmp`;
  try {
    await pipeline(createReadStream(csvFile), parse({ columns: true, relax_column_count: true }), async function* (records: AsyncIterable<Record<string, string>>) {
      let text = '';
      for await (const record of records) {
        text += JSON.stringify(record) + '\n';
        if (text.length >= 1 << 20) {
          yield text;
          text = '';
        }
      }
      yield text;
    }, createWriteStream(partial));
    await rename(partial, file);
  } finally {
    await rm(partial, { force: true });
  }
  log(`written in ${formatSeconds((performance.now() - started) / 1000)} s`);
}

/** The last lines of a child's output, for failure messages. */
export function tail(s: string, lines = 20): string {
  return s.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Throws a {@link BenchFailure} with the child's stderr unless it exited with 0. */
export function ensureOk(what: string, r: { exitCode: number | null; signal: NodeJS.Signals | null; stderr: string }): void {
  if (r.exitCode !== 0) {
    throw new BenchFailure(`${what} exited with ${r.exitCode ?? r.signal ?? '?'}\n--- stderr (tail) ---\n${tail(r.stderr)}`);
  }
}

/** Imports with the real CLI into a temporary folder renamed on success, so a crash leaves none. */
export async function ensureStore(cli: string, file: string, db: string, log: (line: string) => void): Promise<void> {
  if (existsSync(db)) {
    log(`reusing the store ${db}`);
    return;
  }
  const partial = `${db}.${process.pid}.tmp`;
  log(`importing ${file} -> ${db}`);
  try {
    const r = await timeChild(process.execPath, [cli, 'import', file, '--yes', '--db', partial]);
    ensureOk('optout import', r);
    log(`imported in ${formatSeconds(r.seconds)} s`);
    await rename(partial, db);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

/** Writes a benchmark's block between its README markers, or says why it could not. */
export async function updateReadme(root: string, section: string, block: string, log: (line: string) => void): Promise<void> {
  const readme = join(root, 'README.md');
  if (await updateMarkedSection(readme, section, block)) log(`updated ${readme}`);
  else log(`README.md not updated: it needs both <!-- ${section}:start --> and <!-- ${section}:end -->`);
}

/**
 * Runs `main` with the command-line arguments when the module at `moduleUrl` is the script node
 * was started with; its result is the exit code, a failure exit 1.
 */
export function runIfMain(moduleUrl: string, name: string, main: (argv: readonly string[]) => Promise<number>): void {
  const entry = process.argv[1];
  if (entry === undefined || moduleUrl !== pathToFileURL(resolve(entry)).href) return;
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const message = err instanceof BenchFailure ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`${name}: FAILED: ${message}\n`);
      process.exitCode = 1;
    },
  );
}

/** A TCP port of 127.0.0.1 free a moment ago, for a child server that must be polled before it says where it listens. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
