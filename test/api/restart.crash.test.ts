/**
 * Restarts: every address imported before a stop, a crash or a damaged snapshot must still be
 * answered "suppressed" over HTTP once the server is ready again. A key filter that missed a
 * stored key would answer "eligible" for it: the worst possible answer.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { writeList } from '../../bench/generate.js';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import type { Decision } from '../../src/check/rules.js';
import { parseEntryKey } from '../../src/store/level/keys.js';
import { ROOT, dumpStore, listenOnLoopback, parseJson, removeTempDirs, runCli, startCli, tempDir, type StartedCli } from '../helpers.js';

const BATCH = 1_000;

let dir: string;
let listA: string;
let listB: string;
let key: string;

beforeAll(async () => {
  dir = await tempDir('optout-restart-');
  listA = join(dir, 'a.csv');
  listB = join(dir, 'b.csv');
  await writeList({ rows: 3_000, seed: 11, out: listA });
  await writeList({ rows: 6_000, seed: 12, out: listB });
});

afterAll(async () => {
  await removeTempDirs();
});

const servers: OptoutServer[] = [];
const stores: OptoutStore[] = [];
const children: StartedCli[] = [];

afterEach(async () => {
  for (const app of servers.splice(0)) await app.close();
  for (const s of stores.splice(0)) await s.close();
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await c.done;
  }
});

/** A store holding list A, and an API key for it. */
async function storeWithListA(name: string): Promise<string> {
  const db = join(dir, name);
  const r = await runCli(['import', listA, '--yes', '--db', db]);
  expect(r.code, r.stderr).toBe(0);
  const created = await runCli(['keys', 'create', '--json', '--db', db]);
  expect(created.code, created.stderr).toBe(0);
  key = parseJson<{ key: string }>(created).key;
  return db;
}

/** Every key the store holds, read from LevelDB itself (no process may hold the store). */
async function storedKeys(db: string): Promise<string[]> {
  return (await dumpStore(db)).filter(([k]) => k.startsWith('e')).map(([k]) => parseEntryKey(k).key);
}

/** The decisions for `emails`, asked in batches over HTTP. */
async function ask(base: string, emails: readonly string[]): Promise<Decision[]> {
  const out: Decision[] = [];
  for (let i = 0; i < emails.length; i += BATCH) {
    const res = await request(`${base}/v1/eligibility`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ emails: emails.slice(i, i + BATCH) }),
    });
    const body = await res.body.text();
    expect(res.statusCode, body).toBe(200);
    out.push(...(JSON.parse(body) as { results: Decision[] }).results);
  }
  return out;
}

/** The stored keys answered anything but "suppressed", and a control address's answer. */
async function expectAllSuppressed(base: string, keys: readonly string[]): Promise<void> {
  expect(keys.length).toBeGreaterThan(0);
  const decisions = await ask(base, keys);
  const wrong = decisions.filter((d) => d.reason !== 'suppressed' || d.eligible);
  expect(wrong.slice(0, 5), `${wrong.length} of ${keys.length} stored keys not suppressed`).toEqual([]);
  // The filter is not "everything": an address never imported is eligible.
  const [fresh] = await ask(base, ['never.imported.anywhere@example.net']);
  expect(fresh).toMatchObject({ eligible: true, reason: 'not_suppressed' });
}

/** `optout serve` on a free loopback port; resolves once /readyz answers 200. */
async function serve(db: string): Promise<{ server: StartedCli; base: string; filterSource: string }> {
  const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', db], { timeoutMs: 60_000 });
  children.push(server);
  const deadline = Date.now() + 30_000;
  let m: RegExpExecArray | null = null;
  while (m === null) {
    m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.stderr());
    if (m === null && (server.child.exitCode !== null || Date.now() > deadline)) throw new Error(`serve did not start:\n${server.stderr()}`);
    if (m === null) await new Promise((r) => setTimeout(r, 20));
  }
  const base = m[1] as string;
  const ready = await request(`${base}/readyz`);
  await ready.body.dump();
  expect(ready.statusCode).toBe(200);
  const source = /key filter from (\w+)/.exec(server.stderr())?.[1] ?? '?';
  return { server, base, filterSource: source };
}

