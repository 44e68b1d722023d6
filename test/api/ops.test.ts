/**
 * Operations routes: liveness, readiness before and after the store is ready, Prometheus
 * metrics, and failing closed when the store cannot answer.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import type { Decision } from '../../src/check/rules.js';
import { removeTempDirs, tempDir, listenOnLoopback, codeOf } from '../helpers.js';
import { runImport } from '../inline.js';

let dbDir: string;
let adminKey: string;
let checkKey: string;
const servers: OptoutServer[] = [];
const stores: OptoutStore[] = [];

beforeAll(async () => {
  const dir = await tempDir();
  dbDir = join(dir, 'db');
  const csv = join(dir, 'list.csv');
  await writeFile(csv, 'Email\nlisted@example.com\nother@example.com\nthird@example.org\n');
  expect((await runImport({ source: { kind: 'file', path: csv }, db: dbDir, confirm: { mode: 'yes' } })).added).toBe(3);
  const store = await openStore(dbDir);
  adminKey = (await createKey(store.store, { scope: 'admin' })).key;
  checkKey = (await createKey(store.store, { scope: 'check' })).key;
  await store.close();
});

afterEach(async () => {
  for (const app of servers.splice(0)) await app.close();
  for (const s of stores.splice(0)) await s.close();
});

afterAll(async () => {
  await removeTempDirs();
});

async function start(store: OptoutStore | Promise<OptoutStore>): Promise<{ app: OptoutServer; base: string }> {
  const app = createServer({ store });
  servers.push(app);
  return { app, base: await listenOnLoopback(app) };
}

async function call(url: string, key?: string): Promise<{ status: number; text: string; code: unknown; type: unknown }> {
  const res = await request(url, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  const text = await res.body.text();
  const code = codeOf(text);
  return { status: res.statusCode, text, code, type: res.headers['content-type'] };
}

async function until(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('healthz and readyz', () => {
  it('answers 503 on readyz and the API until the store is ready, then 200', async () => {
    let bind!: (s: OptoutStore) => void;
    const pending = new Promise<OptoutStore>((resolve) => { bind = resolve; });
    const { app, base } = await start(pending);
    expect((await call(`${base}/healthz`)).status).toBe(200);
    const before = await call(`${base}/readyz`);
    expect(before.status).toBe(503);
    expect(before.code).toBe('OPTOUT_ERR_NOT_READY');
    expect(app.optoutReady).toBe(false);
    const api = await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey);
    expect(api.status).toBe(503);
    expect(api.code).toBe('OPTOUT_ERR_NOT_READY');

    const store = await openStore(dbDir);
    stores.push(store);
    bind(store);
    await until(async () => (await call(`${base}/readyz`)).status === 200);
    expect(app.optoutReady).toBe(true);
    expect((await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey)).status).toBe(200);
  });

  it('stays 503 when the store fails to open, and the process stays up', async () => {
    const failing = Promise.reject(new Error('cannot open'));
    const { base } = await start(failing);
    await new Promise((r) => setTimeout(r, 50));
    expect((await call(`${base}/readyz`)).status).toBe(503);
    expect((await call(`${base}/healthz`)).status).toBe(200);
  });

  it('answers 503 once the store is closed under it', async () => {
    const store = await openStore(dbDir);
    const { base } = await start(store);
    expect((await call(`${base}/readyz`)).status).toBe(200);
    await store.close();
    expect((await call(`${base}/readyz`)).status).toBe(503);
    const api = await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey);
    expect(api.status).toBe(503);
    expect(api.code).toBe('OPTOUT_ERR_NOT_READY');
  });
});

describe('fail closed', () => {
  it('answers 503 OPTOUT_ERR_STORE, with no decision, when the store cannot answer', async () => {
    const real = await openStore(dbDir);
    stores.push(real);
    const unavailable = (email: string): Decision => ({ address: email, key: email, eligible: false, reason: 'unavailable' });
    const broken: OptoutStore = {
      ...real,
      check: async (req) => unavailable(req.email),
      checkEmails: async (emails) => emails.map((e, i) => (i === 1 ? unavailable(e) : { address: e, key: e, eligible: true, reason: 'not_suppressed' })),
      close: () => real.close(),
    };
    const { base } = await start(broken);
    const single = await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey);
    expect(single.status).toBe(503);
    expect(single.code).toBe('OPTOUT_ERR_STORE');
    expect(single.text).not.toContain('eligible');
    const res = await request(`${base}/v1/eligibility`, {
      method: 'POST', headers: { authorization: `Bearer ${checkKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ emails: ['a@example.com', 'b@example.com', 'c@example.com'] }),
    });
    expect(res.statusCode).toBe(503);
    const body = (await res.body.json()) as Record<string, unknown>;
    expect(body['code']).toBe('OPTOUT_ERR_STORE');
    expect(body['results']).toBeUndefined();
  });

  it('answers 503 OPTOUT_ERR_STORE when the store throws', async () => {
    const real = await openStore(dbDir);
    stores.push(real);
    const { OptoutError } = await import('../../src/errors.js');
    const throwing: OptoutStore = {
      ...real,
      store: real.store,
      check: async () => { throw new OptoutError('OPTOUT_ERR_STORE', 'disk on fire at /secret/path'); },
    };
    const { base } = await start(throwing);
    const a = await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey);
    expect(a.status).toBe(503);
    expect(a.code).toBe('OPTOUT_ERR_STORE');
    expect(a.text).not.toContain('/secret/path');
  });
});

describe('metrics', () => {
  it('exposes request counts, latency, checks by reason and store entries', async () => {
    const store = await openStore(dbDir);
    stores.push(store);
    const { base } = await start(store);
    await call(`${base}/v1/eligibility?email=listed@example.com`, checkKey);
    await call(`${base}/v1/eligibility?email=fresh@example.com`, checkKey);
    await call(`${base}/v1/eligibility?email=nope`, checkKey);
    await call(`${base}/v1/eligibility?email=listed@example.com`);
    const batch = await fetch(`${base}/v1/eligibility`, {
      method: 'POST', headers: { authorization: `Bearer ${checkKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ emails: ['listed@example.com', 'fresh@example.com', 'new@example.com', 'nope'], compact: true }),
    });
    expect(batch.status).toBe(200);
    const m = await call(`${base}/metrics`, adminKey);
    expect(m.status).toBe(200);
    expect(String(m.type)).toMatch(/^text\/plain/);
    expect(m.text).toContain('optout_http_requests_total{route="/v1/eligibility",method="GET",status="200"} 3');
    expect(m.text).toContain('optout_http_requests_total{route="/v1/eligibility",method="GET",status="401"} 1');
    expect(m.text).toMatch(/optout_http_request_duration_seconds_bucket\{le="[0-9.]+",route="\/v1\/eligibility"\} \d+/);
    expect(m.text).toContain('optout_http_request_duration_seconds_count{route="/v1/eligibility"} 5');
    expect(m.text).toContain('optout_http_requests_total{route="/v1/eligibility",method="POST",status="200"} 1');
    expect(m.text).toContain('optout_checks_total{reason="suppressed"} 2');
    expect(m.text).toContain('optout_checks_total{reason="not_suppressed"} 3');
    expect(m.text).toContain('optout_checks_total{reason="invalid_address"} 2');
    expect(m.text).toContain('optout_store_entries 3');
    // An embedded server follows no feed: no replica gauge that would read as a fresh replica.
    expect(m.text).not.toContain('optout_replica_');
  });
});
