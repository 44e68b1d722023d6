/**
 * `import -` keeps a copy of stdin to analyse the list before writing it, and a dry run spools
 * the list's keys: copies of an opt-out list, so personal data. They live in folders optout
 * owns, go when the import ends however it ends (Ctrl-C, SIGTERM), and a copy left by a
 * process killed with SIGKILL goes the next time optout runs on that store (or, without a
 * store, the next time optout runs at all). Each child gets a temp folder of its own (TMPDIR)
 * so that what it leaves there can be seen.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJson, removeTempDirs, runCli, seededRandom, startCli, tempDir, type CliResult } from '../helpers.js';
import type { ImportReport } from '../../src/report/summary.js';

const ROWS = 200_000;
const SEED = 20_261_208;
const DOMAIN = '@stdin-copy.test';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let dir: string;
let list: Buffer;
let unique: number;

beforeAll(async () => {
  dir = await tempDir('optout-stdin-copy-');
  const rows = Array.from({ length: ROWS }, (_, i) => `user${i % (ROWS - 1000)}${DOMAIN},Name ${i}`);
  list = Buffer.from(`email,name\n${rows.join('\n')}\n`);
  const dry = await runCli(['--db', join(dir, 'count'), 'import', '-', '--dry-run', '--json'], { input: list });
  expect(dry.code, dry.stderr).toBe(0);
  unique = parseJson<ImportReport>(dry).unique;
});

afterAll(removeTempDirs);

/** Files under `root` (the store's LevelDB aside, which holds what was imported) that hold any of the list's addresses. */
function copiesUnder(root: string): string[] {
  if (!existsSync(root)) return [];
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) {
        if (ent.name !== 'leveldb') walk(p);
      } else if (ent.isFile() && readFileSync(p).includes(DOMAIN)) {
        found.push(p);
      }
    }
  };
  walk(root);
  return found;
}

interface Place { db: string; tmp: string; env: Record<string, string> }

async function place(name: string): Promise<Place> {
  const tmp = join(dir, `${name}-ostmp`);
  await mkdir(tmp);
  return { db: join(dir, name), tmp, env: { TMPDIR: tmp } };
}

/**
 * Feeds the list to `import -` in pieces with pauses and, at a seeded random piece, once a copy
 * of what it read is on disk, sends `signal`; then closes stdin (as a pipe's writer stopped by
 * the same Ctrl-C would) and waits for the exit. With `whole`, the whole list is fed and stdin
 * closed first: a dry run's spool reaches the disk only once the input has ended.
 */
async function stopWhileReading(args: string[], p: Place, signal: NodeJS.Signals, random: () => number, whole = false): Promise<CliResult> {
  const run = startCli(args, { env: p.env });
  const pieces = 40;
  const size = Math.ceil(list.length / pieces);
  const stopAt = whole ? pieces : 2 + Math.floor(random() * (pieces - 4));
  const copies = (): number => copiesUnder(p.db).length + copiesUnder(p.tmp).length;
  for (let i = 0; i < pieces && (i < stopAt || copies() === 0); i++) {
    run.child.stdin.write(list.subarray(i * size, (i + 1) * size));
    await sleep(10);
  }
  if (whole) run.child.stdin.end();
  for (let i = 0; i < 5_000 && copies() === 0 && run.child.exitCode === null; i++) await sleep(1);
  expect(copies(), 'a copy of what was read is on disk').toBeGreaterThan(0);
  run.child.kill(signal);
  if (signal !== 'SIGKILL') {
    await sleep(50);
    run.child.stdin.end();
  }
  return run.done;
}

describe('the copy of stdin of an import, and a dry run\'s spool', () => {
  it('is gone once the next command opens the store after a kill -9', async () => {
    const random = seededRandom(SEED);
    for (let round = 0; round < 2; round++) {
      const p = await place(`killed-${round}`);
      const killed = await stopWhileReading(['--db', p.db, 'import', '-', '--confirm', String(unique), '--json'], p, 'SIGKILL', random);
      expect(killed.signal).toBe('SIGKILL');
      const next = await runCli(['--db', p.db, 'stats', '--json'], { env: p.env });
      expect(next.code, next.stderr).toBe(0);
      expect(copiesUnder(p.db)).toEqual([]);
      expect(copiesUnder(p.tmp)).toEqual([]);
      expect(readdirSync(p.tmp)).toEqual([]);
    }
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`is gone when the import stops on ${signal}`, async () => {
      const p = await place(signal);
      const stopped = await stopWhileReading(['--db', p.db, 'import', '-', '--confirm', String(unique)], p, signal, seededRandom(SEED + 1));
      expect(stopped.code, stopped.stderr).toBe(1);
      expect(stopped.stderr).toContain('[OPTOUT_ERR_ABORTED]');
      expect(copiesUnder(p.db)).toEqual([]);
      expect(readdirSync(p.tmp)).toEqual([]);
    });
  }

  it('of a dry run on a folder without a store is outside it, and gone at the next start after a kill -9', async () => {
    const p = await place('dry');
    const killed = await stopWhileReading(['--db', p.db, 'import', '-', '--dry-run', '--json'], p, 'SIGKILL', seededRandom(SEED + 2), true);
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(p.db)).toBe(false);
    const next = await runCli(['--db', p.db, 'import', '-', '--dry-run', '--json'], { env: p.env, input: 'email\nonly@stdin-copy.test\n' });
    expect(next.code, next.stderr).toBe(0);
    expect(parseJson<ImportReport>(next)).toMatchObject({ unique: 1, added: 1 });
    expect(existsSync(p.db)).toBe(false);
    expect(readdirSync(p.tmp)).toEqual([]);
  });
});
