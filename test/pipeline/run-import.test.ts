import { openSync, readdirSync, readlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { isOptoutError, LevelStore } from '../../src/index.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { runImport, suppressed } from '../inline.js';

afterAll(removeTempDirs);

/** Files this process holds open. */
function openFiles(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return [];
    }
  });
}

describe.skipIf(process.platform !== 'linux')('runImport', () => {
  it('resumes a job stopped in its writing phase and leaves no source file open', async () => {
    const dir = await tempDir('optout-run-import-');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 60_000, seed: 7, out: list });
    const db = join(dir, 'db');

    const controller = new AbortController();
    const first = await runImport({
      source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' }, signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'writing') controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isOptoutError(first) && first.code).toBe('OPTOUT_ERR_ABORTED');

    const events: string[] = [];
    const report = await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' }, onEvent: (e) => events.push(e.type) });
    expect(events).toContain('resumed');
    expect(report).toMatchObject({ resumed: true, confirmed: true, rows: 60_000 });
    expect(report.unique + report.duplicates).toBe(report.valid);
    expect(openFiles().filter((f) => f === list)).toEqual([]);
  });

  it('yieldEvery gives the event loop back while a batch is built, and is validated', async () => {
    const dir = await tempDir('optout-run-import-');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 20_000, seed: 3, out: list });
    /** Per batch: how many event-loop turns ran between its first entry and its last. */
    const turnsWithinBatches = async (db: string, yieldEvery?: number): Promise<number[]> => {
      const store = await LevelStore.open(db);
      let turns = 0;
      let stop = false;
      const spin = (): void => {
        turns++;
        if (!stop) setImmediate(spin);
      };
      spin();
      const spans: Array<{ first: number; last: number }> = [];
      const batch = store.batch.bind(store);
      store.batch = (scope) => {
        const b = batch(scope);
        const put = b.putEntry.bind(b);
        const span = { first: -1, last: -1 };
        spans.push(span);
        b.putEntry = (...entry) => {
          if (span.first < 0) span.first = turns;
          span.last = turns;
          put(...entry);
        };
        return b;
      };
      try {
        await runImport({ source: { kind: 'file', path: list }, store, confirm: { mode: 'yes' }, yieldEvery });
      } finally {
        stop = true;
        await store.close();
      }
      return spans.map((x) => x.last - x.first);
    };
    const without = await turnsWithinBatches(join(dir, 'a'));
    expect(without.length).toBeGreaterThan(1);
    expect(without.every((t) => t === 0)).toBe(true);
    const withYields = await turnsWithinBatches(join(dir, 'b'), 64);
    expect(withYields.every((t) => t > 0)).toBe(true);
    const bad = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'c'), confirm: { mode: 'yes' }, yieldEvery: 0 }).catch((e: unknown) => e);
    expect(isOptoutError(bad) && bad.code).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

/**
 * 1,000 valid rows, then (line 1,002) a quoted record of about 3 MiB with a line break every
 * 100 bytes, so that chunk cuts keep falling inside it, then one more valid row.
 */
function brokenListFile(dir: string): { path: string; valid: string[]; after: string; line: number } {
  const path = join(dir, 'broken.csv');
  const valid = Array.from({ length: 1000 }, (_, i) => `kept${i}@broken.test`);
  const fd = openSync(path, 'w');
  writeSync(fd, 'email,note\n' + valid.map((e) => `${e},ok\n`).join('') + 'huge@broken.test,"');
  const lines = Buffer.from(`${'x'.repeat(99)}\n`.repeat(1024));
  for (let i = 0; i < 30; i++) writeSync(fd, lines);
  writeSync(fd, '"\nafter@broken.test,ok\n');
  closeSync(fd);
  return { path, valid, after: 'after@broken.test', line: valid.length + 2 };
}

describe('runImport of a list with a broken record', () => {
  // Small chunks and a small record limit: the carry-over runs many times, as with a 50 MB record.
  const small = { maxRecordBytes: 64 * 1024, chunkBytes: 16 * 1024 };

  for (const threads of [1, 2]) {
    for (const confirm of [{ mode: 'yes' } as const, { mode: 'count', count: 1000 } as const]) {
      it(`stores every row before it and fails the job with its line (threads ${threads}, confirm ${confirm.mode})`, async () => {
        const dir = await tempDir('optout-run-import-');
        const list = brokenListFile(dir);
        const db = join(dir, 'db');
        const err = await runImport({ source: { kind: 'file', path: list.path }, db, threads, confirm, ...small }).catch((e: unknown) => e);
        expect(isOptoutError(err) && { code: err.code, line: err.location?.line })
          .toEqual({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: list.line });
        expect(await suppressed(db, list.valid)).toEqual(list.valid);
        expect(await suppressed(db, [list.after])).toEqual([]);
        const store = await LevelStore.open(db);
        try {
          const jobs = await store.listImports();
          expect(jobs.map((j) => ({ state: j.state, code: j.error?.code, added: j.checkpoint.counts.added })))
            .toEqual([{ state: 'failed', code: 'OPTOUT_ERR_RECORD_TOO_LARGE', added: 1000 }]);
        } finally {
          await store.close();
        }
      });
    }
  }

  it('a dry run or an unanswered confirmation reports the rows before it and the error, writing nothing', async () => {
    const dir = await tempDir('optout-run-import-');
    const list = brokenListFile(dir);
    const db = join(dir, 'db');
    const asked: Array<{ unique: number; code: string | undefined }> = [];
    const dry = await runImport({ source: { kind: 'file', path: list.path }, db, threads: 1, confirm: { mode: 'dry-run' }, ...small });
    const unanswered = await runImport({
      source: { kind: 'file', path: list.path }, db, threads: 1, ...small,
      confirm: { mode: 'ask', ask: async (r) => {
        asked.push({ unique: r.unique, code: r.error?.code });
        return undefined;
      } },
    });
    for (const r of [dry, unanswered]) {
      expect(r).toMatchObject({ rows: 1000, valid: 1000, unique: 1000, confirmed: false, jobId: null,
        error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: list.line, row: 1001 } });
    }
    expect(asked).toEqual([{ unique: 1000, code: 'OPTOUT_ERR_RECORD_TOO_LARGE' }]);
    expect(await suppressed(db, list.valid.slice(0, 3))).toEqual([]);
  });

  it('a job stopped while writing the rows before it still ends failed when resumed', async () => {
    const dir = await tempDir('optout-run-import-');
    const list = brokenListFile(dir);
    const db = join(dir, 'db');
    const controller = new AbortController();
    const confirm = { mode: 'count', count: 1000 } as const;
    const first = await runImport({
      source: { kind: 'file', path: list.path }, db, threads: 1, confirm, ...small, signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'writing') controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(isOptoutError(first) && first.code).toBe('OPTOUT_ERR_ABORTED');
    for (const again of [confirm, { mode: 'yes' } as const]) {
      const events: string[] = [];
      const err = await runImport({ source: { kind: 'file', path: list.path }, db, threads: 1, confirm: again, ...small,
        onEvent: (e) => events.push(e.type) }).catch((e: unknown) => e);
      expect(isOptoutError(err) && { code: err.code, line: err.location?.line }).toEqual({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: list.line });
      // The first run resumes the interrupted job; the second finds nothing to resume and
      // imports again (adding nothing), failing the same way.
      if (again === confirm) expect(events).toContain('resumed');
    }
    expect(await suppressed(db, list.valid)).toEqual(list.valid);
  });
});
