/**
 * `optout serve` killed with SIGKILL during an HTTP import: the restarted server takes the job
 * up, and the store ends as a clean import leaves it.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { writeList } from '../../bench/generate.js';
import { dumpStore, listeningPort, parseJson, removeTempDirs, runCli, startCli, stopStarted, tempDir, type StartedCli } from '../helpers.js';

const started: StartedCli[] = [];

afterEach(async () => {
  await stopStarted(started);
  await removeTempDirs();
});

describe('optout serve', () => {
  it('takes up an HTTP import cut off by a kill, and ends with the store a clean import makes', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 300_000, seed: 5, out: list });
    const admin = parseJson<{ key: string }>(await runCli(['keys', 'create', '--scope', 'admin', '--json', '--db', db])).key;
    const auth = { authorization: `Bearer ${admin}` };

    let server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    started.push(server);
    let base = `http://127.0.0.1:${await listeningPort(server)}`;
    const posted = await request(`${base}/v1/imports?yes=true&source=partner`, {
      method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: createReadStream(list),
    });
    expect(posted.statusCode).toBe(202);
    const { id } = await posted.body.json() as { id: string };
    const job = async (): Promise<{ state: string; progress: { phase: string } | null; counts: { added: number } }> => {
      const res = await request(`${base}/v1/imports/${id}`, { headers: auth });
      return await res.body.json() as { state: string; progress: { phase: string } | null; counts: { added: number } };
    };
    // Killed once it is writing: part of the list is stored, the rest is not.
    for (let i = 0; i < 2000; i++) {
      const j = await job();
      expect(j.state).toBe('importing');
      if (j.progress?.phase === 'writing') break;
      await new Promise((r) => setTimeout(r, 5));
    }
    server.child.kill('SIGKILL');
    await server.done;

    server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    started.push(server);
    base = `http://127.0.0.1:${await listeningPort(server)}`;
    let final = await job();
    for (let i = 0; i < 2000 && final.state !== 'completed'; i++) {
      expect(['importing', 'interrupted']).toContain(final.state);
      await new Promise((r) => setTimeout(r, 20));
      final = await job();
    }
    expect(final.state).toBe('completed');
    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);

    const clean = join(dir, 'clean');
    expect((await runCli(['import', list, '--yes', '--db', clean])).code).toBe(0);
    const entries = async (path: string): Promise<string[]> => (await dumpStore(path)).filter(([k]) => k.startsWith('e')).map(([k]) => k);
    const expected = await entries(clean);
    expect(expected.length).toBeGreaterThan(100_000);
    expect(await entries(db)).toEqual(expected);
    expect(final.counts.added).toBe(expected.length);
  });
});
