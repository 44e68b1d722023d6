/**
 * How a scrub finds the send list's email column: as an import does (`--column`, a header name,
 * then the one column whose cells are addresses), with one difference: a send list must have a
 * header, since the eligible file repeats it and a first line that is a recipient would
 * otherwise pass through unchecked.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';
import { runImport, runScrub } from '../inline.js';

let dir: string;
let db: string;

beforeAll(async () => {
  dir = await tempDir('optout-scrub-column-');
  db = join(dir, 'db');
  const list = join(dir, 'optouts.csv');
  await writeFile(list, 'email\ngone@example.com\nleft@example.org\n');
  await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' }, threads: 1 });
});
afterAll(removeTempDirs);

async function scrubText(name: string, text: string): Promise<{ eligible: string; removed: string }> {
  const path = join(dir, `${name}.csv`);
  await writeFile(path, text);
  const out = join(dir, `${name}.eligible.csv`);
  const removed = join(dir, `${name}.removed.csv`);
  await runScrub({ source: { kind: 'file', path }, db, out, removed, threads: 1 });
  return { eligible: await readFile(out, 'utf8'), removed: await readFile(removed, 'utf8') };
}

describe('scrub: the email column', () => {
  it('finds a column by its addresses when no header names it', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => `${i},Person ${i},person${i}@example.net`);
    const got = await scrubText('unnamed', ['id,name,Kontakt', '1,Gone,gone@example.com', ...rows, '2,Left,LEFT@example.org'].join('\n') + '\n');
    expect(got.eligible).toBe(['id,name,Kontakt', ...rows].join('\n') + '\n');
    expect(got.removed.split('\n').filter(Boolean)).toHaveLength(3);
    expect(got.removed).toContain('gone@example.com');
    expect(got.removed).toContain('LEFT@example.org');
  });

  it('refuses a send list whose first line is a recipient, and writes nothing', async () => {
    const path = join(dir, 'headerless.csv');
    await writeFile(path, 'gone@example.com,Gone\nother@example.net,Other\n');
    const out = join(dir, 'headerless.eligible.csv');
    const err = await runScrub({ source: { kind: 'file', path }, db, out, threads: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OPTOUT_ERR_NO_EMAIL_COLUMN' });
    expect((err as Error).message).toContain('no header');
    expect(existsSync(out)).toBe(false);
    // A column number does not make the first line a header either.
    expect(await failureCode(() => runScrub({ source: { kind: 'file', path }, db, out, column: '1', threads: 1 }))).toBe('OPTOUT_ERR_NO_EMAIL_COLUMN');
  });

  it('stops when several columns hold addresses, naming them', async () => {
    const path = join(dir, 'two.csv');
    await writeFile(path, 'a,b\n' + Array.from({ length: 10 }, (_, i) => `x${i}@example.com,y${i}@example.com`).join('\n') + '\n');
    const err = await runScrub({ source: { kind: 'file', path }, db, out: join(dir, 'two.out.csv'), threads: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN' });
  });
});
