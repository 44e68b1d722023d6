/**
 * U+FFFD, the replacement character, is a character like any other when the bytes that spell it
 * are valid UTF-8: the address policy decides about it, as it does for the API. Only bytes that
 * did not decode (or a transcoded source, whose decoder put U+FFFD in their place) are
 * `INVALID_ENCODING`, and only those ask for another `--encoding`.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport, runScrub } from '../inline.js';
import { openStore } from '../../src/index.js';

afterAll(removeTempDirs);

const LITERAL = Buffer.from('\uFFFD', 'utf8');
/** `email\n` then rows: jos<U+FFFD>@example.com written as valid UTF-8, jos<E9>@example.com (Latin-1 é, not UTF-8), a plain one. */
const LIST = Buffer.concat([
  Buffer.from('email\njos'), LITERAL, Buffer.from('@example.com\njos'), Buffer.from([0xe9]), Buffer.from('@example.org\n'),
  Buffer.from('plain@example.com\n'),
  // In the domain the policy refuses it, with its own reason.
  Buffer.from('ann@exa'), LITERAL, Buffer.from('mple.com\n'),
]);

async function rejectsOf(path: string): Promise<Array<{ line: string; reason: string }>> {
  return parse(await readFile(path), { columns: true }) as Array<{ line: string; reason: string }>;
}

describe('a literal U+FFFD in valid UTF-8', () => {
  it('is imported as the policy says; only bytes that are not UTF-8 are INVALID_ENCODING', async () => {
    const dir = await tempDir('optout-fffd-');
    const list = join(dir, 'list.csv');
    await writeFile(list, LIST);
    const db = join(dir, 'db');
    const rejects = join(dir, 'rejects.csv');
    const report = await runImport({ source: { kind: 'file', path: list }, db, rejects, confirm: { mode: 'yes' } });
    expect(report).toMatchObject({ rows: 4, valid: 2, invalid: 2, added: 2, invalidUtf8: 1 });
    expect(await rejectsOf(rejects)).toMatchObject([
      { line: '3', reason: 'INVALID_ENCODING' },
      { line: '5', reason: 'DOMAIN_INVALID_CHARACTER' },
    ]);
    const store = await openStore(db);
    try {
      expect(await store.check({ email: 'jos\uFFFD@example.com' })).toMatchObject({ eligible: false, reason: 'suppressed' });
    } finally {
      await store.close();
    }
  });

  it('is checked by scrub as any address, while undecodable bytes are removed as INVALID_ENCODING', async () => {
    const dir = await tempDir('optout-fffd-');
    const db = join(dir, 'db');
    const optouts = join(dir, 'optouts.csv');
    await writeFile(optouts, Buffer.concat([Buffer.from('email\nsuppressed'), LITERAL, Buffer.from('@example.com\n')]));
    await runImport({ source: { kind: 'file', path: optouts }, db, confirm: { mode: 'yes' } });
    const list = join(dir, 'send.csv');
    await writeFile(list, Buffer.concat([LIST, Buffer.from('suppressed'), LITERAL, Buffer.from('@example.com\n')]));
    const out = join(dir, 'out.csv');
    const removed = join(dir, 'removed.csv');
    const report = await runScrub({ source: { kind: 'file', path: list }, db, out, removed });
    expect(report).toMatchObject({ rows: 5, eligible: 2, invalidUtf8: 1 });
    expect((await readFile(out)).equals(Buffer.concat([Buffer.from('email\njos'), LITERAL, Buffer.from('@example.com\nplain@example.com\n')])))
      .toBe(true);
    const gone = parse(await readFile(removed), { columns: true }) as Array<{ optout_reason: string; optout_detail: string }>;
    expect(gone.map((r) => r.optout_detail)).toEqual(['INVALID_ENCODING', 'DOMAIN_INVALID_CHARACTER', '*']);
  });

  it('counts as INVALID_ENCODING when a transcoding decoder put it in place of input it could not decode', async () => {
    const dir = await tempDir('optout-fffd-');
    const list = join(dir, 'utf16.csv');
    // UTF-16LE with a BOM; the second address holds a lone high surrogate (D800), which the decoder replaces.
    const text = (s: string): Buffer => Buffer.from(s, 'utf16le');
    await writeFile(list, Buffer.concat([
      Buffer.from([0xff, 0xfe]), text('email\nplain@example.com\njos'), Buffer.from([0x00, 0xd8]), text('@example.com\n'),
    ]));
    const rejects = join(dir, 'rejects.csv');
    const report = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'db'), rejects, confirm: { mode: 'yes' } });
    expect(report).toMatchObject({ rows: 2, valid: 1, invalid: 1, invalidUtf8: 1 });
    expect(await rejectsOf(rejects)).toMatchObject([{ line: '3', reason: 'INVALID_ENCODING' }]);
  });
});
