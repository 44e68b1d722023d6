/**
 * The package's three entry points load only what they are for: a sending service that imports
 * `optout/client` gets undici, not the store's native addon, the worker pool or the server.
 * Each import runs in a fresh node process (a module loaded once stays loaded), from the package
 * folder so that the package resolves itself by name, through its `exports` map.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

const HEAVY = ['fastify', 'classic-level', 'piscina', 'prom-client'];

/** The npm packages whose CommonJS modules a process has loaded after importing `specifier`. */
function packagesLoadedBy(specifier: string): { packages: string[]; exported: string[] } {
  const script = `
    import { createRequire } from 'node:module';
    const m = await import(${JSON.stringify(specifier)});
    const cache = Object.keys(createRequire(process.cwd() + '/').cache);
    const packages = [...new Set(cache.map((p) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(p)?.[1]).filter(Boolean))];
    process.stdout.write(JSON.stringify({ packages, exported: Object.keys(m) }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out) as { packages: string[]; exported: string[] };
}

describe('entry points', () => {
  it('optout/client loads undici and none of the heavy dependencies', () => {
    const { packages, exported } = packagesLoadedBy('optout/client');
    expect(exported).toEqual(expect.arrayContaining(['OptoutClient', 'OptoutClientError']));
    expect(packages).toContain('undici');
    for (const name of HEAVY) expect(packages).not.toContain(name);
  });

  it('optout loads the store and the worker pool, not the server (the detection sees what loads)', () => {
    const { packages, exported } = packagesLoadedBy('optout');
    expect(exported).toEqual(expect.arrayContaining(['runImport', 'runScrub', 'openStore', 'OptoutError']));
    expect(exported).not.toContain('createServer');
    expect(packages).toEqual(expect.arrayContaining(['classic-level', 'piscina']));
    expect(packages).not.toContain('fastify');
  });

  it('optout/server loads fastify and prom-client', () => {
    const { packages, exported } = packagesLoadedBy('optout/server');
    expect(exported).toEqual(expect.arrayContaining(['createServer', 'ImportJobs']));
    expect(packages).toEqual(expect.arrayContaining(['fastify', 'prom-client']));
  });

  it('importing the CLI program runs no command', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e',
      `const m = await import('./dist/src/cli/program.js'); process.stdout.write(typeof m.buildProgram + ' ' + String(process.exitCode));`],
    { cwd: ROOT, encoding: 'utf8' });
    expect(out).toBe('function undefined');
  });
});
