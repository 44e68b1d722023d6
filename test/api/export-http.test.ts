/**
 * `GET /v1/export` as HTTP: conditional requests (ETag from the store's generation and the
 * query, Last-Modified), gzip for clients that accept it, every parameter checked before the
 * status, and a failure after the first byte (a read error, the store closing) that a client
 * can tell from a complete export. The audit trail, which is not streamed, answers a failure
 * with an error status.
 */
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { OptoutError } from '../../src/errors.js';
import { addSuppression } from '../../src/manage/suppressions.js';
import { request } from 'undici';
import { closeServerAndStore, emailRange, listenOnLoopback, tempDir, writeEmails } from '../helpers.js';
import { runImport } from '../inline.js';
import { firstStatus, rawExchange } from './raw-http.js';

let store: OptoutStore;
let app: OptoutServer;
let port: number;
let auth: Record<string, string>;

beforeAll(async () => {
  const dir = await tempDir('optout-api-export-');
  store = await openStore(join(dir, 'db'));
  auth = { authorization: `Bearer ${(await createKey(store.store, { scope: 'check' })).key}` };
  for (let i = 0; i < 300; i++) await addSuppression(store.store, { email: `person${i}@example.com`, unit: i % 2 === 0 ? 'emea' : undefined, actor: 'cli' });
  app = createServer({ store });
  port = Number(new URL(await listenOnLoopback(app)).port);
});

afterAll(async () => closeServerAndStore(app, store));

const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers: { ...auth, ...headers } });

describe('conditional export', () => {
  it('sends ETag and Last-Modified, and 304 to a client whose copy is current', async () => {
    const first = await get('/v1/export?format=ndjson');
    expect(first.statusCode).toBe(200);
    const etag = first.headers['etag'] as string;
    const lastModified = first.headers['last-modified'] as string;
    expect(etag).toMatch(/^W\/".+"$/);
    expect(Date.parse(lastModified)).not.toBeNaN();

    const same = await get('/v1/export?format=ndjson', { 'if-none-match': etag });
    expect(same.statusCode).toBe(304);
    expect(same.body).toBe('');
    expect((await get('/v1/export?format=ndjson', { 'if-modified-since': lastModified })).statusCode).toBe(304);
    // Another query is another representation.
    expect((await get('/v1/export?format=csv', { 'if-none-match': etag })).statusCode).toBe(200);

    await addSuppression(store.store, { email: 'later@example.com', actor: 'cli' });
    const changed = await get('/v1/export?format=ndjson', { 'if-none-match': etag });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers['etag']).not.toBe(etag);
    expect((await get('/v1/export?format=ndjson', { 'if-modified-since': lastModified })).statusCode).toBe(200);
  });
});

describe('compression', () => {
  it('gzips the export and a large batch answer for a client that accepts it', async () => {
    const plain = await get('/v1/export');
    const zipped = await get('/v1/export', { 'accept-encoding': 'gzip' });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(zipped.rawPayload).toString()).toBe(plain.body);

    const emails = Array.from({ length: 500 }, (_, i) => `person${i}@example.com`);
    const batch = await app.inject({ method: 'POST', url: '/v1/eligibility', payload: { emails }, headers: { ...auth, 'accept-encoding': 'gzip' } });
    expect(batch.headers['content-encoding']).toBe('gzip');
    expect((JSON.parse(gunzipSync(batch.rawPayload).toString()) as { results: unknown[] }).results).toHaveLength(500);
  });
});

