/**
 * `optout serve --db postgres://... --replica <dir>`, the built CLI: two replica processes serve
 * one database; a write through one is seen by the other with `minSeq`; a replica of a database
 * without the schema exits 2; the view folder is refused to every other command; SIGTERM ends
 * a replica with exit 0, and a restart reuses its view; the jobs of a replica lost for good are
 * shown with their holder, abandoned from the command line, or ended by another replica.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { callApi, errorCodes, listeningPort, parseJson, removeTempDirs, runCli, startCli, stopStarted, tempDir, type ApiMethod, type StartedCli } from '../helpers.js';
import { resetDatabase, withPgDatabase } from '../store/pg-cluster.js';

const started: StartedCli[] = [];

afterEach(async () => {
  await stopStarted(started);
  await removeTempDirs();
});

/**
 * A replica process, once it listens and its view has caught up. Its bound is wider than the
 * default: these tests are about what the replicas answer, not about the bound (test/replica has
 * those), and on a busy machine a feed poll can start more than a second after the previous one.
 */
async function replica(url: string, dir: string, extra: string[] = []): Promise<{ server: StartedCli; base: string }> {
  const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', url, '--replica', dir, '--log-level', 'silent',
    '--max-staleness', '5000', ...extra]);
  started.push(server);
  const port = await listeningPort(server, 30_000);
  for (let i = 0; i < 1500 && !/ready in \d+ ms/.test(server.stderr()); i++) {
    if (server.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!/ready in \d+ ms/.test(server.stderr())) throw new Error(`the replica did not catch up:\n${server.stderr()}`);
  return { server, base: `http://127.0.0.1:${port}` };
}

/** {@link callApi} with the feed position a write answered with. */
async function call(base: string, key: string, method: ApiMethod, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; seq: string | undefined }> {
  const answer = await callApi(base, method, path, key, body);
  const seq = answer.headers['x-optout-seq'];
  return { status: answer.status, json: answer.json, seq: typeof seq === 'string' ? seq : undefined };
}

