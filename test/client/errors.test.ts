/**
 * The client's failures are one error type with stable codes: the server's answer with its
 * `Retry-After`, a refused or reset connection, a timeout.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { OptoutClient, OptoutClientError } from '../../src/client/client.js';
import { closeServerAndStore, listenOnLoopback, tempDir } from '../helpers.js';

let store: OptoutStore;
let app: OptoutServer;
let base: string;

beforeAll(async () => {
  const dir = await tempDir('optout-client-errors-');
  store = await openStore(join(dir, 'db'));
  app = createServer({ store });
  base = await listenOnLoopback(app);
});

afterAll(async () => closeServerAndStore(app, store));

/** A plain HTTP server on 127.0.0.1 that does `onRequest`, for failures optout never makes. */
async function fakeServer(onRequest: Parameters<typeof createHttpServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createHttpServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function failure(client: OptoutClient): Promise<OptoutClientError> {
  try {
    await client.check({ email: 'a@example.com' });
  } catch (err) {
    return err as OptoutClientError;
  } finally {
    await client.close().catch(() => undefined);
  }
  throw new Error('the check did not fail');
}

describe('OptoutClientError', () => {
  it('passes the rate limit\'s Retry-After on', async () => {
    const { key } = await createKey(store.store, { scope: 'check', rateLimit: 1 });
    const client = new OptoutClient({ url: base, key });
    await client.check({ email: 'a@example.com' });
    const err = await failure(client);
    expect(err).toBeInstanceOf(OptoutClientError);
    expect(err).toMatchObject({ status: 429, code: 'OPTOUT_ERR_RATE_LIMITED', retryAfter: 1 });
  });

  it('wraps a refused connection', async () => {
    const { url, server } = await fakeServer(() => undefined);
    await new Promise((resolve) => server.close(resolve));
    const err = await failure(new OptoutClient({ url, key: 'k' }));
    expect(err).toBeInstanceOf(OptoutClientError);
    expect(err).toMatchObject({ status: 0, code: 'OPTOUT_CLIENT_CONNECTION' });
  });

  it('wraps a connection reset before the answer', async () => {
    const { url, server } = await fakeServer((req) => req.socket.destroy());
    const err = await failure(new OptoutClient({ url, key: 'k' }));
    server.close();
    expect(err).toBeInstanceOf(OptoutClientError);
    expect(err).toMatchObject({ status: 0, code: 'OPTOUT_CLIENT_CONNECTION' });
  });

  it('wraps a timeout', async () => {
    const { url, server } = await fakeServer(() => undefined);
    const err = await failure(new OptoutClient({ url, key: 'k', timeoutMs: 200 }));
    server.closeAllConnections();
    server.close();
    expect(err).toBeInstanceOf(OptoutClientError);
    expect(err).toMatchObject({ status: 0, code: 'OPTOUT_CLIENT_TIMEOUT' });
  });
});
