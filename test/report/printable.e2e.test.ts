/**
 * Text from files, requests and options reaches terminals and logs escaped and bounded: labels
 * with escape sequences and newlines, binary headers, ten thousand headers.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { printable } from '../../src/report/printable.js';
import { removeTempDirs, runCli, tempDir } from '../helpers.js';

afterAll(removeTempDirs);

// C0, DEL, C1, and the bidi and zero-width format characters.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

describe('printable', () => {
  it('escapes control and format characters and keeps everything else', () => {
    expect(printable('a\u001b[2Jb\nc\td\r\u0000\u202eé😀')).toBe('a\\x1b[2Jb\\nc\\td\\r\\x00\\u202eé😀');
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 50 }), (s) => {
      expect(printable(s, 100)).not.toMatch(UNSAFE);
      if (!UNSAFE.test(s)) expect(printable(s, 100)).toBe(s);
    }), { numRuns: 2000 });
  });

  it('caps the length and says how much was left out', () => {
    expect(printable('x'.repeat(250), 200)).toBe('x'.repeat(200) + '… (50 more characters)');
  });
});

describe('the CLI prints what it did not write itself escaped and bounded', () => {
  it('a --source label with an escape sequence and a newline, in the report, jobs and stats', async () => {
    const dir = await tempDir();
    const list = join(dir, 'list.csv');
    await writeFile(list, 'email\na@example.com\n');
    const db = join(dir, 'db');
    const label = 'evil\u001b[2J\nforged line';
    const imported = await runCli(['--db', db, 'import', list, '--yes', '--source', label]);
    expect(imported.code).toBe(0);
    for (const out of [imported.stdout, (await runCli(['--db', db, 'jobs'])).stdout, (await runCli(['--db', db, 'stats'])).stdout]) {
      expect(out).toContain('evil\\x1b[2J\\nforged line');
      expect(out).not.toContain('\u001b');
      expect(out).not.toMatch(/^forged line/m);
    }
  });

  it('a binary header: no raw bytes, a bounded message, a hint for UTF-16 without a byte-order mark', async () => {
    const dir = await tempDir();
    const wide = join(dir, 'wide.csv');
    await writeFile(wide, Array.from({ length: 10_000 }, (_, i) => `h\u0000\u001b${i}`).join(',') + '\nx\n');
    const a = await runCli(['--db', join(dir, 'db'), 'import', wide, '--dry-run']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('OPTOUT_ERR_NO_EMAIL_COLUMN');
    expect(a.stderr).not.toMatch(/[\u0000\u001b]/);
    expect(a.stderr.length).toBeLessThan(5000);
    expect(a.stderr).toContain('and 9980 more');

    const utf16 = join(dir, 'utf16.csv');
    await writeFile(utf16, Buffer.from('email,name\na@example.com,A\n', 'utf16le'));
    const b = await runCli(['--db', join(dir, 'db'), 'import', utf16, '--dry-run']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('--encoding utf16le');
    expect(b.stderr).not.toContain('\u0000');
  });
});
