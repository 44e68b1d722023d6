/** `optout inbound add|list|remove` as a user runs them: the built CLI on a real store. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { errorCodes, removeTempDirs, runCli, tempDir } from '../helpers.js';
import { sendgridKeys, testCertificate } from './signing.js';

afterAll(removeTempDirs);

it('adds endpoints, prints the URL to paste, lists them masked and removes them', async () => {
  const dir = await tempDir('optout-cli-inbound-');
  const db = join(dir, 'db');
  const keyFile = join(dir, 'mailgun.key');
  writeFileSync(keyFile, 'key-0123456789abcdef0123456789abcdef\n');
  const certFile = join(dir, 'sns.pem');
  writeFileSync(certFile, testCertificate().pem);

  const mg = await runCli(['--db', db, 'inbound', 'add', 'mailgun', '--unit', 'emea', '--signing-key', `@${keyFile}`, '--base-url', 'https://optout.example.com']);
  expect(mg.code).toBe(0);
  expect(mg.stdout).toMatch(/^https:\/\/optout\.example\.com\/v1\/inbound\/[A-Za-z0-9_-]{22}\n$/);
  const pm = await runCli(['--db', db, 'inbound', 'add', 'postmark', '--base-url', 'https://optout.example.com/', '--json']);
  const pmJson = JSON.parse(pm.stdout) as { id: string; url: string; basicAuth: string };
  expect(pmJson.url).toBe(`https://${pmJson.basicAuth}@optout.example.com/v1/inbound/${pmJson.id}`);
  const sg = await runCli(['--db', db, 'inbound', 'add', 'sendgrid', '--public-key', sendgridKeys().publicKey]);
  expect(sg.stdout).toMatch(/^POST \/v1\/inbound\/[A-Za-z0-9_-]{22}\n$/);
  expect((await runCli(['--db', db, 'inbound', 'add', 'sns', '--sns-cert', certFile])).code).toBe(0);

  const list = await runCli(['--db', db, 'inbound', 'list', '--json']);
  expect((JSON.parse(list.stdout) as unknown[]).length).toBe(4);
  expect(list.stdout).not.toContain('0123456789abcdef0123456789abcdef');
  expect(list.stdout).not.toContain(pmJson.basicAuth.split(':')[1]);

  const bad = await runCli(['--db', db, 'inbound', 'add', 'sendgrid', '--public-key', 'nonsense']);
  expect(bad.code).toBe(2);
  expect(errorCodes(bad.stderr)).toEqual(['OPTOUT_ERR_INVALID_OPTION']);

  expect((await runCli(['--db', db, 'inbound', 'remove', pmJson.id])).code).toBe(0);
  const again = await runCli(['--db', db, 'inbound', 'remove', pmJson.id]);
  expect(errorCodes(again.stderr)).toEqual(['OPTOUT_ERR_NOT_FOUND']);
  expect((JSON.parse((await runCli(['--db', db, 'inbound', 'list', '--json'])).stdout) as unknown[]).length).toBe(3);
});
