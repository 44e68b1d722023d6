/**
 * fetchSource against real HTTP servers on 127.0.0.1. The address policy is relaxed only as far
 * as each test needs (`allowPrivate`, or `allowAddress` for one port); no other address is
 * ever connected to.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OptoutError, type OptoutErrorCode } from '../../src/errors.js';
import { openSource } from '../../src/source/open-source.js';
import { fetchSource, type FetchResult, type FetchSourceOptions } from '../../src/fetch/fetch-source.js';
import { createSyncAgent } from '../../src/fetch/fetch-agent.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { startServer, type TestServer } from './http-server.js';

const CSV = 'email\na@example.com\nb@example.com\n';
const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';
const ERROR_BODY = 'SECRET-ERROR-BODY';

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/');
  switch (parts[1]) {
    case 'etag.csv':
      if (req.headers['if-none-match'] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
      else res.writeHead(200, { 'etag': '"v1"', 'content-type': 'text/csv' }).end(CSV);
      return;
    case 'dated.csv':
      if (req.headers['if-modified-since'] === LAST_MODIFIED) res.writeHead(304).end();
      else res.writeHead(200, { 'last-modified': LAST_MODIFIED }).end(CSV);
      return;
    case 'encoded.csv':
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/csv' }).end(gzipSync(CSV));
      return;
    case 'list.csv.gz':
      res.writeHead(200, { 'content-type': 'application/gzip' }).end(gzipSync(CSV));
      return;
    case 'bomb.csv.gz':
      // A .gz file served as it is (no Content-Encoding): 4 MiB in ~4 KiB.
      res.writeHead(200, { 'content-type': 'application/gzip' }).end(gzipSync(Buffer.alloc(4 << 20, 0x61)));
      return;
    case 'corrupt-gzip':
      res.writeHead(200, { 'content-encoding': 'gzip' }).end(Buffer.concat([gzipSync(CSV).subarray(0, 12), Buffer.from('garbage')]));
      return;
    case 'brotli':
      res.writeHead(200, { 'content-encoding': 'br' }).end('not really brotli');
      return;
    case 'bytes': {
      // /bytes/<n>: chunked, no Content-Length, so the limit must count bytes as they come.
      let left = Number(parts[2]);
      res.writeHead(200, { 'content-type': 'text/csv' });
      const chunk = Buffer.alloc(1000, 0x61);
      while (left > 0) {
        res.write(chunk.subarray(0, Math.min(left, chunk.length)));
        left -= chunk.length;
      }
      res.end();
      return;
    }
    case 'declared':
      res.writeHead(200, { 'content-length': '5000' }).end(Buffer.alloc(5000, 0x61));
      return;
    case 'bomb':
      res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(8 * 1024 * 1024)));
      return;
    case 'stall-headers':
      return; // never answers
    case 'stall-body':
      res.writeHead(200, { 'content-type': 'text/csv' });
      res.write('email\na@example.com\n'); // and never ends
      return;
    case 'drip': {
      res.writeHead(200, { 'content-type': 'text/csv' });
      const timer = setInterval(() => res.write('a'), 10);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case 'r': {
      // /r/<n>: n more redirects, then the list.
      const n = Number(parts[2]);
      res.writeHead(302, { location: n > 1 ? `/r/${n - 1}` : '/etag.csv' }).end('moved');
      return;
    }
    case 'abs':
      res.writeHead(308, { location: `http://${req.headers.host ?? ''}/dated.csv` }).end();
      return;
    case 'to':
      res.writeHead(307, { location: url.searchParams.get('url') ?? '' }).end();
      return;
    case 'no-location':
      res.writeHead(302).end();
      return;
    case 'status':
      res.writeHead(Number(parts[2]), { 'content-type': 'text/plain' }).end(ERROR_BODY);
      return;
    default:
      res.writeHead(404).end(ERROR_BODY);
  }
}

let server: TestServer;
let dir: string;

beforeAll(async () => {
  server = await startServer(route);
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

afterEach(async () => {
  // Whatever a test did, no partial or stray file may be left behind.
  if (dir !== undefined) expect(await readdir(dir)).toEqual([]);
});

/** A fetch from the local test server into a fresh folder. */
async function fetchLocal(path: string, options: FetchSourceOptions = {}): Promise<FetchResult> {
  dir = await tempDir('optout-sync-');
  return fetchSource(`${server.origin}${path}`, { dir, ...(options.dispatcher === undefined && options.allowAddress === undefined ? { allowPrivate: true } : {}), ...options });
}

async function failure(work: Promise<unknown>): Promise<OptoutError> {
  const err = await work.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof OptoutError)) throw new Error(`expected an OptoutError, got ${String(err)}`);
  return err;
}