describe('parameters are checked before the status', () => {
  const bad: Array<[string, string]> = [
    ['unit', 'not a unit!'], ['unit', 'x'.repeat(65)], ['reason', 'spam'], ['reason', ''], ['spreadsheetSafe', 'yes'], ['units', 'emea'],
  ];
  it.each(['csv', 'ndjson'].flatMap((format) => bad.map(([name, value]) => [format, name, value])))(
    'answers %s with %s=%j 400 with a JSON body', async (format, name, value) => {
      const res = await get(`/v1/export?format=${format}&${name}=${encodeURIComponent(value)}`);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
    });

  it.each(['xml', 'CSV', '', 'ndjson,csv'])('answers format=%j 400 with a JSON body', async (format) => {
    const res = await get(`/v1/export?format=${encodeURIComponent(format)}&unit=emea`);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()['code']).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('a failure after the first byte', () => {
  it.each([['csv', ''], ['ndjson', ''], ['csv', 'gzip']])('ends the chunked body without its terminating chunk (%s %s)', async (format, encoding) => {
    const ledger = store.store;
    const scan = ledger.scanEntries.bind(ledger);
    ledger.scanEntries = async function* (...args: Parameters<typeof scan>) {
      for await (const entries of scan(...args)) {
        yield entries;
        throw new Error('disk gone');
      }
    } as typeof ledger.scanEntries;
    try {
      const x = rawExchange(port, `GET /v1/export?format=${format} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth['authorization'] ?? ''}\r\n` +
        `${encoding === '' ? '' : `Accept-Encoding: ${encoding}\r\n`}\r\n`);
      const text = await x.closed;
      expect(firstStatus(text)).toBe(200);
      expect(text).toMatch(/transfer-encoding: chunked/i);
      expect(text.length).toBeGreaterThan(encoding === '' ? 200 : 100);
      expect(text.endsWith('\r\n0\r\n\r\n')).toBe(false);
    } finally {
      ledger.scanEntries = scan;
    }
  });
});

describe('the store closing in the middle of an export', () => {
  it.each(['csv', 'ndjson'])('cuts the %s body so that an HTTP client fails to read it', async (format) => {
    const dir = await tempDir('optout-api-export-close-');
    const closing = await openStore(join(dir, 'db'));
    const server = createServer({ store: closing });
    try {
      // More entries than one scan batch (1,000), so that the scan is still open once the answer has begun.
      await runImport({ source: { kind: 'file', path: writeEmails(dir, 'list.csv', emailRange(0, 2500)) }, store: closing.store, confirm: { mode: 'yes' } });
      const key = (await createKey(closing.store, { scope: 'check' })).key;
      const ledger = closing.store;
      const scan = ledger.scanEntries.bind(ledger);
      let answered = (): void => undefined;
      const headersRead = new Promise<void>((resolve) => {
        answered = resolve;
      });
      ledger.scanEntries = async function* (...args: Parameters<typeof scan>) {
        let batches = 0;
        for await (const entries of scan(...args)) {
          yield entries;
          // The client has the status: the store closes under the scan, which fails on its next read.
          if (++batches === 1) {
            await headersRead;
            await ledger.close();
          }
        }
      } as typeof ledger.scanEntries;
      const base = await listenOnLoopback(server);
      const res = await request(`${base}/v1/export?format=${format}`, { headers: { authorization: `Bearer ${key}` } });
      answered();
      expect(res.statusCode).toBe(200);
      expect(res.headers['transfer-encoding']).toBe('chunked');
      await expect(res.body.text()).rejects.toThrow();
    } finally {
      await server.close();
      await closing.close();
    }
  });
});

describe('the audit trail', () => {
  it('is read whole before the status: a store failure in the middle is a 503, never a short 200', async () => {
    const ledger = store.store;
    const records = ledger.auditRecords.bind(ledger);
    ledger.auditRecords = async function* (...args: Parameters<typeof records>) {
      for await (const r of records(...args)) {
        yield r;
        throw new OptoutError('OPTOUT_ERR_STORE', 'disk gone');
      }
    } as typeof ledger.auditRecords;
    try {
      const admin = (await createKey(ledger, { scope: 'admin' })).key;
      const res = await app.inject({ method: 'GET', url: '/v1/audit', headers: { authorization: `Bearer ${admin}` } });
      expect(res.statusCode, res.body).toBe(503);
      expect(res.json()['code']).toBe('OPTOUT_ERR_STORE');
    } finally {
      ledger.auditRecords = records;
    }
  });
});
