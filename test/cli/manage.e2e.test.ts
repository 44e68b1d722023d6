import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SAMPLE, errorCodes, removeTempDirs, runCli, tempDir } from '../helpers.js';

afterAll(removeTempDirs);

describe('optout add / show / remove / audit', () => {
  it('manages one address end to end, every change in the audit trail', async () => {
    const db = join(await tempDir('optout-cli-manage-'), 'db');
    expect((await runCli(['--db', db, 'import', SAMPLE, '--yes'])).code).toBe(0);

    const add = await runCli(['--db', db, 'add', 'Someone@Example.org', '--unit', 'emea', '--reason', 'complaint', '--json']);
    expect(add.code).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ key: 'someone@example.org', scope: 'emea', added: true });
    expect((await runCli(['--db', db, 'check', 'someone@example.org', '--unit', 'emea'])).code).toBe(1);

    const show = await runCli(['--db', db, 'show', 'jane.doe@example.com', '--json']);
    expect(JSON.parse(show.stdout)).toEqual({ suppressions: [expect.objectContaining({ scope: '*', job: '1', source: 'sample-optouts.csv' })] });

    const noWhy = await runCli(['--db', db, 'remove', 'jane.doe@example.com']);
    expect(noWhy.code).toBe(2);
    const remove = await runCli(['--db', db, 'remove', 'jane.doe@example.com', '--why', 'resubscribed by phone']);
    expect(remove.code).toBe(0);
    expect((await runCli(['--db', db, 'check', 'jane.doe@example.com'])).code).toBe(0);
    const again = await runCli(['--db', db, 'remove', 'jane.doe@example.com', '--why', 'twice']);
    expect(again.code).toBe(2);
    expect(errorCodes(again.stderr)).toEqual(['OPTOUT_ERR_NOT_SUPPRESSED']);
    const bad = await runCli(['--db', db, 'add', 'nobody']);
    expect(errorCodes(bad.stderr)).toEqual(['OPTOUT_ERR_INVALID_EMAIL']);

    const audit = await runCli(['--db', db, 'audit', '--json']);
    const records = audit.stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; actor: string; key: string | null });
    expect(records.map((r) => r.action)).toEqual(['import', 'add', 'remove']);
    expect(records.every((r) => r.actor === 'cli')).toBe(true);
    const forJane = await runCli(['--db', db, 'audit', '--email', 'JANE.DOE@example.com', '--json']);
    expect(forJane.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { action: string }).action)).toEqual(['remove']);
    const future = await runCli(['--db', db, 'audit', '--since', '2999-01-01', '--json']);
    expect(future.stdout).toBe('');
    expect((await runCli(['--db', db, 'audit', '--since', 'yesterday'])).code).toBe(2);
  });
});

describe('optout keys create: an admin key bound to a unit', () => {
  it('is refused by the CLI: exit 2, OPTOUT_ERR_INVALID_OPTION; a check key with --unit is still made', async () => {
    const db = join(await tempDir('optout-cli-keys-'), 'cli-db');
    const refused = await runCli(['keys', 'create', '--scope', 'admin', '--unit', 'emea', '--json', '--db', db]);
    expect({ exit: refused.code, codes: errorCodes(refused.stderr), stdout: refused.stdout }).toEqual({ exit: 2, codes: ['OPTOUT_ERR_INVALID_OPTION'], stdout: '' });
    const made = await runCli(['keys', 'create', '--scope', 'check', '--unit', 'emea', '--json', '--db', db]);
    expect(made.code, made.stderr).toBe(0);
    const list = await runCli(['keys', 'list', '--json', '--db', db]);
    expect((JSON.parse(list.stdout) as Array<{ scope: string; unit: string }>).map((k) => [k.scope, k.unit])).toEqual([['check', 'emea']]);
  });
});