async function codeOf(work: Promise<unknown>): Promise<OptoutErrorCode> {
  return (await failure(work)).code;
}

/** Reads a fetched file and deletes it, as the caller must. */
async function take(result: FetchResult): Promise<Buffer> {
  if (result.status !== 'fetched') throw new Error(`expected a body, got ${result.status}`);
  const body = await readFile(result.path);
  const { rm } = await import('node:fs/promises');
  await rm(result.path);
  return body;
}

describe('fetchSource: conditional requests', () => {
  it('fetches with an ETag, then answers not-modified to If-None-Match', async () => {
    const first = await fetchLocal('/etag.csv');
    expect(first).toMatchObject({
      status: 'fetched', bytes: CSV.length, etag: '"v1"', lastModified: null, contentType: 'text/csv',
      finalUrl: `${server.origin}/etag.csv`,
    });
    if (first.status !== 'fetched') return;
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    expect((await take(first)).toString()).toBe(CSV);
    expect(server.requests.at(-1)?.headers['if-none-match']).toBeUndefined();

    const second = await fetchLocal('/etag.csv', { etag: first.etag });
    expect(second).toEqual({ status: 'not-modified', finalUrl: `${server.origin}/etag.csv` });
    expect(server.requests.at(-1)?.headers['if-none-match']).toBe('"v1"');
  });

  it('sends Last-Modified back as If-Modified-Since', async () => {
    const first = await fetchLocal('/dated.csv');
    expect(first).toMatchObject({ status: 'fetched', etag: null, lastModified: LAST_MODIFIED });
    await take(first);
    expect(await fetchLocal('/dated.csv', { lastModified: LAST_MODIFIED })).toMatchObject({ status: 'not-modified' });
    expect(server.requests.at(-1)?.headers['if-modified-since']).toBe(LAST_MODIFIED);
  });

  it('fetches again when the validators no longer match', async () => {
    expect((await take(await fetchLocal('/etag.csv', { etag: '"v0"' }))).toString()).toBe(CSV);
  });

  it('refuses a 304 to a request without validators', async () => {
    const err = await failure(fetchLocal('/status/304'));
    expect(err.code).toBe('OPTOUT_ERR_FETCH');
    expect(err.message).toContain('304');
  });
});

describe('fetchSource: encodings', () => {
  it('undoes Content-Encoding: gzip, and asks for it', async () => {
    const result = await fetchLocal('/encoded.csv');
    expect(result).toMatchObject({ status: 'fetched', bytes: CSV.length });
    expect((await take(result)).toString()).toBe(CSV);
    expect(server.requests.at(-1)?.headers['accept-encoding']).toBe('gzip');
  });

  it('decompresses a .gz file served as it is, so that the import reads the list', async () => {
    const result = await fetchLocal('/list.csv.gz');
    if (result.status !== 'fetched') throw new Error('expected a body');
    expect(result.bytes).toBe(CSV.length);
    const opened = openSource({ kind: 'file', path: result.path }, 'utf8');
    const parts: Buffer[] = [];
    for await (const chunk of opened.bytes) parts.push(chunk);
    opened.close();
    expect(Buffer.concat(parts).toString()).toBe(CSV);
    expect((await take(result)).toString()).toBe(CSV);
  });

  it('fails on a corrupt gzip body and leaves no file', async () => {
    expect(await codeOf(fetchLocal('/corrupt-gzip'))).toBe('OPTOUT_ERR_FETCH');
  });

  it('refuses a content coding it did not ask for', async () => {
    const err = await failure(fetchLocal('/brotli'));
    expect(err.code).toBe('OPTOUT_ERR_FETCH');
    expect(err.message).toContain('br');
  });
});

describe('fetchSource: size limit', () => {
  it('accepts a body of exactly maxBytes', async () => {
    const result = await fetchLocal('/bytes/5000', { maxBytes: 5000 });
    expect(result).toMatchObject({ status: 'fetched', bytes: 5000 });
    await take(result);
  });

  it('stops a streamed body once it passes maxBytes and removes the partial file', async () => {
    const err = await failure(fetchLocal('/bytes/200000', { maxBytes: 5000 }));
    expect(err.code).toBe('OPTOUT_ERR_FETCH_TOO_LARGE');
    expect(err.message).toContain('5000');
  });

  it('refuses a declared Content-Length above maxBytes', async () => {
    expect(await codeOf(fetchLocal('/declared', { maxBytes: 4999 }))).toBe('OPTOUT_ERR_FETCH_TOO_LARGE');
  });

  it('counts decompressed bytes (a gzip bomb stops at the limit)', async () => {
    expect(await codeOf(fetchLocal('/bomb', { maxBytes: 64 * 1024 }))).toBe('OPTOUT_ERR_FETCH_TOO_LARGE');
  });

  it('counts the decompressed bytes of a .gz file served without Content-Encoding too', async () => {
    expect(await codeOf(fetchLocal('/bomb.csv.gz', { maxBytes: 64 * 1024 }))).toBe('OPTOUT_ERR_FETCH_TOO_LARGE');
  });
});

