import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const sample = join(root, 'data/sample-optouts.csv');
const hasScript = spawnSync('script', ['--version']).status === 0;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Runs the import on a pseudo-terminal (util-linux `script`) and types `answer` at the prompt. */
function importOnTerminal(db: string, answer: string, list = sample): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const command = [process.execPath, cli, 'import', list, '--db', db].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = false;
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (!answered && output.includes('Type that number')) {
        answered = true;
        child.stdin.write(answer + '\n');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.end();
      resolve({ code, output });
    });
  });
}

function entries(db: string): number {
  const r = spawnSync(process.execPath, [cli, 'stats', '--json', '--db', db], { encoding: 'utf8' });
  return (JSON.parse(r.stdout) as { entries: number }).entries;
}

describe.skipIf(!hasScript)('import on a terminal without a confirmation flag', () => {
  it('asks for the number of unique addresses and imports when it is typed', async () => {
    const db = mkdtempSync(join(tmpdir(), 'optout-tty-'));
    dirs.push(db);
    const { code, output } = await importOnTerminal(db, '7');
    expect(output).toContain('Type that number');
    expect(code).toBe(0);
    expect(entries(db)).toBe(7);
  });

  it('writes nothing and exits 3 when another number is typed', async () => {
    const db = mkdtempSync(join(tmpdir(), 'optout-tty-'));
    dirs.push(db);
    const { code } = await importOnTerminal(db, '8');
    expect(code).toBe(3);
    expect(entries(db)).toBe(0);
  });

  it('after a broken record, asks for the count of the rows before it, writes them and exits 2', async () => {
    const db = mkdtempSync(join(tmpdir(), 'optout-tty-'));
    dirs.push(db);
    const list = join(db, 'broken.csv');
    // Three rows, then an unclosed quote on line 5.
    writeFileSync(list, 'email\na@tty.test\nb@tty.test\nc@tty.test\n"d@tty.test\ne@tty.test\n');
    const { code, output } = await importOnTerminal(join(db, 'store'), '3', list);
    expect(output).toMatch(/stopped at +line 5: .*\[OPTOUT_ERR_CSV_PARSE\]/);
    expect(output).toContain('3 addresses from the rows before the broken record will never be emailed again');
    expect(code).toBe(2);
    expect(entries(join(db, 'store'))).toBe(3);
  });
});