async function kill9(server: StartedCli): Promise<void> {
  server.child.kill('SIGKILL');
  expect((await server.done).signal).toBe('SIGKILL');
}

async function stop(server: StartedCli): Promise<void> {
  server.child.kill('SIGTERM');
  const done = await server.done;
  expect(done.code, done.stderr).toBe(0);
}

/**
 * Imports `list` through the library in a child process that kills itself with SIGKILL in the
 * middle of the writing phase, once `buckets` batches have been handed to the store: it leaves
 * committed batches and no snapshot of the filter that covers them.
 */
async function importKilledMidWrite(db: string, list: string, buckets: number): Promise<void> {
  const script = join(dir, `killed-import-${Date.now()}.mjs`);
  await writeFile(script, [
    `import { runImport } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'src', 'index.js')).href)};`,
    `await runImport({ source: { kind: 'file', path: ${JSON.stringify(list)} }, db: ${JSON.stringify(db)}, confirm: { mode: 'yes' },`,
    `  onProgress: (p) => { if (p.phase === 'writing' && p.done >= ${buckets}) process.kill(process.pid, 'SIGKILL'); } });`,
    `process.stderr.write('the import completed before it was killed\\n');`,
  ].join('\n'));
  const proc = spawn(process.execPath, [script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => { stderr += d; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => proc.on('close', (_code, sig) => resolve(sig)));
  clearTimeout(timer);
  expect(signal, stderr).toBe('SIGKILL');
}

describe('a restarted server', () => {
  it('still answers every imported address suppressed after a stop and a restart', async () => {
    const db = await storeWithListA('clean');
    const keys = await storedKeys(db);
    for (let round = 0; round < 2; round++) {
      const store = await openStore(db);
      stores.push(store);
      // After the first clean close, the filter is the snapshot the close saved.
      if (round > 0) expect(store.store.filterSource).toBe('snapshot');
      const app = createServer({ store });
      servers.push(app);
      const base = await listenOnLoopback(app);
      await expectAllSuppressed(base, keys);
      await app.close();
      servers.splice(servers.indexOf(app), 1);
      await store.close();
      stores.splice(stores.indexOf(store), 1);
    }
  });

  it('answers every key suppressed after an import killed mid-write, then after the server itself is killed', async () => {
    const db = await storeWithListA('crash');
    const before = await storedKeys(db);
    await importKilledMidWrite(db, listB, 6);
    const keys = await storedKeys(db);
    // The killed import did write: list B's keys are only partly in, and no snapshot covers them.
    expect(keys.length).toBeGreaterThan(before.length);

    const first = await serve(db);
    await expectAllSuppressed(first.base, keys);
    expect(first.filterSource).toBe('replay');
    await kill9(first.server);

    const second = await serve(db);
    await expectAllSuppressed(second.base, keys);
    expect(['replay', 'snapshot']).toContain(second.filterSource);
    await stop(second.server);

    const third = await serve(db);
    await expectAllSuppressed(third.base, keys);
    expect(third.filterSource).toBe('snapshot');
    await stop(third.server);
  });

  it('answers every key suppressed when the snapshot was damaged or replaced by an older one', async () => {
    const db = await storeWithListA('tampered');
    const snapshot = join(db, 'filter.snapshot');
    const older = join(dir, 'older.snapshot');
    copyFileSync(snapshot, older);
    const r = await runCli(['import', listB, '--yes', '--db', db]);
    expect(r.code, r.stderr).toBe(0);
    const keys = await storedKeys(db);

    const damaged = readFileSync(snapshot);
    damaged[Math.floor(damaged.length / 2)] = (damaged[Math.floor(damaged.length / 2)] as number) ^ 0x20;
    writeFileSync(snapshot, damaged);
    const afterDamage = await serve(db);
    await expectAllSuppressed(afterDamage.base, keys);
    expect(afterDamage.filterSource).toBe('log');
    await stop(afterDamage.server);

    copyFileSync(older, snapshot);
    const afterStale = await serve(db);
    await expectAllSuppressed(afterStale.base, keys);
    expect(afterStale.filterSource).toBe('replay');
    await stop(afterStale.server);
  });
});