await withPgDatabase('optout serve --replica', (url) => {
  describe('optout serve --replica', () => {
    it('refuses a database without the schema with exit 2, before it listens', async () => {
      await resetDatabase(url);
      const r = await runCli(['serve', '--port', '0', '--db', url, '--replica', join(await tempDir(), 'replica')]);
      expect(r.code).toBe(2);
      expect(errorCodes(r.stderr)).toEqual(['OPTOUT_ERR_SCHEMA']);
      expect(r.stderr).not.toContain('listening');
    });

    it('two replicas serve one database: a write through one is seen through the other with minSeq', async () => {
      await resetDatabase(url);
      expect((await runCli(['--db', url, 'migrate'])).code).toBe(0);
      const { key } = parseJson<{ key: string }>(await runCli(['--db', url, 'keys', 'create', '--scope', 'admin', '--json']));
      expect((await runCli(['--db', url, 'add', 'before@example.com'])).code).toBe(0);
      const dirs = [join(await tempDir(), 'one'), join(await tempDir(), 'two')];
      const [one, two] = await Promise.all(dirs.map((d) => replica(url, d)));
      if (one === undefined || two === undefined) throw new Error('no replicas');

      expect((await request(`${two.base}/readyz`)).statusCode).toBe(200);
      // Loaded from the database's snapshot.
      expect((await call(two.base, key, 'GET', '/v1/eligibility?email=before%40example.com')).json).toMatchObject({ eligible: false });

      const put = await call(one.base, key, 'PUT', '/v1/suppressions/after%40example.com', { reason: 'complaint' });
      expect(put.status).toBe(201);
      expect(put.seq).toMatch(/^\d+$/);
      const seen = await call(two.base, key, 'POST', '/v1/eligibility', { emails: ['after@example.com', 'other@example.com'], minSeq: Number(put.seq) });
      expect(seen.json['results']).toMatchObject([{ eligible: false, suppression: { reason: 'complaint' } }, { eligible: true }]);
      // Stopped and started again: the view is reused, then caught up with what it missed.
      two.server.child.kill('SIGTERM');
      const ended = await two.server.done;
      expect(ended.code, ended.stderr).toBe(0);
      // A command given the view's folder would answer without proof of freshness.
      const direct = await runCli(['--db', dirs[1] as string, 'check', 'after@example.com']);
      expect(direct.code).toBe(2);
      expect(errorCodes(direct.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);
      expect(direct.stderr).toContain('replica');
      const missed = await call(one.base, key, 'PUT', '/v1/suppressions/missed%40example.com');
      const again = await replica(url, dirs[1] as string);
      expect(again.server.stderr()).toMatch(/[1-9]\d* entries at feed position/);
      const got = await call(again.base, key, 'GET', `/v1/eligibility?email=missed%40example.com&minSeq=${missed.seq ?? ''}`);
      expect(got.json).toMatchObject({ eligible: false });
    }, 120_000);

    it('a replica lost for good: optout jobs shows its jobs\' holder, jobs abandon needs --force while it was seen, another replica ends the rest', async () => {
      await resetDatabase(url);
      expect((await runCli(['--db', url, 'migrate'])).code).toBe(0);
      const { key } = parseJson<{ key: string }>(await runCli(['--db', url, 'keys', 'create', '--scope', 'admin', '--json']));
      const dir = join(await tempDir(), 'lost');
      const lost = await replica(url, dir);
      const ids: string[] = [];
      for (const csv of ['email\na1@example.com\n', 'email\nb1@example.com\nb2@example.com\n']) {
        const res = await request(`${lost.base}/v1/imports`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' }, body: csv });
        ids.push(((await res.body.json()) as { id: string }).id);
      }
      for (const id of ids) {
        let state: unknown;
        for (let i = 0; i < 400 && state !== 'awaiting_confirmation'; i++) {
          state = (await call(lost.base, key, 'GET', `/v1/imports/${id}`)).json['state'];
          if (state !== 'awaiting_confirmation') await new Promise((r) => setTimeout(r, 25));
        }
        expect(state).toBe('awaiting_confirmation');
      }
      const holder = readFileSync(join(dir, 'server-id'), 'utf8').trim();
      // The machine goes, and its folder with the uploads.
      lost.server.child.kill('SIGKILL');
      await lost.server.done;
      await rm(dir, { recursive: true, force: true });
      const [first, second] = ids as [string, string];

      const listed = parseJson<{ jobs: Array<{ id: string; holder?: { id: string; lost: boolean } }> }>(await runCli(['--db', url, 'jobs', '--json']));
      expect(listed.jobs.find((j) => j.id === first)?.holder).toMatchObject({ id: holder, lost: false });
      const refused = await runCli(['--db', url, 'jobs', 'abandon', first]);
      expect(refused.code).toBe(2);
      expect(errorCodes(refused.stderr)).toEqual(['OPTOUT_ERR_JOB_STATE']);
      const forced = await runCli(['--db', url, 'jobs', 'abandon', first, '--force', '--json']);
      expect(forced.code, forced.stderr).toBe(0);
      expect(parseJson(forced)).toMatchObject({ id: first, state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
      const audit = await runCli(['--db', url, 'audit', '--json']);
      expect(audit.stdout).toMatch(new RegExp(`"actor":"cli","action":"abandon","key":null,"job":"${first}"`));

      // Any other replica ends the rest once the lost one has not been seen for --lost-after, as
      // it watched: from its first heartbeat sweep (5 s), the job ends at its second or third.
      const other = await replica(url, join(await tempDir(), 'other'), ['--lost-after', '1s']);
      let job: Record<string, unknown> = {};
      for (let i = 0; i < 2000 && job['state'] !== 'expired'; i++) {
        job = (await call(other.base, key, 'GET', `/v1/imports/${second}`)).json;
        if (job['state'] !== 'expired') await new Promise((r) => setTimeout(r, 25));
      }
      expect(job).toMatchObject({ state: 'expired', error: { code: 'OPTOUT_ERR_HOLDER_LOST' } });
    }, 120_000);
  });
});
