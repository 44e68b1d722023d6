/**
 * `GET /openapi.json`: an OpenAPI 3 document generated from the route schemas, served without a
 * key, that lists every route the server registers with its methods, each with its request
 * parameters and its answers.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { openStore, type OptoutStore } from '../../src/check/open-store.js';
import { closeServerAndStore, tempDir } from '../helpers.js';

interface Operation { parameters?: Array<{ in: string; name: string }>; requestBody?: unknown; responses?: Record<string, unknown> }
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>> };

let store: OptoutStore;
let app: OptoutServer;
/** Every route as fastify registers it: `METHOD /path`. */
const registered: Array<{ method: string; url: string; schema: Record<string, unknown> | undefined }> = [];

beforeAll(async () => {
  store = await openStore(join(await tempDir('optout-api-openapi-'), 'db'));
  app = createServer({ store });
  // The routes are declared when the server loads its plugins, so this sees every one.
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) registered.push({ method, url: route.url, schema: route.schema as Record<string, unknown> | undefined });
  });
  await app.ready();
});

afterAll(async () => closeServerAndStore(app, store));

async function document(): Promise<OpenApi> {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  expect(res.statusCode).toBe(200);
  return res.json();
}

const openApiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3 document served without a key', async () => {
    expect((await document()).openapi).toMatch(/^3\./);
  });

  it('lists every registered route with its methods, request parameters and answers', async () => {
    const doc = await document();
    expect(registered.length).toBeGreaterThan(20);
    for (const { method, url, schema } of registered) {
      const op = doc.paths[openApiPath(url)]?.[method.toLowerCase()];
      expect(op, `${method} ${url} is missing`).toBeDefined();
      expect(Object.keys(op?.responses ?? {}), `${method} ${url} has no success answer`).toEqual(expect.arrayContaining([expect.stringMatching(/^(2\d\d|304)$/)]));
      expect(op?.responses?.['4XX'] ?? op?.responses?.['4xx'], `${method} ${url} has no error answer`).toBeDefined();
      for (const param of url.match(/:[A-Za-z]+/g) ?? []) {
        expect(op?.parameters, `${method} ${url} lacks ${param}`).toEqual(expect.arrayContaining([expect.objectContaining({ in: 'path', name: param.slice(1) })]));
      }
      if (schema?.['querystring'] !== undefined) expect(op?.parameters?.some((p) => p.in === 'query'), `${method} ${url} lacks its query`).toBe(true);
      if (schema?.['body'] !== undefined) expect(op?.requestBody, `${method} ${url} lacks its body`).toBeDefined();
    }
  });

  it('documents the request schemas of the check routes', async () => {
    const doc = await document();
    expect(doc.paths['/v1/eligibility']?.['get']?.parameters?.map((p) => p.name)).toEqual(expect.arrayContaining(['email', 'unit', 'type', 'legalBasis']));
    expect(doc.paths['/v1/eligibility']?.['post']?.requestBody).toBeDefined();
  });
});
