/**
 * The scrub's two halves in-process: the worker task (offsets, keys, hashes, reasons of each
 * record) and the row sorter (decisions and output bytes), on a real store.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checker, normalizeCheckOptions } from '../../src/check/checker.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { isOptoutError } from '../../src/errors.js';
import type { Scanned } from '../../src/pipeline/scan.js';
import { RowSorter } from '../../src/scrub/rows.js';
import type { ScrubResult } from '../../src/workers/scrub-task.js';
import { scrubChunk } from '../../src/workers/scrub-worker.js';
import type { HeaderRecord } from '../../src/source/chunks.js';
import { LevelStore } from '../../src/store/level/level-store.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

const task = { delimiter: 0x2c, eol: 'lf' as const, column: 1, maxRecordBytes: 1 << 20, final: true, substitutes: false };

function scanned(text: string): Scanned<ScrubResult> {
  const bytes = Buffer.from(text);
  const result = scrubChunk({ ...task, bytes });
  return { result, bytes, endOffset: result.consumed, baseLine: 2, baseRow: 0 };
}

function headerOf(text: string): HeaderRecord {
  return { names: text.trim().split(','), dialect: { delimiter: ',' }, byteLength: text.length, bytes: Buffer.from(text), lines: 1 };
}

describe('scrubChunk', () => {
  it('gives each record its offsets, field count, key and hashes, or its reason', () => {
    const text = 'a,Jane.Doe+x@Example.com\r\n\nb\n"c,d","x ""y"""\ne,first.last@googlemail.com';
    const r = scrubChunk({ ...task, bytes: Buffer.from(text) });
    expect(r.records).toBe(4);
    const spans = Array.from({ length: r.records }, (_, i) => Array.from(r.spans.subarray(i * 3, i * 3 + 3)));
    expect(spans.map(([s, e, n]) => [text.slice(s, e), text.slice(e, n)])).toEqual([
      ['a,Jane.Doe+x@Example.com', '\r\n'], ['b', '\n'], ['"c,d","x ""y"""', '\n'], ['e,first.last@googlemail.com', ''],
    ]);
    expect(Array.from(r.fields)).toEqual([2, 1, 2, 2]);
    expect(r.keys).toBe('jane.doe@example.com' + 'firstlast@gmail.com');
    expect(Array.from(r.keyEnds)).toEqual([20, 20, 20, 39]);
    expect(r.reasons).toEqual(['MISSING_FIELD', 'INVALID_CHARACTER']);
    expect(Array.from(r.hashes)).toEqual([...hashKeyTuple('jane.doe@example.com').slice(0, 2), 0, 0, 0, 0, ...hashKeyTuple('firstlast@gmail.com').slice(0, 2)]);
  });

  it('counts cells that were not valid in the input encoding', () => {
    const r = scrubChunk({ ...task, bytes: Buffer.concat([Buffer.from('a,j'), Buffer.from([0xe9]), Buffer.from('@x.org\n')]) });
    expect(r.reasons).toEqual(['INVALID_ENCODING']);
    expect(r.invalidUtf8).toBe(1);
  });
});

describe('RowSorter', () => {
  let db: string;
  beforeAll(async () => {
    const dir = await tempDir('optout-scrub-rows-');
    db = join(dir, 'db');
    const list = join(dir, 'list.csv');
    await writeFile(list, 'email\njane.doe@example.com\n');
    await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' } });
  });
  afterAll(removeTempDirs);

  const header = headerOf('id,email,note\n');
  const rows = '1,ok@example.com,x\n2,also.ok@example.com,y\n\n3,jane.doe@example.com,z\n4,bad\n5,last@example.com,w';

  it('copies runs of eligible rows as written, and removed rows with padding and reasons', async () => {
    const store = await LevelStore.open(db);
    try {
      const sorter = new RowSorter(new Checker(store, await store.filter()), normalizeCheckOptions({}), header, true);
      const sorted = sorter.sort(scanned(rows));
      expect(sorted.eligible.toString()).toBe('1,ok@example.com,x\n2,also.ok@example.com,y\n5,last@example.com,w');
      expect(sorted.removed?.toString()).toBe('3,jane.doe@example.com,z,suppressed,*\n4,bad,,invalid_address,NO_AT_SIGN\n');
      expect(sorter.counts).toEqual({ rows: 5, eligible: 3, suppressed: 1, invalid: 1, legalBasis: 0 });
      expect(sorter.headers.removed.toString()).toBe('id,email,note,optout_reason,optout_detail\n');
    } finally {
      await store.close();
    }
  });

  it('fails closed: a store that cannot answer stops the scrub, nothing is let through', async () => {
    const store = await LevelStore.open(db);
    const checker = new Checker(store, await store.filter());
    await store.close();
    const sorter = new RowSorter(checker, normalizeCheckOptions({}), header, false);
    // Rows the filter rules out need no store; the suppressed row is a possible hit.
    let err: unknown;
    try {
      sorter.sort(scanned(rows));
    } catch (e) {
      err = e;
    }
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_STORE');
    expect(isOptoutError(err) && err.location?.row).toBe(3);
  });
});
