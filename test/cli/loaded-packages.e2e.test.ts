/**
 * Each command loads the packages it uses and no more: the ESM loader costs per module, and
 * undici (~130 modules), piscina, fastify or cli-progress loaded for nothing doubled the time of
 * a one-off `optout check`. The child writes the packages it loaded (every CommonJS module in
 * the module cache, which includes those an ES module imported) to a file as it exits.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE, listeningPort, removeTempDirs, runCli, startCli, tempDir } from '../helpers.js';

const REPORTER = `
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  const names = new Set();
  for (const file of Object.keys(require.cache)) {
    const m = /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(file);
    if (m) names.add(m[1].replace(/\\\\/g, '/'));
  }
  writeFileSync(process.env.LOADED_PACKAGES_FILE, JSON.stringify([...names].sort()));
});
`;

let dir: string;
let db: string;
let reporter: string;

beforeAll(async () => {
  dir = await tempDir();
  db = join(dir, 'db');
  reporter = join(dir, 'report-loaded.cjs');
  await writeFile(reporter, REPORTER);
  const imported = await runCli(['import', SAMPLE, '--db', db, '--yes']);
  expect(imported.code).toBe(0);
}, 60_000);

afterAll(removeTempDirs);

function traced(name: string): { env: Record<string, string>; file: string } {
  const file = join(dir, `${name}.json`);
  return { file, env: { NODE_OPTIONS: `--require ${reporter}`, LOADED_PACKAGES_FILE: file } };
}

async function loaded(file: string): Promise<string[]> {
  return JSON.parse(await readFile(file, 'utf8')) as string[];
}

describe('packages loaded by a command', () => {
  it('a check loads the store, not the HTTP stack, the worker pool or the fetch client', async () => {
    const t = traced('check');
    const r = await runCli(['check', 'someone@example.com', '--db', db], { env: t.env });
    expect(r.code).toBe(0);
    const names = await loaded(t.file);
    expect(names).toContain('classic-level');
    for (const heavy of ['undici', 'piscina', 'fastify', 'cli-progress', 'prom-client']) expect(names).not.toContain(heavy);
  });

  it('an import loads the worker pool, and no progress bar when stderr is not a terminal', async () => {
    const t = traced('import');
    const r = await runCli(['import', SAMPLE, '--db', db, '--yes'], { env: t.env });
    expect(r.code).toBe(0);
    const names = await loaded(t.file);
    expect(names).toContain('piscina');
    for (const heavy of ['undici', 'fastify', 'cli-progress']) expect(names).not.toContain(heavy);
  });

  it('a server loads the HTTP stack, and neither the fetch client nor the worker pool before it needs them', async () => {
    const t = traced('serve');
    const s = startCli(['serve', '--db', db, '--port', '0', '--log-level', 'silent'], { env: t.env });
    await listeningPort(s);
    s.child.kill('SIGTERM');
    expect((await s.done).code).toBe(0);
    const names = await loaded(t.file);
    expect(names).toContain('fastify');
    for (const heavy of ['undici', 'piscina', 'cli-progress']) expect(names).not.toContain(heavy);
  });
});
