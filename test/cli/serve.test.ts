/**
 * `optout serve` and `optout keys` end to end: the built CLI makes a key, serves on a free port
 * of 127.0.0.1, answers with that key, and on SIGTERM closes the store and exits 0.
 */
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { writeList } from '../../bench/generate.js';
import { dumpStore, errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir, type StartedCli } from '../helpers.js';

const started: StartedCli[] = [];

afterEach(async () => {
  for (const s of started.splice(0)) {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await s.done;
  }
  await removeTempDirs();
});

async function listeningPort(s: StartedCli, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(s.stderr());
    if (m?.[1] !== undefined) return Number(m[1]);
    if (s.child.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start:\n${s.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('optout serve', () => {
  it('serves checks with a key made by optout keys create, and exits 0 on SIGTERM', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    const csv = join(dir, 'list.csv');
    await writeFile(csv, 'Email\nlisted@example.com\n');
    expect((await runCli(['import', csv, '--yes', '--db', db])).code).toBe(0);
    const created = await runCli(['keys', 'create', '--unit', 'emea', '--rate-limit', '100/s', '--json', '--db', db]);
    expect(created.code, created.stderr).toBe(0);
    const { id, key, unit, scope, rateLimit } = parseJson<{ id: string; key: string; unit: string; scope: string; rateLimit: number }>(created);
    expect({ unit, scope, rateLimit }).toEqual({ unit: 'emea', scope: 'check', rateLimit: 100 });
    expect(key.startsWith('oo_')).toBe(true);

    const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    started.push(server);
    const base = `http://127.0.0.1:${await listeningPort(server)}`;
    expect((await request(`${base}/readyz`).then(async (r) => { await r.body.dump(); return r.statusCode; }))).toBe(200);
    const res = await request(`${base}/v1/eligibility?email=Listed@Example.com&unit=emea`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ eligible: false, reason: 'suppressed' });
    const other = await request(`${base}/v1/eligibility?email=listed@example.com&unit=apac`, { headers: { authorization: `Bearer ${key}` } });
    expect(other.statusCode).toBe(403);
    await other.body.dump();

    // While the server holds the store, a CLI import points at the HTTP import instead.
    const blocked = await runCli(['import', csv, '--yes', '--db', db]);
    expect(blocked.code).toBe(2);
    expect(errorCodes(blocked.stderr)).toEqual(['OPTOUT_ERR_STORE_SERVED']);
    expect(blocked.stderr).toContain(`POST ${base}/v1/imports`);

    server.child.kill('SIGTERM');
    const done = await server.done;
    expect(done.code, done.stderr).toBe(0);

    // The store was released: keys can be listed and revoked again.
    const list = await runCli(['keys', 'list', '--json', '--db', db]);
    expect(list.code, list.stderr).toBe(0);
    expect(parseJson<Array<{ id: string }>>(list).map((k) => k.id)).toEqual([id]);
    expect(list.stdout).not.toContain(key);
    expect((await runCli(['keys', 'revoke', id, '--db', db])).code).toBe(0);
    const after = parseJson<Array<{ revokedAt: string | null }>>(await runCli(['keys', 'list', '--json', '--db', db]));
    expect(after[0]?.revokedAt).toEqual(expect.any(String));
  });

  it('rejects bad options with exit 2 and a code', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    for (const args of [['serve', '--port', '70000'], ['keys', 'create', '--scope', 'root'], ['keys', 'create', '--rate-limit', 'fast'], ['keys', 'revoke', 'nope']]) {
      const r = await runCli([...args, '--db', db]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(errorCodes(r.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
    }
  });

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
