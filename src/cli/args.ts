import type { Command } from 'commander';
import { OptoutError, describeValue } from '../errors.js';
import { defaultDb } from '../options.js';
import { openLedger } from '../store/open.js';
import type { Ledger } from '../store/store.js';

export function dbOption(cmd: Command): string {
  const db = (cmd.optsWithGlobals() as { db?: string }).db;
  return db ?? defaultDb();
}

export function parseInteger(name: string, value: string, min = 1): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`--${name}\` to be an integer from ${min} and up, got ${describeValue(value)}`);
  }
  return n;
}

/** A count as people type it: `12,345` and `12 345` are 12345. */
export function parseCount(name: string, value: string): number {
  return parseInteger(name, value.replace(/[\s,_]/g, ''), 0);
}

/**
 * Node decodes the command line as UTF-8 and puts U+FFFD where bytes do not decode, and the
 * address policy accepts U+FFFD: `optout check` typed in a Latin-1 terminal would answer for an
 * address nobody suppresses. A literal U+FFFD cannot be told apart from one, so both are refused.
 */
export function assertArgumentsDecoded(args: readonly string[]): void {
  const at = args.findIndex((a) => a.includes('\uFFFD'));
  if (at !== -1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_ENCODING',
      `Argument ${at + 1} (${describeValue(args[at])}) is not valid UTF-8: set the terminal to UTF-8 (it may also hold a literal U+FFFD, which is refused too)`);
  }
}

/**
 * Opens the store named by `--db` (a folder or a PostgreSQL URL) for one command and closes it,
 * whatever happens. Only commands that write something of their own (`create`) make a folder
 * store where there is none.
 */
export async function withStore<T>(cmd: Command, purpose: string, fn: (store: Ledger) => Promise<T>,
  options: { create: boolean } = { create: false }): Promise<T> {
  const store = await openLedger(dbOption(cmd), { purpose, create: options.create });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Writes text to stdout, waiting when the pipe is full (a large export piped to `head`, say). */
export async function writeOut(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((r) => process.stdout.once('drain', r));
}
