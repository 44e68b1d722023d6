/**
 * The README's Errors table is the error table of src/errors.ts, row for row: every code with
 * its exit status, HTTP status and description. On a mismatch the expected table is printed, to
 * paste into the README.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/errors.js';
import { ROOT } from '../helpers.js';

const HEADER = '| code | exit | HTTP | when |';

function expectedTable(): string {
  const rows = Object.entries(ERROR_TABLE).map(([code, spec]) => `| \`${code}\` | ${spec.exit} | ${spec.http} | ${spec.description} |`);
  return [HEADER, '|---|---|---|---|', ...rows].join('\n');
}

describe('README: Errors', () => {
  it('lists every code with its exit status, HTTP status and description', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf(HEADER);
    expect(start, 'the README has no Errors table').toBeGreaterThan(0);
    const end = readme.indexOf('\n\n', start);
    expect(readme.slice(start, end)).toBe(expectedTable());
  });
});
