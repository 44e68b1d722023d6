/**
 * Uploads time out on stalls, not on their total duration; JSON bodies keep a whole-body limit.
 * The limits are scaled down to seconds (1 s each); the bodies are sent by hand over a real
 * socket on 127.0.0.1, in pieces, so that their timing is the test's.
 */
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, apiCaller, closeServerAndStore, listenOnLoopback, tempDir } from '../helpers.js';

// Imports run worker threads from the build, so the built server is under test.
const lib = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');
const { openStore, createKey } = lib;
const { createServer } = await import(join(ROOT, 'dist/src/server.js')) as typeof import('../../src/server.js');

let dir: string;
let store: Awaited<ReturnType<typeof openStore>>;
let app: ReturnType<typeof createServer>;
let base: string;
let port: number;
let key: string;
const call = apiCaller(() => base);

const LIMIT_MS = 1000;

beforeAll(async () => {
  dir = await tempDir('optout-api-timeouts-');
  store = await openStore(join(dir, 'db'));
  key = (await createKey(store.store, { scope: 'admin' })).key;
  app = createServer({ store, timeouts: { body: LIMIT_MS, uploadStall: LIMIT_MS } });
  base = await listenOnLoopback(app);
  port = Number(new URL(base).port);
});

afterAll(() => closeServerAndStore(app, store));

interface RawAnswer { status: number; headers: string; body: string; at: number }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Sends the headers, then each piece after its delay, unless the server has answered by then;
 * resolves with the answer once the server closes the connection.
 */
async function sendSlowly(method: string, path: string, type: string, pieces: Array<[delayMs: number, text: string]>): Promise<RawAnswer> {
  const length = pieces.reduce((n, [, text]) => n + Buffer.byteLength(text), 0);
  const socket = connect(port, '127.0.0.1');
  const started = Date.now();
  let raw = '';
  let answeredAt = 0;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    raw += d;
    answeredAt ||= Date.now() - started;
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: ${type}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`);
  for (const [delay, text] of pieces) {
    await sleep(delay);
    if (raw !== '' || socket.destroyed) break;
    socket.write(text);
  }
  await closed;
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head.toLowerCase(), body, at: answeredAt };
}

/** A CSV list of `n` addresses cut into `n` pieces (a header in the first), one every `everyMs`. */
function csvPieces(n: number, everyMs: number, prefix: string): Array<[number, string]> {
  return Array.from({ length: n }, (_, i) => [everyMs, `${i === 0 ? 'email\n' : ''}${prefix}${i}@example.com\n`]);
}

async function incomingFiles(): Promise<string[]> {
  const entries = await readdir(join(dir, 'db'), { recursive: true });
  return entries.filter((e) => e.includes('incoming-'));
}

describe('uploads', () => {
  it('take as long as they need while bytes keep coming: 3 s, past both 1 s limits', async () => {
    const a = await sendSlowly('POST', '/v1/imports?yes=true', 'text/csv', csvPieces(10, 300, 'steady'));
    expect(a.status, a.body).toBe(202);
    const id = (JSON.parse(a.body) as { id: string }).id;
    let job: Record<string, unknown> = {};
    for (let i = 0; i < 400 && !['completed', 'failed'].includes(job['state'] as string); i++) {
      await sleep(25);
      job = (await call('GET', `/v1/imports/${id}`, key)).json;
    }
    expect(job).toMatchObject({ state: 'completed', counts: expect.objectContaining({ rows: 10, added: 10 }) as unknown });
    expect((await call('GET', '/v1/eligibility?email=steady9@example.com', key)).json['eligible']).toBe(false);
  });

  it('answer 408 OPTOUT_ERR_REQUEST_TIMEOUT and close the connection when no bytes come for the stall limit', async () => {
    const before = (await call('GET', '/v1/imports', key)).json['imports'] as unknown[];
    const pieces: Array<[number, string]> = [...csvPieces(3, 300, 'stalled'), [2000, 'stalled3@example.com\n']];
    const a = await sendSlowly('POST', '/v1/imports?yes=true', 'text/csv', pieces);
    expect(a.status, a.body).toBe(408);
    expect(JSON.parse(a.body)).toEqual({ code: 'OPTOUT_ERR_REQUEST_TIMEOUT', message: expect.any(String) as string });
    expect(a.headers).toContain('connection: close');
    // Answered about 1 s into the 2 s pause, not when the client finally sent more.
    expect(a.at).toBeGreaterThanOrEqual(900 + LIMIT_MS);
    expect(a.at).toBeLessThan(900 + 2000);
    expect((await call('GET', '/v1/imports', key)).json['imports']).toEqual(before);
    expect(await incomingFiles()).toEqual([]);
  });
});

describe('JSON bodies', () => {
  it('must still arrive whole within the body limit, however steadily they come', async () => {
    const json = JSON.stringify({ emails: Array.from({ length: 10 }, (_, i) => `slow${i}@example.com`) });
    const pieces = Array.from({ length: 10 }, (_, i): [number, string] => [300, json.slice(i * Math.ceil(json.length / 10), (i + 1) * Math.ceil(json.length / 10))]);
    const a = await sendSlowly('POST', '/v1/eligibility', 'application/json', pieces);
    expect(a.status, a.body).toBe(408);
    expect(JSON.parse(a.body)).toMatchObject({ code: 'OPTOUT_ERR_REQUEST_TIMEOUT' });
    expect(a.at).toBeLessThan(LIMIT_MS + 600);
  });
});
