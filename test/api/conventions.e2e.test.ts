/**
 * HTTP conventions a client author relies on: `100 Continue` only for a request that may go on,
 * a 413 the client can read, 405 with `Allow`, `{ code, message }` for every error (the
 * framework's and Node's included), an empty upload refused at once, a confirmation that
 * answers the new state, and HEAD that records nothing. Real server on 127.0.0.1.
 */
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, apiCaller, closeServerAndStore, listenOnLoopback, tempDir } from '../helpers.js';
import { firstStatus, lastJsonBody, rawExchange, writeChunked } from './raw-http.js';

// Imports run worker threads from the build, so the built server is under test.
const lib = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');
const { openStore, createKey, addSuppression, readAudit } = lib;
const { createServer } = await import(join(ROOT, 'dist/src/server.js')) as typeof import('../../src/server.js');

let store: Awaited<ReturnType<typeof openStore>>;
let app: ReturnType<typeof createServer>;
let base: string;
let port: number;
const keys = { admin: '', check: '' };

beforeAll(async () => {
  const dir = await tempDir('optout-api-conventions-');
  store = await openStore(join(dir, 'db'));
  keys.admin = (await createKey(store.store, { scope: 'admin' })).key;
  keys.check = (await createKey(store.store, { scope: 'check' })).key;
  await addSuppression(store.store, { email: 'kept@example.com', actor: 'cli' });
  app = createServer({ store });
  base = await listenOnLoopback(app);
  port = Number(new URL(base).port);
});

afterAll(async () => closeServerAndStore(app, store));

const call = apiCaller(() => base);
/** 10,000 long addresses, the largest batch: about 2.6 MB. */
const BATCH_BYTES = 2_600_000;

function head(method: string, path: string, key: string | undefined, extra: string): string {
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${key === undefined ? '' : `Authorization: Bearer ${key}\r\n`}${extra}\r\n`;
}

describe('Expect: 100-continue', () => {
  it('answers a wrong key with 401 before any 100 Continue, without reading the body', async () => {
    const x = rawExchange(port, head('POST', '/v1/eligibility', 'wrong', `Content-Type: application/json\r\nContent-Length: ${BATCH_BYTES}\r\nExpect: 100-continue\r\n`));
    const text = await x.closed;
    expect(firstStatus(text), text).toBe(401);
    expect(text).not.toContain('100 Continue');
    expect(lastJsonBody(text)['code']).toBe('OPTOUT_ERR_UNAUTHORIZED');
  });

  it('answers a key without the scope with 403 before any 100 Continue', async () => {
    const x = rawExchange(port, head('POST', '/v1/imports', keys.check, 'Content-Type: text/csv\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n'));
    const text = await x.closed;
    expect(firstStatus(text), text).toBe(403);
    expect(text).not.toContain('100 Continue');
  });

  it('sends 100 Continue to a valid key, then answers the body', async () => {
    const body = JSON.stringify({ emails: ['kept@example.com'] });
    const x = rawExchange(port, head('POST', '/v1/eligibility', keys.check, `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n`));
    await x.waitFor('100 Continue');
    x.socket.write(body);
    const text = await x.closed;
    expect(firstStatus(text)).toBe(100);
    expect(text).toContain('HTTP/1.1 200 OK');
    expect(lastJsonBody(text)['results']).toEqual([expect.objectContaining({ eligible: false })]);
  });
});

describe('a body over the limit', () => {
  it.each(['chunked', 'content-length'])('is answered 413 and the client reads it while still sending (%s)', async (framing) => {
    const total = 20 * 1024 * 1024;
    const x = rawExchange(port, head('POST', '/v1/eligibility', keys.check,
      `Content-Type: application/json\r\n${framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`}\r\n`));
    if (framing === 'chunked') void writeChunked(x.socket, total);
    else void (async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      for (let sent = 0; sent < total && !x.socket.destroyed; sent += chunk.length) {
        if (!x.socket.write(chunk)) await new Promise((r) => { x.socket.once('drain', r); x.socket.once('close', r); });
      }
    })();
    const text = await x.closed;
    expect(firstStatus(text), text.slice(0, 200)).toBe(413);
    expect(lastJsonBody(text)['code']).toBe('OPTOUT_ERR_PAYLOAD_TOO_LARGE');
  });
});

