/**
 * A scrub killed with SIGKILL leaves its `.partial` outputs (a copy of the send list) behind;
 * the next scrub writing to the same outputs removes them, and leaves alone those of a process
 * that still runs.
 */
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SAMPLE, removeTempDirs, runCli, startCli, tempDir, waitForFile } from '../helpers.js';

afterAll(removeTempDirs);

describe('a killed scrub', () => {
  it('leaves no copy of the list behind once the next scrub to the same outputs has run', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    expect((await runCli(['--db', db, 'import', SAMPLE, '--yes'])).code).toBe(0);
    const list = join(dir, 'send.csv');
    const rows = Array.from({ length: 400_000 }, (_, i) => `user${i}@example.com,Name ${i}`);
    await writeFile(list, 'email,name\n' + rows.join('\n') + '\n');
    const out = join(dir, 'eligible.csv');
    const removed = join(dir, 'removed.csv');

    const killed = startCli(['--db', db, 'scrub', list, '--out', out, '--removed', removed, '--threads', '1']);
    killed.child.stdin.end();
    await waitForFile(`${out}.${killed.child.pid}.partial`);
    killed.child.kill('SIGKILL');
    await killed.done;
    expect(existsSync(`${out}.${killed.child.pid}.partial`)).toBe(true);

    // Another process's file, still running (this test's own): not touched.
    const live = `${out}.${process.pid}.partial`;
    await writeFile(live, 'in progress');
    const again = await runCli(['--db', db, 'scrub', list, '--out', out, '--removed', removed, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const left = (await readdir(dir)).filter((n) => n.endsWith('.partial'));
    expect(left).toEqual([`eligible.csv.${process.pid}.partial`]);
  });
});
