/**
 * `optout check`, `optout normalize` and `optout stats` through the built CLI, on a real store
 * filled by real imports.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, SAMPLE, errorCodes, parseJson, removeTempDirs, runCli, startCli, tempDir, type CliResult } from '../helpers.js';
import type { StoreStats } from '../../src/cli/commands/stats.js';
import type { Decision } from '../../src/check/rules.js';
import { LevelStore } from '../../src/store/level/level-store.js';

type CheckJson = Decision;

interface NormalizeLine {
  input: string;
  valid: boolean;
  address: string | null;
  key: string | null;
  reason: string | null;
}

type Stats = StoreStats;

let db: string;
let unitList: string;
const UNIT_ADDRESSES = ['unit.only@example.com', 'Jane.Doe@example.com', 'second+tag@example.org'];

const cli = (...args: string[]): Promise<CliResult> => runCli(['--db', db, ...args]);

async function checkJson(email: string, ...args: string[]): Promise<{ res: CliResult; json: CheckJson }> {
  const res = await cli('check', email, '--json', ...args);
  return { res, json: parseJson<CheckJson>(res) };
}

function ndjson(res: CliResult): NormalizeLine[] {
  expect(res.stdout.endsWith('\n'), res.stdout).toBe(true);
  return res.stdout.slice(0, -1).split('\n').map((l) => JSON.parse(l) as NormalizeLine);
}

beforeAll(async () => {
  const dir = await tempDir();
  db = join(dir, 'db');
  const first = await runCli(['--db', db, 'import', SAMPLE, '--yes', '--json']);
  expect(first.code, first.stderr).toBe(0);
  unitList = join(dir, 'unit.csv');
  await writeFile(unitList, `email\n${UNIT_ADDRESSES.join('\n')}\nbroken\n`);
  const second = await runCli(['--db', db, 'import', unitList, '--yes', '--json', '--unit', 'A', '--reason', 'complaint']);
  expect(second.code, second.stderr).toBe(0);
});

afterAll(removeTempDirs);

describe('check', () => {
  it('send types: sequences are blocked, one-to-one only with a legal basis, which is recorded', async () => {
    expect((await checkJson('jane.doe@example.com', '--type', 'sequence')).json).toMatchObject({ eligible: false, reason: 'suppressed' });
    const plain = await checkJson('jane.doe@example.com', '--type', 'one-to-one');
    expect(plain.res.code).toBe(1);
    const lawful = await checkJson('jane.doe@example.com', '--type', 'one-to-one', '--legal-basis', 'order 1234 delivery');
    expect(lawful.res.code, lawful.res.stderr).toBe(0);
    expect(lawful.json).toMatchObject({ eligible: true, reason: 'legal_basis', suppression: { scope: '*' } });
    expect(errorCodes((await cli('check', 'jane.doe@example.com', '--type', 'bulk')).stderr)).toContain('OPTOUT_ERR_INVALID_OPTION');
  });

  it('an account-wide suppression: exit 1 with address, key, eligible, reason and the scope', async () => {
    const { res, json } = await checkJson('  First.Last+Other@GoogleMail.com ');
    expect(res.code, res.stderr).toBe(1);
    expect(json).toEqual({
      address: 'first.last+other@googlemail.com',
      key: 'firstlast@gmail.com',
      eligible: false,
      reason: 'suppressed',
      suppression: { scope: '*', jobId: '1', reason: 'unsubscribed', source: 'sample-optouts.csv', addedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown as string },
    });
  });

  it('an address nobody opted out: exit 0, not_suppressed', async () => {
    const { res, json } = await checkJson('Someone.New@Example.com');
    expect(res.code, res.stderr).toBe(0);
    expect(json).toMatchObject({ address: 'someone.new@example.com', key: 'someone.new@example.com', eligible: true, reason: 'not_suppressed' });
    expect(json.suppression).toBeUndefined();
  });

  it('an invalid address is never eligible: exit 1 with the policy reason', async () => {
    for (const [input, why] of [['not-an-email', 'NO_AT_SIGN'], ['someone@localhost', 'DOMAIN_NO_DOT'], ['', 'EMPTY'],
      ['a@@example.com', 'MULTIPLE_AT_SIGNS']] as const) {
      const { res, json } = await checkJson(input);
      expect(res.code, `${input}: ${res.stderr}`).toBe(1);
      expect(json, input).toMatchObject({ address: null, key: null, eligible: false, reason: 'invalid_address', invalidReason: why });
    }
  });

  it('a unit suppression applies in its unit only; account-wide ones in every unit', async () => {
    let r = await checkJson('unit.only@example.com', '--unit', 'A');
    expect(r.res.code).toBe(1);
    expect(r.json.suppression).toMatchObject({ scope: 'A', jobId: '2' });
    r = await checkJson('unit.only@example.com', '--unit', 'B');
    expect([r.res.code, r.json.eligible, r.json.reason]).toEqual([0, true, 'not_suppressed']);
    r = await checkJson('unit.only@example.com');
    expect([r.res.code, r.json.eligible]).toEqual([0, true]);
    r = await checkJson('second@example.org', '--unit', 'A');
    expect([r.res.code, r.json.key]).toEqual([1, 'second@example.org']);
    // In both scopes: the account-wide entry is the one reported.
    r = await checkJson('jane.doe@example.com', '--unit', 'A');
    expect(r.res.code).toBe(1);
    expect(r.json.suppression).toMatchObject({ scope: '*', jobId: '1' });
    r = await checkJson('jane.doe@example.com', '--unit', 'B');
    expect(r.json.suppression?.scope).toBe('*');
  });

  it('the human output has the same exit codes', async () => {
    const yes = await cli('check', 'jane.doe@example.com');
    expect(yes.code).toBe(1);
    expect(yes.stdout).toMatch(/^not eligible: jane\.doe@example\.com/);
    const no = await cli('check', 'nobody@example.com');
    expect(no.code).toBe(0);
    expect(no.stdout).toMatch(/^eligible: nobody@example\.com/);
    const bad = await cli('check', 'not-an-email');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('NO_AT_SIGN');
  });

  it('an argument that is not UTF-8: exit 2, OPTOUT_ERR_INVALID_ENCODING, no decision', () => {
    // Node turns the byte E9 (Latin-1 é) into U+FFFD when it reads argv: only a shell passes the byte.
    const script = 'exec "$0" "$1" --db "$2" check "$(printf \'jos\\351@example.com\')" --json';
    const res = spawnSync('/bin/sh', ['-c', script, process.execPath, CLI, db], { encoding: 'utf8' });
    expect({ exit: res.status, codes: errorCodes(res.stderr), stdout: res.stdout }).toEqual({ exit: 2, codes: ['OPTOUT_ERR_INVALID_ENCODING'], stdout: '' });
  });

  it('a bad --unit: exit 2, OPTOUT_ERR_INVALID_OPTION', async () => {
    const res = await cli('check', 'a@example.com', '--unit', 'no spaces');
    expect({ exit: res.code, codes: errorCodes(res.stderr) }).toEqual({ exit: 2, codes: ['OPTOUT_ERR_INVALID_OPTION'] });
  });
});

describe('normalize', () => {
  const inputs = ['  Jane.Doe@EXAMPLE.com ', 'jane+news@x.org', 'first.last+promo@gmail.com', 'Ana Lima <ana.lima@example.net>',
    'müller@bücher.de', 'not-an-email', 'someone@localhost'];

  it('one NDJSON line per argument with input, valid, address, key, reason', async () => {
    const res = await runCli(['normalize', ...inputs]);
    expect(res.code, res.stderr).toBe(0);
    const lines = ndjson(res);
    expect(lines.map((l) => l.input)).toEqual(inputs);
    for (const l of lines) expect(Object.keys(l).sort()).toEqual(['address', 'input', 'key', 'reason', 'valid']);
    expect(lines[0]).toEqual({ input: inputs[0], valid: true, address: 'jane.doe@example.com', key: 'jane.doe@example.com', reason: null });
    expect(lines[1]).toMatchObject({ valid: true, address: 'jane+news@x.org', key: 'jane@x.org' });
    expect(lines[2]).toMatchObject({ valid: true, address: 'first.last+promo@gmail.com', key: 'firstlast@gmail.com' });
    expect(lines[3]).toMatchObject({ valid: true, address: 'ana.lima@example.net' });
    expect(lines[4]).toMatchObject({ valid: true, address: 'müller@xn--bcher-kva.de' });
    expect(lines[5]).toEqual({ input: 'not-an-email', valid: false, address: null, key: null, reason: 'NO_AT_SIGN' });
    expect(lines[6]).toMatchObject({ valid: false, reason: 'DOMAIN_NO_DOT' });
  });

  it('reads stdin, one line per line (LF or CRLF), when given no arguments', async () => {
    const args = await runCli(['normalize', ...inputs]);
    const res = await runCli(['normalize'], { input: inputs.join('\n') + '\n' });
    expect(res.code, res.stderr).toBe(0);
    expect(ndjson(res)).toEqual(ndjson(args));
    const crlf = await runCli(['normalize'], { input: 'a@example.com\r\n\r\nB@Example.com' });
    expect(crlf.code, crlf.stderr).toBe(0);
    expect(ndjson(crlf)).toEqual([
      { input: 'a@example.com', valid: true, address: 'a@example.com', key: 'a@example.com', reason: null },
      { input: '', valid: false, address: null, key: null, reason: 'EMPTY' },
      { input: 'B@Example.com', valid: true, address: 'b@example.com', key: 'b@example.com', reason: null },
    ]);
  });

  it('agrees with check and import on every cell of the sample', async () => {
    const cells = (await readFile(SAMPLE, 'utf8')).split('\n').slice(1).filter((l) => l !== '')
      .map((l) => (l.startsWith('"') ? l.slice(1, l.indexOf('"', 1)) : l.split(',')[0] ?? ''));
    const res = await runCli(['normalize'], { input: cells.join('\n') + '\n' });
    const lines = ndjson(res);
    expect(lines).toHaveLength(13);
    const valid = lines.filter((l) => l.valid);
    expect(valid).toHaveLength(9);
    expect(new Set(valid.map((l) => l.key)).size).toBe(7);
    for (const l of valid.slice(0, 3)) {
      const { json } = await checkJson(l.input);
      expect(json.key).toBe(l.key);
      expect(json.eligible).toBe(false);
    }
  });
});

describe('stats', () => {
  it('--json: entries, scopes, size on disk and the jobs with state and counts', async () => {
    const res = await cli('stats', '--json');
    expect(res.code, res.stderr).toBe(0);
    const s = parseJson<Stats>(res);
    expect(s.entries).toBe(7 + UNIT_ADDRESSES.length);
    expect(s.scopes).toEqual({ '*': 7, A: UNIT_ADDRESSES.length });
    expect(s.sizeOnDiskBytes).toBeGreaterThan(0);
    expect(s.jobs).toHaveLength(2);
    expect(s.jobs[0]).toMatchObject({
      id: '1', state: 'completed', scope: '*', reason: 'unsubscribed', source: 'sample-optouts.csv',
      rows: 13, valid: 9, invalid: 4, unique: 7, duplicates: 2, added: 7, alreadySuppressed: 0,
    });
    expect(s.jobs[1]).toMatchObject({
      id: '2', state: 'completed', scope: 'A', reason: 'complaint', source: 'unit.csv',
      rows: UNIT_ADDRESSES.length + 1, valid: UNIT_ADDRESSES.length, invalid: 1, unique: UNIT_ADDRESSES.length,
      added: UNIT_ADDRESSES.length, alreadySuppressed: 0,
    });
  });

  it('an empty store: no entries, no jobs', async () => {
    const db = join(await tempDir(), 'db');
    await (await LevelStore.open(db)).close();
    const res = await runCli(['--db', db, 'stats', '--json']);
    expect(res.code, res.stderr).toBe(0);
    expect(parseJson<Stats>(res)).toMatchObject({ entries: 0, scopes: {}, jobs: [] });
  });

  it('a folder without a store: read-only commands exit 2 and create nothing', async () => {
    const dir = await tempDir();
    const db = join(dir, 'mistyped');
    for (const args of [['stats'], ['check', 'jane.doe@example.com'], ['show', 'jane.doe@example.com'], ['export'], ['jobs'], ['audit'], ['keys', 'list'],
      ['serve', '--host', '127.0.0.1', '--port', '0']]) {
      const res = await runCli(['--db', db, ...args]);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr, args.join(' ')).toContain('OPTOUT_ERR_INVALID_OPTION');
      expect(res.stdout).not.toContain('eligible:');
    }
    expect(existsSync(db)).toBe(false);
  });

  it('serve --create makes the store in an empty folder and serves it', async () => {
    const db = join(await tempDir(), 'new');
    const server = startCli(['serve', '--create', '--host', '127.0.0.1', '--port', '0', '--log-level', 'silent', '--db', db]);
    server.child.stdin.end();
    try {
      const deadline = Date.now() + 20_000;
      while (!/listening on http:\/\/[^\s]+/.test(server.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const url = /listening on (http:\/\/[^\s]+)/.exec(server.stderr())?.[1];
      expect(url, server.stderr()).toBeDefined();
      expect((await fetch(`${url as string}/readyz`)).status).toBe(200);
      expect(existsSync(join(db, 'leveldb'))).toBe(true);
    } finally {
      server.child.kill('SIGTERM');
      await server.done;
    }
  });

  it('the human output lists the scopes and jobs', async () => {
    const res = await cli('stats');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^entries\s+10$/m);
    expect(res.stdout).toMatch(/account-wide: 7$/m);
    expect(res.stdout).toMatch(/unit A: 3$/m);
  });

  it('$OPTOUT_DB picks the store when --db is not given', async () => {
    const res = await runCli(['stats', '--json'], { env: { OPTOUT_DB: db } });
    expect(res.code, res.stderr).toBe(0);
    expect(parseJson<Stats>(res).entries).toBe(7 + UNIT_ADDRESSES.length);
  });
});