describe('methods', () => {
  it('answers a known path with another method 405 with Allow', async () => {
    for (const [method, url] of [['PUT', '/v1/eligibility'], ['DELETE', '/v1/export'], ['PATCH', '/v1/imports/7']] as const) {
      const res = await app.inject({ method, url, headers: { authorization: `Bearer ${keys.admin}` } });
      expect(res.statusCode, `${method} ${url}`).toBe(405);
      expect(res.json()).toMatchObject({ code: 'OPTOUT_ERR_METHOD_NOT_ALLOWED', message: expect.any(String) });
      expect(res.headers['allow']).toBeDefined();
    }
    const res = await app.inject({ method: 'DELETE', url: '/v1/eligibility' });
    expect(res.headers['allow']).toBe('GET, OPTIONS, POST');
    expect((await app.inject({ method: 'PUT', url: '/v1/no-such-route' })).statusCode).toBe(404);
  });

  it('answers OPTIONS on a known path 204 with Allow', async () => {
    const res = await app.inject({ method: 'OPTIONS', url: '/v1/suppressions/a%40example.com' });
    expect(res.statusCode).toBe(204);
    expect(res.headers['allow']).toBe('DELETE, GET, HEAD, OPTIONS, PUT');
  });

  it('HEAD on the eligibility route is refused and records no legal-basis decision', async () => {
    const q = new URLSearchParams({ email: 'kept@example.com', type: 'one-to-one', legalBasis: 'contract' });
    const res = await app.inject({ method: 'HEAD', url: `/v1/eligibility?${q.toString()}`, headers: { authorization: `Bearer ${keys.check}` } });
    expect(res.statusCode).toBe(405);
    expect(res.headers['allow']).not.toContain('HEAD');
    const records = [];
    for await (const r of readAudit(store.store, { email: 'kept@example.com' })) records.push(r);
    expect(records.filter((r) => r.action === 'legal_basis')).toEqual([]);
  });
});

describe('every error is { code, message }', () => {
  it('answers headers over 16 KiB with 431 and a JSON body', async () => {
    const x = rawExchange(port, head('GET', '/healthz', undefined, `X-Big: ${'a'.repeat(20_000)}\r\n`));
    const text = await x.closed;
    expect(firstStatus(text), text.slice(0, 200)).toBe(431);
    expect(lastJsonBody(text)).toEqual({ code: 'OPTOUT_ERR_HEADERS_TOO_LARGE', message: expect.any(String) });
  });

  it('answers a request that is not HTTP with 400 and a JSON body', async () => {
    const x = rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n');
    const text = await x.closed;
    expect(firstStatus(text)).toBe(400);
    expect(lastJsonBody(text)).toEqual({ code: 'OPTOUT_ERR_BAD_REQUEST', message: expect.any(String) });
  });

  it('answers a path with a bad escape with a JSON body', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/suppressions/%E9', headers: { authorization: `Bearer ${keys.check}` } });
    expect(res.statusCode).toBe(400);
    expect(Object.keys(res.json()).sort()).toEqual(['code', 'message']);
  });

  it('answers an upload of another type 415, naming the accepted types', async () => {
    const res = await app.inject({
      method: 'POST', url: '/v1/imports', payload: '<list/>',
      headers: { authorization: `Bearer ${keys.admin}`, 'content-type': 'application/xml' },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()['code']).toBe('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE');
    expect(res.json()['message']).toContain('text/csv');
    expect(res.json()['message']).toContain('application/json');
  });

  it('accepts a gzip-encoded JSON body', async () => {
    const res = await app.inject({
      method: 'POST', url: '/v1/eligibility', payload: gzipSync(JSON.stringify({ emails: ['kept@example.com', 'other@example.com'] })),
      headers: { authorization: `Bearer ${keys.check}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect((res.json()['results'] as Array<{ eligible: boolean }>).map((d) => d.eligible)).toEqual([false, true]);
  });

  it('accepts Content-Encoding identity', async () => {
    const res = await app.inject({
      method: 'POST', url: '/v1/eligibility', payload: { emails: ['kept@example.com'] },
      headers: { authorization: `Bearer ${keys.check}`, 'content-encoding': 'identity' },
    });
    expect(res.statusCode, res.body).toBe(200);
  });

  it('answers another Content-Encoding 415', async () => {
    const res = await app.inject({
      method: 'POST', url: '/v1/eligibility', payload: 'xx',
      headers: { authorization: `Bearer ${keys.check}`, 'content-type': 'application/json', 'content-encoding': 'compress' },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()['code']).toBe('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('imports', () => {
  it('answers an empty upload 400 at once and makes no job', async () => {
    const before = (await call('GET', '/v1/imports', keys.admin)).json['imports'] as unknown[];
    const r = await call('POST', '/v1/imports', keys.admin, '', { 'content-type': 'text/csv' });
    expect(r.status, r.text).toBe(400);
    expect(r.code).toBe('OPTOUT_ERR_SOURCE');
    expect((await call('GET', '/v1/imports', keys.admin)).json['imports']).toHaveLength(before.length);
  });

  it('answers a confirmation with the job in its new state', async () => {
    const up = await call('POST', '/v1/imports', keys.admin, 'email\nnew1@example.com\nnew2@example.com\n', { 'content-type': 'text/csv' });
    expect(up.status, up.text).toBe(202);
    const id = up.json['id'] as string;
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 400 && job['state'] !== 'awaiting_confirmation'; i++) {
      await new Promise((r) => setTimeout(r, 25));
      job = (await call('GET', `/v1/imports/${id}`, keys.admin)).json;
    }
    expect(job['state']).toBe('awaiting_confirmation');
    const confirmed = await call('POST', `/v1/imports/${id}/confirm`, keys.admin, { count: 2 });
    expect(confirmed.status, confirmed.text).toBe(200);
    expect(confirmed.json['state']).not.toBe('awaiting_confirmation');
    expect(['importing', 'completed']).toContain(confirmed.json['state']);
  });
});
