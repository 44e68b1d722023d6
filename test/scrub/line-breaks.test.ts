/**
 * One rule for line breaks, in import: LF, CRLF and a lone CR outside quotes each end a record,
 * as Python's csv module (and Excel) read them; a lone CR read as text made the import skip the
 * address after it. The scrub's side, with Python's csv module as the oracle, is in
 * line-breaks.e2e.test.ts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/index.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

afterAll(removeTempDirs);

describe('import: a lone CR ends a row', () => {
  it('imports every row of an LF header with CR-terminated rows', async () => {
    const dir = await tempDir();
    const path = join(dir, 'cr-rows.csv');
    await writeFile(path, 'email\n' + Array.from({ length: 100 }, (_, i) => `cr${i}@example.com\r`).join(''));
    const report = await runImport({ source: { kind: 'file', path }, db: join(dir, 'db'), confirm: { mode: 'yes' }, threads: 1 });
    expect(report).toMatchObject({ rows: 100, valid: 100, added: 100 });
  });

  it('counts every row of a 3,000-row file that mixes LF, CRLF and CR, and stores every address', async () => {
    const dir = await tempDir();
    const path = join(dir, 'mixed.csv');
    const breaks = ['\n', '\r\n', '\r'];
    const emails = Array.from({ length: 3000 }, (_, i) => `mixed${i}@example.com`);
    await writeFile(path, 'email,n\r\n' + emails.map((e, i) => `${e},"${i % 7 === 0 ? 'a\rb' : 'c'}"${breaks[(i * 7) % 3] as string}`).join(''));
    const target = join(dir, 'db');
    const report = await runImport({ source: { kind: 'file', path }, db: target, confirm: { mode: 'yes' }, threads: 2, chunkBytes: 4096 });
    expect(report).toMatchObject({ rows: 3000, valid: 3000, invalid: 0, added: 3000 });
    const store = await openStore(target);
    try {
      const decisions = await Promise.all(emails.map((email) => store.check({ email })));
      expect(decisions.filter((d) => d.eligible)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