describe('fetchSource: time limits', () => {
  it('fails when the headers do not come', async () => {
    const err = await failure(fetchLocal('/stall-headers', { timeouts: { headersMs: 200 } }));
    expect(err.code).toBe('OPTOUT_ERR_FETCH_TIMEOUT');
    expect(err.message).toContain('headers');
  });

  it('fails when the body stalls, and removes the partial file', async () => {
    const err = await failure(fetchLocal('/stall-body', { timeouts: { bodyMs: 200 } }));
    expect(err.code).toBe('OPTOUT_ERR_FETCH_TIMEOUT');
    expect(err.message).toContain('stalled');
  });

  it('bounds the whole fetch, even a body that never stalls', async () => {
    const err = await failure(fetchLocal('/drip', { timeouts: { totalMs: 300 } }));
    expect(err.code).toBe('OPTOUT_ERR_FETCH_TIMEOUT');
    expect(err.message).toContain('300 ms');
  });

  it('stops when the caller aborts, and removes the partial file', async () => {
    const controller = new AbortController();
    const work = fetchLocal('/stall-body', { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    expect(await codeOf(work)).toBe('OPTOUT_ERR_ABORTED');
  });

  it('does not connect when the signal is already aborted', async () => {
    const before = server.connections();
    expect(await codeOf(fetchLocal('/etag.csv', { signal: AbortSignal.abort() }))).toBe('OPTOUT_ERR_ABORTED');
    expect(server.connections()).toBe(before);
  });
});

describe('fetchSource: redirects', () => {
  it('follows up to maxRedirections, keeping the validators', async () => {
    const result = await fetchLocal('/r/5');
    expect(result).toMatchObject({ status: 'fetched', finalUrl: `${server.origin}/etag.csv` });
    await take(result);
    expect(await fetchLocal('/r/2', { etag: '"v1"' })).toEqual({ status: 'not-modified', finalUrl: `${server.origin}/etag.csv` });
    const absolute = await fetchLocal('/abs');
    expect(absolute).toMatchObject({ status: 'fetched', finalUrl: `${server.origin}/dated.csv` });
    await take(absolute);
  });

  it('fails on one redirect more than maxRedirections', async () => {
    const err = await failure(fetchLocal('/r/6'));
    expect(err.code).toBe('OPTOUT_ERR_FETCH');
    expect(err.message).toContain('More than 5 redirects');
    expect(await codeOf(fetchLocal('/r/3', { maxRedirections: 2 }))).toBe('OPTOUT_ERR_FETCH');
    expect(await codeOf(fetchLocal('/r/1', { maxRedirections: 0 }))).toBe('OPTOUT_ERR_FETCH');
  });

  it('fails on a redirect without a Location', async () => {
    expect(await codeOf(fetchLocal('/no-location'))).toBe('OPTOUT_ERR_FETCH');
  });

  describe('to a refused target, from an allowed first URL', () => {
    let target: TestServer;
    /** Allows the first server's port only: every other address keeps the default refusal. */
    let allowFirst: FetchSourceOptions;

    beforeAll(async () => {
      target = await startServer(route);
      allowFirst = { allowAddress: (address, port) => address === '127.0.0.1' && port === server.port };
    });

    afterAll(async () => {
      await target?.close();
    });

    const via = (url: string): string => `/to?url=${encodeURIComponent(url)}`;

    it('is refused before connecting to the target', async () => {
      expect(await codeOf(fetchLocal(via(`${target.origin}/etag.csv`), allowFirst))).toBe('OPTOUT_ERR_URL_REFUSED');
      expect(await codeOf(fetchLocal(via(`http://localhost:${target.port}/etag.csv`), allowFirst))).toBe('OPTOUT_ERR_URL_REFUSED');
      expect(await codeOf(fetchLocal(via(`http://[::ffff:7f00:1]:${target.port}/`), allowFirst))).toBe('OPTOUT_ERR_URL_REFUSED');
      expect(target.connections()).toBe(0);
      // The same redirect is followed when the target is allowed too.
      const allowed = await fetchLocal(via(`${target.origin}/etag.csv`));
      expect(allowed).toMatchObject({ status: 'fetched', finalUrl: `${target.origin}/etag.csv` });
      await take(allowed);
    });

    it.each([
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://10.0.0.1/',
      'http://[fd00::1]/',
      'file:///etc/passwd',
      'ftp://example.com/list.csv',
      'https://user:pw@example.com/',
    ])('refuses a redirect to %s', async (location) => {
      expect(await codeOf(fetchLocal(via(location), allowFirst))).toBe('OPTOUT_ERR_URL_REFUSED');
    });

    it('is refused at connect time when a name resolves to a refused address', async () => {
      const agent = createSyncAgent({
        ...allowFirst,
        resolve: async (name) => (name === 'lists.example' ? [{ address: '127.0.0.1', family: 4 }] : []),
      });
      try {
        dir = await tempDir('optout-sync-');
        const before = target.connections();
        const url = `${server.origin}${via(`http://lists.example:${target.port}/etag.csv`)}`;
        expect(await codeOf(fetchSource(url, { dispatcher: agent, dir }))).toBe('OPTOUT_ERR_URL_REFUSED');
        expect(target.connections()).toBe(before);
      } finally {
        await agent.close();
      }
    });
  });
});

describe('fetchSource: error statuses', () => {
  it.each([404, 403, 410, 500, 502, 503])('reports HTTP %i with the URL, never the body', async (status) => {
    const err = await failure(fetchLocal(`/status/${status}?token=s3cr3t`));
    expect(err.code).toBe('OPTOUT_ERR_FETCH');
    expect(err.message).toContain(String(status));
    expect(err.message).toContain(`${server.origin}/status/${status}`);
    expect(err.message).not.toContain(ERROR_BODY);
    expect(err.message).not.toContain('s3cr3t');
  });

  it.each([204, 206])('refuses %i: not a whole list', async (status) => {
    expect(await codeOf(fetchLocal(`/status/${status}`))).toBe('OPTOUT_ERR_FETCH');
  });

  it('names the first URL of a redirect that ends in an error', async () => {
    const err = await failure(fetchLocal(`/to?url=${encodeURIComponent('/status/404')}`));
    expect(err.message).toContain(`${server.origin}/status/404`);
    expect(err.message).toContain(`redirected from ${server.origin}/to`);
  });

  it('reports a refused connection', async () => {
    const closed = await startServer(route);
    await closed.close();
    dir = await tempDir('optout-sync-');
    expect(await codeOf(fetchSource(`${closed.origin}/etag.csv`, { allowPrivate: true, dir }))).toBe('OPTOUT_ERR_FETCH');
  });

  it('refuses the first URL by the default policy without connecting', async () => {
    const before = server.connections();
    dir = await tempDir('optout-sync-');
    expect(await codeOf(fetchSource(`${server.origin}/etag.csv`, { dir }))).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(await codeOf(fetchSource(`http://localhost:${server.port}/etag.csv`, { dir }))).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(server.connections()).toBe(before);
  });
});

describe('fetchSource: options', () => {
  it('uses an agent from createSyncAgent and leaves it open', async () => {
    const agent = createSyncAgent({ allowPrivate: true });
    try {
      await take(await fetchLocal('/etag.csv', { dispatcher: agent }));
      await take(await fetchLocal('/dated.csv', { dispatcher: agent }));
      expect(agent.closed).toBe(false);
    } finally {
      await agent.close();
    }
  });

  it.each<[string, FetchSourceOptions]>([
    ['a dispatcher without the address check', { dispatcher: new Agent() }],
    ['a dispatcher with a policy of its own', { dispatcher: createSyncAgent(), allowPrivate: true }],
    ['a connect timeout with a dispatcher', { dispatcher: createSyncAgent(), timeouts: { connectMs: 5 } }],
    ['an etag on two lines', { etag: '"a"\r\nX-Injected: 1' }],
    ['an empty lastModified', { lastModified: '' }],
    ['maxBytes 0', { maxBytes: 0 }],
    ['a fractional maxBytes', { maxBytes: 1.5 }],
    ['maxRedirections -1', { maxRedirections: -1 }],
    ['a zero body timeout', { timeouts: { bodyMs: 0 } }],
    ['a string total timeout', { timeouts: { totalMs: '5' as never } }],
    ['an empty dir', { dir: '' }],
    ['a signal that is not an AbortSignal', { signal: {} as never }],
  ])('refuses %s', async (_, options) => {
    const before = server.connections();
    expect(await codeOf(fetchSource(`${server.origin}/etag.csv`, { allowPrivate: true, ...options }))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(server.connections()).toBe(before);
    await options.dispatcher?.close();
  });
});
