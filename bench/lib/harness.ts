import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeList } from '../generate.js';
import { formatNumber, formatSeconds } from './measure.js';

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
