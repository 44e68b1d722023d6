/**
 * Temporary files of imports. A dry run analyses and writes nothing: on a folder that holds no
 * store it creates neither the folder nor a store (nothing is suppressed there yet, so every
 * unique address would be added), and it leaves no temporary file behind. A job's spool goes once
 * nothing can resume the job.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { removeTempDirs, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';
import type { SourceSpec } from '../../src/source/open-source.js';
import { isOptoutError } from '../../src/index.js';

afterAll(removeTempDirs);

/** Temporary folders of this process in the OS temp folder. */
const ownTemp = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith(`optout-${process.pid}-`));

describe('a dry run on a folder without a store', () => {
  const sources: Array<[string, (list: string) => SourceSpec]> = [
    ['a file', (list) => ({ kind: 'file', path: list })],
    ['stdin', (list) => ({ kind: 'stdin', stream: Readable.from([readFileSync(list)]) })],
  ];
  for (const [name, source] of sources) {
    it(`creates no folder and no store, and counts every unique address as added (${name})`, async () => {
      const dir = await tempDir('optout-dry-run-');
      const list = join(dir, 'list.csv');
      await writeList({ rows: 5_000, seed: 11, out: list });
      const db = join(dir, 'nope');
      const report = await runImport({ source: source(list), db, confirm: { mode: 'dry-run' } });
      expect(report).toMatchObject({ dryRun: true, confirmed: false, jobId: null, rows: 5_000, alreadySuppressed: 0 });
      expect(report.added).toBe(report.unique);
      expect(report.unique).toBeGreaterThan(0);
      expect(existsSync(db)).toBe(false);
      expect(ownTemp()).toEqual([]);
    });
  }

  it('leaves an empty folder empty', async () => {
    const dir = await tempDir('optout-dry-run-');
    const db = join(dir, 'empty');
    mkdirSync(db);
    const list = writeEmails(dir, 'list.csv', ['a@example.com', 'b@example.com', 'A@example.com']);
    const report = await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'dry-run' } });
    expect(report).toMatchObject({ rows: 3, unique: 2, duplicates: 1, added: 2 });
    expect(readdirSync(db)).toEqual([]);
    expect(ownTemp()).toEqual([]);
  });

  it('counts what a store already holds when there is one, and leaves no temporary folder in it', async () => {
    const dir = await tempDir('optout-dry-run-');
    const db = join(dir, 'db');
    await runImport({ source: { kind: 'file', path: writeEmails(dir, 'first.csv', ['a@example.com']) }, db, confirm: { mode: 'yes' } });
    const list = writeEmails(dir, 'list.csv', ['a@example.com', 'b@example.com']);
    const report = await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'dry-run' } });
    expect(report).toMatchObject({ unique: 2, added: 1, alreadySuppressed: 1 });
    expect(existsSync(join(db, 'tmp')) ? readdirSync(join(db, 'tmp')) : []).toEqual([]);
  });
});

describe('the spool of a command-line import of stdin', () => {
  it('is removed by the next import once the job was stopped: nothing can read the same stdin again', async () => {
    const dir = await tempDir('optout-stdin-spool-');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 60_000, seed: 12, out: list });
    const db = join(dir, 'db');
    const controller = new AbortController();
    const stopped = await runImport({
      source: { kind: 'stdin', stream: Readable.from([readFileSync(list)]) }, db, confirm: { mode: 'yes' }, signal: controller.signal,
      chunkBytes: 64 * 1024,
      onProgress: (p) => {
        if (p.rows > 10_000) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isOptoutError(stopped) && stopped.code).toBe('OPTOUT_ERR_ABORTED');
    const spool = join(db, 'spool');
    expect(readdirSync(spool)).toEqual(['job-1']);

    await runImport({ source: { kind: 'file', path: writeEmails(dir, 'next.csv', ['a@example.com']) }, db, confirm: { mode: 'yes' } });
    expect(readdirSync(spool)).toEqual([]);
  });
});
