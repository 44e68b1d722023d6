/**
 * `GET` and `POST /u/<token>` through `app.inject()` on a real store: the page (masked address,
 * accessible markup, security headers) changes nothing; the RFC 8058 POST in both form
 * encodings suppresses, idempotently, with no redirect, cookie or API key; the page's own form
 * gets the "done" page and its undo; bad tokens get one 404 page; a client over its rate a 429.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { openStore, readAudit, type OptoutStore } from '../../src/index.js';
import { rotateLinkKey, setLinkBaseUrl } from '../../src/links/keys.js';
import { unsubscribeLink } from '../../src/links/links.js';
import { closeServerAndStore, tempDir } from '../helpers.js';

let store: OptoutStore;
let app: OptoutServer;

beforeAll(async () => {
  store = await openStore(join(await tempDir('optout-links-routes-'), 'db'));
  await setLinkBaseUrl(store.store, 'https://mail.example.com');
  // Every request here comes from one address: the rate limit has its own test.
  app = createServer({ store, syncs: false, links: { rateLimit: 10_000 } });
  await app.ready();
});

afterAll(async () => closeServerAndStore(app, store));

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const ONE_CLICK = 'List-Unsubscribe=One-Click';

async function tokenFor(email: string, unit?: string): Promise<string> {
  return (await unsubscribeLink(store.store, email, { unit, campaign: 'routes' })).token;
}

const get = (token: string, ip = '127.0.0.1'): Promise<LightMyRequestResponse> => app.inject({ method: 'GET', url: `/u/${token}`, remoteAddress: ip });
const post = (token: string, payload: string | Buffer, headers: Record<string, string> = FORM): Promise<LightMyRequestResponse> =>
  app.inject({ method: 'POST', url: `/u/${token}`, headers, payload });

const eligible = async (email: string, unit?: string): Promise<boolean> => (await store.check({ email, unit })).eligible;

async function auditCount(email: string): Promise<number> {
  let n = 0;
  for await (const _ of readAudit(store.store, { email })) n++;
  return n;
}

function expectPageHeaders(res: LightMyRequestResponse): void {
  const csp = String(res.headers['content-security-policy']);
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(res.headers['x-frame-options']).toBe('DENY');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['set-cookie']).toBeUndefined();
  expect(res.headers['location']).toBeUndefined();
}

describe('GET /u/<token>', () => {
  it('shows the masked address, the scope and a labelled button, and changes nothing', async () => {
    const token = await tokenFor('maria.lopez@example.org', 'emea');
    const res = await get(token);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expectPageHeaders(res);
    const html = res.body;
    expect(html).toMatch(/<html lang="en">/);
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(html).toContain('m\u2022\u2022\u2022@example.org');
    expect(html).not.toContain('maria');
    expect(html).toContain('emea');
    expect(html).toMatch(/<form method="post" action="">[^]*name="List-Unsubscribe" value="One-Click"[^]*<button type="submit"[^>]*>Unsubscribe<\/button>/);
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\//i);
    // The CSP's style hash is the hash of the page's one stylesheet.
    const css = /<style>([^<]*)<\/style>/.exec(html)?.[1] ?? '';
    expect(String(res.headers['content-security-policy'])).toContain(`'sha256-${createHash('sha256').update(css).digest('base64')}'`);
    for (let i = 0; i < 3; i++) expect((await get(token)).statusCode).toBe(200);
    const head = await app.inject({ method: 'HEAD', url: `/u/${token}` });
    expect(head.statusCode).toBe(200);
    expect(await eligible('maria.lopez@example.org', 'emea')).toBe(true);
    expect(await auditCount('maria.lopez@example.org')).toBe(0);
  });

  it('answers one 404 page for a changed, unknown-key, malformed or retired token', async () => {
    const token = await tokenFor('pat@example.org');
    const i = Math.floor(token.length / 2);
    const changed = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
    const unknownKey = token.slice(0, 1) + (token[1] === 'A' ? 'B' : 'A') + token.slice(2);
    const answers = await Promise.all([changed, unknownKey, 'not-a-token', 'x'.repeat(3000)].map((t) => get(t)));
    for (const res of answers) {
      expect(res.statusCode).toBe(404);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expectPageHeaders(res);
      expect(res.body).toBe(answers[0]?.body);
    }
    expect(answers[0]?.body).toContain('not valid');
    expect((await post(changed, ONE_CLICK)).statusCode).toBe(404);
  });
});

describe('POST /u/<token> (RFC 8058)', () => {
  it('suppresses on List-Unsubscribe=One-Click: 200, no redirect, no cookie, no key; a repeat adds nothing', async () => {
    const token = await tokenFor('sam@example.org', 'emea');
    const res = await post(token, ONE_CLICK);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expectPageHeaders(res);
    expect(res.body).not.toContain('undo');
    expect(await eligible('sam@example.org', 'emea')).toBe(false);
    expect(await eligible('sam@example.org')).toBe(true);
    expect((await store.check({ email: 'sam@example.org', unit: 'emea' })).suppression).toMatchObject({ reason: 'unsubscribed', source: 'one-click' });
    expect(await auditCount('sam@example.org')).toBe(1);
    expect((await post(token, ONE_CLICK)).statusCode).toBe(200);
    expect(await auditCount('sam@example.org')).toBe(1);
  });

  it('takes the body as multipart/form-data too', async () => {
    const token = await tokenFor('multi@example.org');
    const form = new FormData();
    form.set('List-Unsubscribe', 'One-Click');
    const req = new Request('http://localhost/', { method: 'POST', body: form });
    const body = Buffer.from(await req.arrayBuffer());
    const res = await post(token, body, { 'content-type': req.headers.get('content-type') ?? '' });
    expect(res.statusCode).toBe(200);
    expect(await eligible('multi@example.org')).toBe(false);
  });

  it('refuses a POST without the one-click body, or not a form, and changes nothing', async () => {
    const token = await tokenFor('nobody@example.org');
    for (const res of [
      await post(token, 'List-Unsubscribe=Yes'),
      await post(token, ''),
      await app.inject({ method: 'POST', url: `/u/${token}` }),
    ]) {
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
    }
    expect((await post(token, JSON.stringify({ 'List-Unsubscribe': 'One-Click' }), { 'content-type': 'application/json' })).statusCode).toBe(415);
    expect(await eligible('nobody@example.org')).toBe(true);
    expect(await auditCount('nobody@example.org')).toBe(0);
  });

  it('answers the page\'s form with the done page and an undo that works once, for that link only', async () => {
    const token = await tokenFor('page@example.org');
    const done = await post(token, `${ONE_CLICK}&via=page`);
    expect(done.statusCode).toBe(200);
    expect(done.headers['content-type']).toMatch(/^text\/html/);
    expect(done.body).toContain('You are unsubscribed');
    expect(await eligible('page@example.org')).toBe(false);
    const ticket = /name="undo" value="([A-Za-z0-9_-]+)"/.exec(done.body)?.[1];
    expect(ticket).toBeDefined();

    const other = await tokenFor('page@example.org');
    expect((await post(other, `undo=${ticket}`)).statusCode).toBe(409);
    expect(await eligible('page@example.org')).toBe(false);

    const undone = await post(token, `undo=${ticket}`);
    expect(undone.statusCode).toBe(200);
    expect(undone.body).toContain('Unsubscribe undone');
    expect(undone.body).toContain('value="One-Click"');
    expect(await eligible('page@example.org')).toBe(true);
    // A repeat of the undo (a reload) changes nothing more.
    expect((await post(token, `undo=${ticket}`)).statusCode).toBe(200);
  });

  it('keeps answering tokens of a rotated key', async () => {
    const token = await tokenFor('rotated@example.org');
    await rotateLinkKey(store.store, { retireAfterDays: 1 });
    expect((await post(token, ONE_CLICK)).statusCode).toBe(200);
    expect(await eligible('rotated@example.org')).toBe(false);
  });
});

describe('failures', () => {
  it('answers a page, not JSON, while the store is not ready and for a body over the limit', async () => {
    const waiting = createServer({ store: new Promise<OptoutStore>(() => undefined), syncs: false });
    try {
      const res = await waiting.inject({ method: 'POST', url: `/u/${await tokenFor('wait@example.org')}`, headers: FORM, payload: ONE_CLICK });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expectPageHeaders(res);
      expect(res.body).toContain('Nothing was changed');
    } finally {
      await waiting.close();
    }
    const big = await post(await tokenFor('big@example.org'), `${ONE_CLICK}&pad=${'x'.repeat(20_000)}`);
    expect(big.statusCode).toBe(413);
    expect(big.headers['content-type']).toMatch(/^text\/html/);
    expect(await eligible('big@example.org')).toBe(true);
  });
});

describe('rate limit per client address', () => {
  it('answers 429 with Retry-After past the rate, per address', async () => {
    const limited = createServer({ store, syncs: false, links: { rateLimit: 2 } });
    try {
      const token = await tokenFor('rate@example.org');
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await limited.inject({ method: 'GET', url: `/u/${token}`, remoteAddress: '10.1.1.1' })).statusCode);
      expect(codes.slice(0, 2)).toEqual([200, 200]);
      expect(codes.slice(2)).toContain(429);
      const res = await limited.inject({ method: 'POST', url: `/u/${token}`, remoteAddress: '10.1.1.1', headers: FORM, payload: ONE_CLICK });
      expect(res.statusCode).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(await eligible('rate@example.org')).toBe(true);
      expect((await limited.inject({ method: 'GET', url: `/u/${token}`, remoteAddress: '10.1.1.2' })).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
