/**
 * The unit tier (every `*.test.ts` that is not `*.e2e.test.ts` or `*.crash.test.ts`) runs `src/`
 * in the test process: none of its files loads the build or starts a process (the CLI helpers
 * refuse to spawn in this tier).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []);
}

const unit = testFiles(join(ROOT, 'test')).filter((f) => !/\.(e2e|crash)\.test\.ts$/.test(f));
const using = (pattern: RegExp): string[] => unit.filter((f) => pattern.test(readFileSync(f, 'utf8'))).map((f) => relative(ROOT, f));

describe('the unit tier', () => {
  it('loads nothing from dist/', () => {
    expect(unit.length).toBeGreaterThan(0);
    expect(using(/['"`/]dist\//)).toEqual([]);
  });

  it('starts no process', () => {
    expect(using(/['"]node:child_process['"]/)).toEqual([]);
  });

  it('spawns no CLI', async () => {
    const { runCli } = await import('./helpers.js');
    await expect(runCli(['--version'])).rejects.toThrow(/unit tier/);
  });
});
