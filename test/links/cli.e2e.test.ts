/**
 * `optout links`: the base URL set once, links printed with their two headers, key rotation,
 * and the one-click POST answered by `optout serve` on a real socket.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { errorCodes, removeTempDirs, runCli, startCli, tempDir } from '../helpers.js';

afterAll(removeTempDirs);

describe('optout links', () => {
  it('configures, makes links with their headers, rotates keys, and serve answers the one-click POST', async () => {
    const db = join(await tempDir('optout-cli-links-'), 'db');
    const none = await runCli(['--db', db, 'links', 'create', 'ann@example.org']);
    expect({ exit: none.code, codes: errorCodes(none.stderr) }).toEqual({ exit: 2, codes: ['OPTOUT_ERR_LINKS_NOT_CONFIGURED'] });
    const bad = await runCli(['--db', db, 'links', 'config', '--base-url', 'http://mail.example.com']);
    expect({ exit: bad.code, codes: errorCodes(bad.stderr) }).toEqual({ exit: 2, codes: ['OPTOUT_ERR_INVALID_OPTION'] });
    expect((await runCli(['--db', db, 'links', 'config', '--base-url', 'https://mail.example.com/'])).stdout).toBe('base URL https://mail.example.com\n');

    const text = await runCli(['--db', db, 'links', 'create', 'Ann@Example.org', '--unit', 'emea', '--campaign', 'may']);
    expect(text.code, text.stderr).toBe(0);
    const [url, blank, h1, h2] = text.stdout.trimEnd().split('\n');
    expect(url).toMatch(/^https:\/\/mail\.example\.com\/u\/[A-Za-z0-9_-]{60,}$/);
    expect(blank).toBe('');
    expect(h1).toBe(`List-Unsubscribe: <${url ?? ''}>`);
    expect(h2).toBe('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    expect(text.stdout.toLowerCase()).not.toContain('ann@');

    const json = JSON.parse((await runCli(['--db', db, 'links', 'create', 'bob@example.org', '--json'])).stdout) as { token: string; keyId: string; scope: string };
    expect(json.scope).toBe('*');
    const rotated = JSON.parse((await runCli(['--db', db, 'links', 'rotate-key', '--retire-after', '30d', '--json'])).stdout) as { key: { id: string }; retiring: Array<{ id: string; retiresAt: string }> };
    expect(rotated.retiring.map((k) => k.id)).toEqual([json.keyId]);
    expect(Date.parse(rotated.retiring[0]?.retiresAt ?? '') - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const keys = JSON.parse((await runCli(['--db', db, 'links', 'keys', '--json'])).stdout) as Array<{ id: string; current: boolean }>;
    expect(keys.map((k) => [k.id, k.current]).sort()).toEqual([[json.keyId, false], [rotated.key.id, true]].sort());
    expect((await runCli(['--db', db, 'links', 'rotate-key', '--retire-after', 'soon'])).code).toBe(2);

    const serve = startCli(['--db', db, 'serve', '--port', '0', '--log-level', 'silent']);
    let base = '';
    try {
      for (let i = 0; i < 200 && base === ''; i++) {
        base = /listening on (http:\/\/\S+)/.exec(serve.stderr())?.[1] ?? '';
        if (base === '') await new Promise((r) => setTimeout(r, 50));
      }
      expect(base, serve.stderr()).not.toBe('');
      const res = await request(`${base}/u/${json.token}`, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click',
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['set-cookie']).toBeUndefined();
      await res.body.text();
    } finally {
      serve.child.kill('SIGTERM');
      await serve.done;
    }
    const check = await runCli(['--db', db, 'check', 'bob@example.org', '--json']);
    expect(JSON.parse(check.stdout)).toMatchObject({ eligible: false, suppression: { reason: 'unsubscribed', source: 'one-click' } });
    const audit = (await runCli(['--db', db, 'audit', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; actor: string });
    expect(audit.map((r) => `${r.action} ${r.actor}`)).toEqual(['settings.set cli', 'link-key.create cli', 'link-key.create cli', 'link-key.retire cli', 'add one-click']);
  });
});
