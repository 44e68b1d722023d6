import type { Command } from 'commander';
import { OptoutError, describeValue } from '../errors.js';
import { defaultDb } from '../options.js';

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
