/**
 * `optout serve --log-level`: the built CLI logs one JSON line per request on stdout, with no
 * address and no key in it; `silent` logs none; an unknown level is a usage error.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir, type StartedCli } from '../helpers.js';

/** Servers still running when a test fails are killed by the next afterEach. */
const running = new Set<StartedCli>();

afterEach(async () => {
  await Promise.all([...running].map(async (s) => {
    s.child.kill('SIGKILL');
    await s.done;
  }));
  running.clear();
  await removeTempDirs();
});

async function serve(db: string, extra: string[]): Promise<{ server: StartedCli; base: string }> {
  const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db, ...extra]);
  running.add(server);
  void server.done.then(() => running.delete(server));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stderr());
    if (m?.[1] !== undefined) return { server, base: m[1] };
    if (server.child.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start:\n${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function check(base: string, key: string): Promise<void> {
  const res = await request(`${base}/v1/eligibility?email=${encodeURIComponent('private.person@example.com')}`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
}

describe('optout serve --log-level', () => {
  it('logs a check as one JSON line without the address or the key, and nothing when silent', async () => {
    const db = join(await tempDir(), 'db');
    const created = await runCli(['keys', 'create', '--json', '--db', db]);
    const { id, key } = parseJson<{ id: string; key: string }>(created);

    const { server, base } = await serve(db, []);
    await check(base, key);
    server.child.kill('SIGTERM');
    const done = await server.done;
    expect(done.code, done.stderr).toBe(0);
    const lines = done.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l['msg'] === 'request')).toEqual([
      expect.objectContaining({ method: 'GET', route: '/v1/eligibility', status: 200, keyId: id, ms: expect.any(Number) }),
    ]);
    expect(done.stdout).not.toContain('private.person');
    expect(done.stdout).not.toContain(key);

    const quiet = await serve(db, ['--log-level', 'silent']);
    await check(quiet.base, key);
    quiet.server.child.kill('SIGTERM');
    expect((await quiet.server.done).stdout).toBe('');
  });

  it('refuses an unknown level', async () => {
    const r = await runCli(['serve', '--log-level', 'loud', '--db', join(await tempDir(), 'db')]);
    expect(r.code).toBe(2);
    expect(errorCodes(r.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
  });
});
