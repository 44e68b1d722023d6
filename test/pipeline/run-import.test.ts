import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { ROOT, removeTempDirs, tempDir } from '../helpers.js';

// The pipeline runs worker threads from the build, so the built entry point is under test.
const { runImport, isOptoutError } = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');

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
});
