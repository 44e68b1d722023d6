/**
 * `optout serve` and `optout keys` end to end: the built CLI makes a key, serves on a free port
 * of 127.0.0.1, answers with that key, and on SIGTERM closes the store and exits 0.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { callApi, errorCodes, listeningPort, parseJson, removeTempDirs, runCli, startCli, stopStarted, tempDir, type ApiAnswer, type ApiMethod, type StartedCli } from '../helpers.js';

const started: StartedCli[] = [];

afterEach(async () => {
  await stopStarted(started);
  await removeTempDirs();
});

/** A new store holding the list `text`, imported by the CLI from the file `csv`. */
async function storeOf(text: string): Promise<{ db: string; csv: string }> {
  const dir = await tempDir();
  const db = join(dir, 'db');
  const csv = join(dir, 'list.csv');
  await writeFile(csv, text);
  expect((await runCli(['import', csv, '--yes', '--db', db])).code).toBe(0);
  return { db, csv };
}

describe('optout serve', () => {
  it('serves checks with a key made by optout keys create, and exits 0 on SIGTERM', async () => {
    const { db, csv } = await storeOf('Email\nlisted@example.com\n');
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

  it('builds its key index once ready, answers every change from it, and loads it at the next start; --no-key-index keeps none', async () => {
    const { db } = await storeOf('Email\nlisted@example.com\nother@example.com\n');
    const { key } = parseJson<{ key: string }>(await runCli(['keys', 'create', '--scope', 'admin', '--json', '--db', db]));
    const ask = (base: string, method: ApiMethod, path: string, body?: unknown): Promise<ApiAnswer> => callApi(base, method, path, key, body);
    const eligible = async (base: string, email: string): Promise<unknown> =>
      (await ask(base, 'GET', `/v1/eligibility?email=${encodeURIComponent(email)}`)).json['eligible'];

    const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    started.push(server);
    const base = `http://127.0.0.1:${await listeningPort(server)}`;
    for (let i = 0; i < 500 && !/^key index: /m.test(server.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.stderr()).toMatch(/^key index: 2 entries in memory \(\d+ MiB\), built in \d+ ms$/m);
    expect(await eligible(base, 'Listed@Example.com')).toBe(false);
    expect(await eligible(base, 'new@example.com')).toBe(true);
    expect((await ask(base, 'PUT', '/v1/suppressions/new%40example.com', { reason: 'complaint' })).status).toBe(201);
    expect((await ask(base, 'GET', '/v1/eligibility?email=new%40example.com')).json).toMatchObject({ eligible: false, suppression: { reason: 'complaint' } });
    expect((await ask(base, 'DELETE', '/v1/suppressions/listed%40example.com', { why: 'asked to resubscribe' })).status).toBe(200);
    expect(await eligible(base, 'listed@example.com')).toBe(true);
    expect(await eligible(base, 'other@example.com')).toBe(false);
    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);

    const without = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db, '--no-key-index']);
    started.push(without);
    const base2 = `http://127.0.0.1:${await listeningPort(without)}`;
    expect(await eligible(base2, 'new@example.com')).toBe(false);
    expect(await eligible(base2, 'listed@example.com')).toBe(true);
    without.child.kill('SIGTERM');
    const done = await without.done;
    expect(done.code).toBe(0);
    expect(done.stderr).not.toContain('key index');

    // The first server saved its index as it closed, and nothing has changed since: loaded, not scanned.
    const again = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    started.push(again);
    const base3 = `http://127.0.0.1:${await listeningPort(again)}`;
    for (let i = 0; i < 500 && !/^key index: /m.test(again.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(again.stderr()).toMatch(/^key index: \d+ entries in memory \(\d+ MiB\), loaded from its snapshot in \d+ ms$/m);
    expect(await eligible(base3, 'new@example.com')).toBe(false);
    expect(await eligible(base3, 'listed@example.com')).toBe(true);
    expect(await eligible(base3, 'other@example.com')).toBe(false);
    again.child.kill('SIGTERM');
    expect((await again.done).code).toBe(0);
  });

  it('rejects bad options with exit 2 and a code', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    for (const args of [
      // --create: a folder without a store would be refused too, with the same code.
      ['serve', '--port', '70000'], ['serve', '--create', '--pending-ttl', 'soon'], ['serve', '--create', '--pending-ttl', '24'],
      ['serve', '--create', '--max-pending-bytes', '10 parsecs'], ['serve', '--create', '--max-pending-bytes', '0'], ['keys', 'create', '--scope', 'root'], ['keys', 'create', '--rate-limit', 'fast'], ['keys', 'revoke', 'nope'],
    ]) {
      const r = await runCli([...args, '--db', db]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(errorCodes(r.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
    }
  });

  it('expires an upload not confirmed within --pending-ttl and deletes it; refuses one past --max-pending-bytes with 507', async () => {
    const dir = await tempDir();
    const db = join(dir, 'db');
    const created = await runCli(['keys', 'create', '--scope', 'admin', '--json', '--db', db]);
    expect(created.code, created.stderr).toBe(0);
    const auth = { authorization: `Bearer ${parseJson<{ key: string }>(created).key}` };
    const server = startCli(['serve', '--port', '0', '--pending-ttl', '2s', '--max-pending-bytes', '1KiB', '--db', db]);
    started.push(server);
    const base = `http://127.0.0.1:${await listeningPort(server)}`;

    const posted = await request(`${base}/v1/imports`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: 'email\nwaits@example.com\n' });
    expect(posted.statusCode).toBe(202);
    const { id } = await posted.body.json() as { id: string };
    const big = await request(`${base}/v1/imports`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: `email\n${'x'.repeat(1024)}@example.com\n` });
    expect(big.statusCode).toBe(507);
    expect(await big.body.json()).toMatchObject({ code: 'OPTOUT_ERR_PENDING_QUOTA' });

    let state = '';
    for (let i = 0; i < 200 && state !== 'expired'; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      const res = await request(`${base}/v1/imports/${id}`, { headers: auth });
      state = (await res.body.json() as { state: string }).state;
    }
    expect(state).toBe('expired');
    expect(existsSync(join(db, 'uploads', `${id}.csv`))).toBe(false);

    server.child.kill('SIGTERM');
    expect((await server.done).code).toBe(0);
    const jobs = await runCli(['jobs', '--json', '--db', db]);
    expect(parseJson<{ jobs: Array<{ id: string; state: string }> }>(jobs).jobs).toEqual([expect.objectContaining({ id, state: 'expired' })]);
  });
});
