/**
 * Durations and sizes as people type them on a command line (`24h`, `10GiB`), read once at the
 * boundary into milliseconds and bytes.
 */
import { OptoutError, describeValue } from './errors.js';

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `24h`, `7d` in milliseconds; at least one second. */
export function parseDuration(name: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/.exec(value);
  const ms = m === null ? NaN : Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
  if (!Number.isFinite(ms) || ms < 1000) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`${name}\` to be a duration such as 30s, 15m, 1h or 1d, of at least 1s, got ${describeValue(value)}`);
  }
  return Math.round(ms);
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};

/** `1048576`, `500MB` (10^6), `10GiB` (2^30) in bytes; at least one byte. */
export function parseByteSize(name: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(value);
  const bytes = m === null ? NaN : Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] as number));
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`${name}\` to be a size such as 1048576, 500MB or 10GiB, of at least 1 byte, got ${describeValue(value)}`);
  }
  return bytes;
}
