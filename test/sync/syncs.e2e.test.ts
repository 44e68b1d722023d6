/** The CLI's sync commands against a local file server with ETags (127.0.0.1, --allow-private). */
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { removeTempDirs, runCli, tempDir } from '../helpers.js';
import { startFileServer, type TestServer } from '../fetch/http-server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
afterAll(removeTempDirs);

/** Serves `file.body` at /list.csv of a server kept in `servers`; see {@link startFileServer}. */
async function fileServer(file: { body: string }): Promise<TestServer> {
  const server = await startFileServer(file);
  servers.push(server);
  return server;
}

describe('sync from a URL', () => {
  it('optout sync add / run / list from the CLI', async () => {
    const server = await fileServer({ body: 'email\ncli@sync.test\n' });
    const db = join(await tempDir('optout-sync-'), 'db');
    const add = await runCli(['--db', db, 'sync', 'add', `${server.origin}/list.csv`, '--allow-private', '--every', '1d', '--json']);
    expect(add.code, add.stderr).toBe(0);
    const run = await runCli(['--db', db, 'sync', 'run', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'fetched', job: { state: 'completed', counts: { added: 1 } } });
    const again = await runCli(['--db', db, 'sync', 'run', '1']);
    expect(again.stdout).toContain('not modified');
    const list = await runCli(['--db', db, 'sync', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject({ syncs: [{ id: '1', lastStatus: 'not-modified', everyMs: 86_400_000 }] });
    expect((await runCli(['--db', db, 'check', 'cli@sync.test'])).code).toBe(1);
    const refused = await runCli(['--db', db, 'sync', 'add', `${server.origin}/list.csv`]);
    expect(refused.code).toBe(2);
  });
});
