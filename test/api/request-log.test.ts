/**
 * The request log: one JSON line per request with method, route, status, time and key id, and
 * never the address a check asks about, the query, a body or the key.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { closeServerAndStore, tempDir } from '../helpers.js';
import { lineBlocks, type BlockSink } from '../../src/api/request-log.js';

let store: OptoutStore;
let app: OptoutServer;
let silent: OptoutServer;
let key: string;
let keyId: string;
const lines: string[] = [];
const silentLines: string[] = [];

beforeAll(async () => {
  const dir = await tempDir('optout-api-log-');
  store = await openStore(join(dir, 'db'));
  const created = await createKey(store.store, { scope: 'check' });
  key = created.key;
  keyId = created.record.id;
  app = createServer({ store, logger: { level: 'info', stream: { write: (l: string) => lines.push(l) } } });
  silent = createServer({ store, logger: { level: 'silent', stream: { write: (l: string) => silentLines.push(l) } } });
});

afterAll(async () => {
  await silent?.close();
  await closeServerAndStore(app, store);
});

const ADDRESS = 'secret.person@example.com';

describe('request log', () => {
  it('logs a check with method, route, status, time and key id, and no address or key', async () => {
    lines.length = 0;
    const url = `/v1/eligibility?email=${encodeURIComponent(ADDRESS)}`;
    expect((await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(200);
    await app.inject({ method: 'POST', url: '/v1/eligibility', payload: { emails: [ADDRESS] }, headers: { authorization: `Bearer ${key}` } });
    await app.inject({ method: 'GET', url: `/v1/eligibility?email=${encodeURIComponent(ADDRESS)}`, headers: { authorization: `Bearer ${key}x` } });
    const text = lines.join('');
    expect(text).not.toContain('secret.person');
    expect(text).not.toContain(encodeURIComponent(ADDRESS));
    expect(text).not.toContain(key);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e['msg'] === 'request');
    expect(entries).toHaveLength(3);
    expect(entries[0]).toMatchObject({ method: 'GET', route: '/v1/eligibility', status: 200, keyId, ms: expect.any(Number) });
    expect(entries[1]).toMatchObject({ method: 'POST', route: '/v1/eligibility', status: 200, keyId });
    expect(entries[2]).toMatchObject({ method: 'GET', status: 401, keyId: null });
  });

  it('logs nothing at level silent', async () => {
    await silent.inject({ method: 'GET', url: '/healthz' });
    expect(silentLines).toEqual([]);
  });
});

describe('lineBlocks', () => {
  it('hands lines on in order, joined into blocks, and passes on the block begun when flushed', () => {
    const written: string[] = [];
    const calls: string[] = [];
    const sink: BlockSink = {
      write: (block) => written.push(block),
      flush: (cb) => { calls.push('flush'); cb?.(); },
      flushSync: () => calls.push('flushSync'),
    };
    const stream = lineBlocks(sink, 100);
    const lineOf = (i: number): string => `{"n":${i},"route":"/v1/eligibility","é":"${'x'.repeat(i % 7)}"}\n`;
    for (let i = 0; i < 50; i++) stream.write(lineOf(i));
    expect(written.length).toBeGreaterThan(1);
    // Every block but the one begun is at least the size asked, and no bigger than one line past it.
    for (const block of written) {
      expect(block.length).toBeGreaterThanOrEqual(100);
      expect(block.length).toBeLessThan(100 + lineOf(6).length);
    }
    const before = written.length;
    let flushed = false;
    stream.flush(() => { flushed = true; });
    expect(flushed).toBe(true);
    expect(written.length).toBe(before + 1);
    stream.write(lineOf(50));
    stream.flushSync();
    expect(calls).toEqual(['flush', 'flushSync']);
    expect(written.join('')).toBe(Array.from({ length: 51 }, (_, i) => lineOf(i)).join(''));
    // Nothing begun: nothing written.
    stream.flushSync();
    expect(written.length).toBe(before + 2);
  });
});
