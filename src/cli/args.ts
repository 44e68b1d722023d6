import type { Command } from 'commander';
import { OptoutError, describeValue } from '../errors.js';
import { defaultDb } from '../options.js';
import { LevelStore } from '../store/level-store.js';

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

/** Opens the store named by `--db` for one command and closes it, whatever happens. */
export async function withStore<T>(cmd: Command, purpose: string, fn: (store: LevelStore) => Promise<T>): Promise<T> {
  const store = await LevelStore.open(dbOption(cmd), { purpose });
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
