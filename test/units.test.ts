/**
 * Durations and sizes typed on the command line: `--pending-ttl`, `--max-pending-bytes`, and a
 * sync's `--every`.
 */
import { describe, expect, it } from 'vitest';
import { isOptoutError } from '../src/errors.js';
import { parseByteSize, parseDuration } from '../src/units.js';

function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return isOptoutError(err) ? err.code : err;
  }
  return undefined;
}

describe('parseDuration', () => {
  it.each([['2s', 2000], ['30m', 1_800_000], ['24h', 86_400_000], ['7d', 604_800_000], ['1.5h', 5_400_000], [' 90s ', 90_000]])('reads %s', (text, ms) => {
    expect(parseDuration('--pending-ttl', text)).toBe(ms);
  });

  it.each(['', '24', 'soon', '-1h', '0s', '500ms', '1w', '1h30m', 'h'])('refuses %j with OPTOUT_ERR_INVALID_OPTION', (text) => {
    expect(codeOf(() => parseDuration('--pending-ttl', text))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1_048_576], ['10GiB', 10 * 1024 ** 3], ['500MB', 500_000_000], ['64kib', 65_536], ['1.5KiB', 1536], ['2TB', 2e12], ['7B', 7], ['1 GiB', 1024 ** 3],
  ])('reads %s', (text, bytes) => {
    expect(parseByteSize('--max-pending-bytes', text)).toBe(bytes);
  });

  it.each(['', 'lots', '0', '-5MB', '10 parsecs', '0.1B', '10GiBs', '1e9'])('refuses %j with OPTOUT_ERR_INVALID_OPTION', (text) => {
    expect(codeOf(() => parseByteSize('--max-pending-bytes', text))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});
