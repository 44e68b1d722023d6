/**
 * The connect-time address check of createSyncAgent, on its own (no URL validation in front of
 * it) and through fetchSource. Names other than `localhost` are answered by an injected
 * resolver: no public name is ever resolved.
 */
import { rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OptoutError, type OptoutErrorCode } from '../../src/errors.js';
import { fetchSource } from '../../src/fetch/fetch-source.js';
import { createSyncAgent, type ResolvedAddress, type SyncAgentOptions } from '../../src/fetch/fetch-agent.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { startServer, type TestServer } from './http-server.js';

/** Answers every request and closes the connection, so the next request must connect again. */
function answer(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'connection': 'close', 'content-type': 'text/csv' }).end('email\na@example.com\n');
}

let server: TestServer;
let dir: string;

beforeAll(async () => {
  server = await startServer(answer);
  dir = await tempDir('optout-sync-');
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

async function codeOf(work: Promise<unknown>): Promise<OptoutErrorCode | 'resolved'> {
  const err = await work.then(() => 'resolved' as const, (e: unknown) => e);
  if (err === 'resolved') return err;
  if (!(err instanceof OptoutError)) throw new Error(`expected an OptoutError, got ${String(err)}`);
  return err.code;
}

/** One GET through a new agent; the agent is closed after. */
async function getWith(options: SyncAgentOptions, origin: string): Promise<number> {
  const agent = createSyncAgent(options);
  try {
    const res = await agent.request({ origin, path: '/', method: 'GET' });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

/** Only the test server's address and port. */
const onlyServer = (address: string, port: number): boolean => address === '127.0.0.1' && port === server.port;

describe('createSyncAgent', () => {
  it.each([
    ['localhost', () => `http://localhost:${server.port}`],
    ['127.0.0.1', () => server.origin],
    ['[::1]', () => `http://[::1]:${server.port}`],
    ['[::ffff:127.0.0.1]', () => `http://[::ffff:127.0.0.1]:${server.port}`],
  ])('refuses %s at connect time, before connecting', async (_, origin) => {
    const before = server.connections();
    expect(await codeOf(getWith({}, origin()))).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(server.connections()).toBe(before);
  });

  it('connects to local addresses with allowPrivate', async () => {
    expect(await getWith({ allowPrivate: true }, `http://localhost:${server.port}`)).toBe(200);
    expect(await getWith({ allowAddress: onlyServer }, server.origin)).toBe(200);
  });

  it('refuses a name when any of its addresses is refused', async () => {
    const asked: string[] = [];
    const resolve = async (name: string): Promise<ResolvedAddress[]> => {
      asked.push(name);
      return [{ address: '127.0.0.1', family: 4 }, { address: '10.0.0.1', family: 4 }];
    };
    const before = server.connections();
    expect(await codeOf(getWith({ allowAddress: onlyServer, resolve }, `http://mixed.example:${server.port}`))).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(asked).toEqual(['mixed.example']);
    expect(server.connections()).toBe(before);
  });

  it('checks every new connection: a name that rebinds to a refused address is refused', async () => {
    const answers = ['127.0.0.1', '127.0.0.2'];
    const resolve = async (): Promise<ResolvedAddress[]> => [{ address: answers.shift() ?? '127.0.0.2', family: 4 }];
    const agent = createSyncAgent({ allowAddress: onlyServer, resolve });
    try {
      const url = `http://lists.example:${server.port}/list.csv`;
      const first = await fetchSource(url, { dispatcher: agent, dir });
      expect(first.status).toBe('fetched');
      if (first.status === 'fetched') await rm(first.path);
      const connected = server.connections();
      expect(await codeOf(fetchSource(url, { dispatcher: agent, dir }))).toBe('OPTOUT_ERR_URL_REFUSED');
      expect(server.connections()).toBe(connected);
    } finally {
      await agent.close();
    }
  });

  it('checks the peer address again once connected', async () => {
    let calls = 0;
    // Allows the lookup's check, then refuses the connected socket's peer.
    const allowAddress = (address: string, port: number): boolean => onlyServer(address, port) && ++calls === 1;
    const requests = server.requests.length;
    expect(await codeOf(getWith({ allowAddress }, server.origin))).toBe('OPTOUT_ERR_URL_REFUSED');
    expect(calls).toBe(2);
    expect(server.requests.length).toBe(requests);
  });

  it('bounds name resolution by the connect timeout', async () => {
    const agent = createSyncAgent({ allowPrivate: true, connectTimeoutMs: 200, resolve: () => new Promise(() => undefined) });
    try {
      expect(await codeOf(fetchSource(`http://slow.example:${server.port}/`, { dispatcher: agent, dir }))).toBe('OPTOUT_ERR_FETCH_TIMEOUT');
    } finally {
      await agent.close();
    }
  });

  it('reports a name that does not resolve', async () => {
    const notFound = async (): Promise<ResolvedAddress[]> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' });
    };
    for (const resolve of [notFound, async () => []]) {
      const agent = createSyncAgent({ resolve });
      try {
        expect(await codeOf(fetchSource(`http://nowhere.example:${server.port}/`, { dispatcher: agent, dir }))).toBe('OPTOUT_ERR_FETCH');
      } finally {
        await agent.close();
      }
    }
  });

  it.each<[string, SyncAgentOptions]>([
    ['connectTimeoutMs 0', { connectTimeoutMs: 0 }],
    ['a resolve that is not a function', { resolve: 'dns' as never }],
    ['allowPrivate with allowAddress', { allowPrivate: true, allowAddress: () => true }],
  ])('refuses %s', (_, options) => {
    expect(() => createSyncAgent(options)).toThrow(expect.objectContaining({ code: 'OPTOUT_ERR_INVALID_OPTION' }));
  });
});
