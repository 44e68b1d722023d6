/**
 * The fast path of `GET /v1/eligibility` (src/api/fast-eligibility.ts) answers as the fastify
 * route does: the same requests go to a server with it and to one without it (`fastChecks:
 * false`), both listening on 127.0.0.1 over the same store, and must get the same status, body
 * and headers (all but Date), the same log lines (all but time and duration) and the same
 * metrics. Requests are generated (fast-check) and listed (edge cases: keys, scopes, rate limit,
 * parameters and their encodings, unit binding, HEAD, a failing store, a stale replica, minSeq).
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer, type ServerOptions } from '../../src/api/server.js';
import { createKey, revokeKey } from '../../src/auth/api-keys.js';
import { openStore, type OptoutStore, type ReplicaFreshness } from '../../src/check/open-store.js';
import type { Decision } from '../../src/check/rules.js';
import { OptoutError } from '../../src/errors.js';
import { listenOnLoopback, removeTempDirs, tempDir } from '../helpers.js';
import { runImport } from '../inline.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A request as sent: the path exactly as written, no normalization by a client library. */
function send(base: string, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const { date: _date, ...rest } = res.headers;
        resolve({ status: res.statusCode ?? 0, headers: rest, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request whose client goes away after `ms`, before its answer. */
function abandon(base: string, path: string, headers: Record<string, string>, ms: number): Promise<void> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      setTimeout(() => socket.destroy(), ms);
    });
    socket.on('close', () => resolve());
    socket.on('error', () => undefined);
  });
}

/** Two servers over one store: `fast` with the fast path, `plain` without it. */
class Pair {
  readonly fastLines: string[] = [];
  readonly plainLines: string[] = [];
  fast!: OptoutServer;
  plain!: OptoutServer;
  fastBase = '';
  plainBase = '';

  async start(store: ServerOptions['store']): Promise<this> {
    this.fast = createServer({ store, logger: { level: 'info', stream: { write: (l: string) => this.fastLines.push(l) } } });
    this.plain = createServer({ store, fastChecks: false, logger: { level: 'info', stream: { write: (l: string) => this.plainLines.push(l) } } });
    this.fastBase = await listenOnLoopback(this.fast);
    this.plainBase = await listenOnLoopback(this.plain);
    return this;
  }

  /** The same request to both, fast first; both answers must be the same. */
  async ask(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
    const a = await send(this.fastBase, method, path, headers);
    const b = await send(this.plainBase, method, path, headers);
    expect({ method, path, sent: headers, ...a }).toEqual({ method, path, sent: headers, ...b });
    return a;
  }

  /** The same abandoned request to both. */
  async abandon(path: string, headers: Record<string, string>, ms: number): Promise<void> {
    await abandon(this.fastBase, path, headers, ms);
    await abandon(this.plainBase, path, headers, ms);
  }

  /** Both servers logged the same lines, byte for byte but for their time and duration. */
  expectSameLogs(): void {
    const raw = (lines: string[]): string[] => lines.filter((l) => !l.includes('Server listening'))
      .map((l) => l.replace(/"time":\d+/, '"time":0').replace(/"ms":[0-9.e-]+/, '"ms":0'));
    expect(raw(this.fastLines)).toEqual(raw(this.plainLines));
    // Every line but the server's own (where it listens).
    const strip = (lines: string[]): unknown[] => lines.map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => !String(e['msg']).startsWith('Server listening'))
      .map(({ time: _t, ms: _ms, ...rest }) => rest);
    expect(strip(this.fastLines)).toEqual(strip(this.plainLines));
  }

  /** Both servers count the same requests, latency observations and decisions. */
  async expectSameMetrics(adminKey: string): Promise<void> {
    const counts = async (base: string): Promise<string[]> => {
      const text = (await send(base, 'GET', '/metrics', { authorization: `Bearer ${adminKey}` })).body;
      return text.split('\n').filter((l) => /^optout_(http_requests_total|checks_total|http_request_duration_seconds_count)\{/.test(l));
    };
    const fast = await counts(this.fastBase);
    expect(fast.length).toBeGreaterThan(0);
    expect(fast).toEqual(await counts(this.plainBase));
  }

  async close(): Promise<void> {
    await Promise.all([this.fast?.close(), this.plain?.close()]);
  }
}

let dir: string;
let real: OptoutStore;
const keys: Record<string, string> = {};
const pairs: Pair[] = [];

async function seed(file: string, rows: string[], unit?: string): Promise<void> {
  const csv = join(dir, file);
  await writeFile(csv, ['Email', ...rows].join('\n') + '\n');
  await runImport({ source: { kind: 'file', path: csv }, db: join(dir, 'db'), confirm: { mode: 'yes' }, ...(unit ? { unit } : {}) });
}

async function pairOver(store: ServerOptions['store']): Promise<Pair> {
  const p = await new Pair().start(store);
  pairs.push(p);
  return p;
}

beforeAll(async () => {
  dir = await tempDir('optout-fast-checks-');
  await seed('account.csv', ['acct@example.com', 'First.Last@gmail.com', 'josé@example.com']);
  await seed('emea.csv', ['unit@example.com'], 'emea');
  real = await openStore(join(dir, 'db'));
  keys['check'] = (await createKey(real.store, { scope: 'check' })).key;
  keys['admin'] = (await createKey(real.store, { scope: 'admin' })).key;
  keys['emea'] = (await createKey(real.store, { scope: 'check', unit: 'emea' })).key;
  keys['slow'] = (await createKey(real.store, { scope: 'check', rateLimit: 0.01 })).key;
  const revoked = await createKey(real.store, { scope: 'check' });
  await revokeKey(real.store, revoked.id);
  keys['revoked'] = revoked.key;
});

afterAll(async () => {
  await Promise.all(pairs.map((p) => p.close()));
  await real?.close();
  await removeTempDirs();
});

const bearer = (name: string): Record<string, string> => ({ authorization: `Bearer ${keys[name] as string}` });

/** Made once the keys exist. */
const edgeCases = (): Array<[string, string, string, Record<string, string>]> => [
  ['listed', 'GET', '/v1/eligibility?email=acct%40example.com', bearer('check')],
  ['unlisted', 'GET', '/v1/eligibility?email=nobody%40example.com', bearer('check')],
  ['listed, not normalized', 'GET', '/v1/eligibility?email=%20FIRST.LAST%2Bnews%40GMAIL.com%20', bearer('check')],
  ['invalid address', 'GET', '/v1/eligibility?email=nope', bearer('check')],
  ['empty address', 'GET', '/v1/eligibility?email=', bearer('check')],
  ['a name without value', 'GET', '/v1/eligibility?email', bearer('check')],
  ['an admin key', 'GET', '/v1/eligibility?email=acct%40example.com', bearer('admin')],
  ['no key', 'GET', '/v1/eligibility?email=acct%40example.com', {}],
  ['a wrong secret', 'GET', '/v1/eligibility?email=acct%40example.com', { authorization: `Bearer ${(keys['check'] ?? '').slice(0, -2)}xx` }],
  ['a revoked key', 'GET', '/v1/eligibility?email=acct%40example.com', bearer('revoked')],
  ['a malformed header', 'GET', '/v1/eligibility?email=acct%40example.com', { authorization: 'Basic Zm9vOmJhcg==' }],
  ['lower-case bearer, spaces', 'GET', '/v1/eligibility?email=acct%40example.com', { authorization: `bearer   ${keys['check'] as string}  ` }],
  ['unit-bound key, its unit', 'GET', '/v1/eligibility?email=unit%40example.com&unit=emea', bearer('emea')],
  ['unit-bound key, another unit', 'GET', '/v1/eligibility?email=unit%40example.com&unit=apac', bearer('emea')],
  ['unit-bound key, no unit', 'GET', '/v1/eligibility?email=unit%40example.com', bearer('emea')],
  ['rate limited, first', 'GET', '/v1/eligibility?email=acct%40example.com', bearer('slow')],
  ['rate limited, second', 'GET', '/v1/eligibility?email=acct%40example.com', bearer('slow')],
  ['rate limited, bad parameter', 'GET', '/v1/eligibility?email=acct%40example.com&bogus=1', bearer('slow')],
  ['unknown parameter', 'GET', '/v1/eligibility?email=a%40example.com&units=emea', bearer('check')],
  ['duplicated email', 'GET', '/v1/eligibility?email=a%40example.com&email=acct%40example.com', bearer('check')],
  ['duplicated unit', 'GET', '/v1/eligibility?email=unit%40example.com&unit=emea&unit=emea', bearer('check')],
  ['Latin-1 escape', 'GET', '/v1/eligibility?email=jos%E9%40example.com', bearer('check')],
  ['UTF-8 escape', 'GET', '/v1/eligibility?email=jos%C3%A9%40example.com', bearer('check')],
  ['bad escape', 'GET', '/v1/eligibility?email=a%ZZ%40example.com', bearer('check')],
  ['encoded name', 'GET', '/v1/eligibility?%65mail=acct%40example.com', bearer('check')],
  ['plus as space', 'GET', '/v1/eligibility?email=+acct%40example.com+', bearer('check')],
  ['raw @ and #', 'GET', '/v1/eligibility?email=acct@example.com#frag', bearer('check')],
  ['unit pattern', 'GET', '/v1/eligibility?email=a%40example.com&unit=em%20ea', bearer('check')],
  ['unit too long', 'GET', `/v1/eligibility?email=a%40example.com&unit=${'u'.repeat(65)}`, bearer('check')],
  ['account-wide unit', 'GET', '/v1/eligibility?email=acct%40example.com&unit=*', bearer('check')],
  ['bad type', 'GET', '/v1/eligibility?email=a%40example.com&type=promo', bearer('check')],
  ['one-to-one, no basis', 'GET', '/v1/eligibility?email=acct%40example.com&type=one-to-one', bearer('check')],
  ['one-to-one, a basis', 'GET', '/v1/eligibility?email=acct%40example.com&type=one-to-one&legalBasis=contract%2042', bearer('check')],
  ['basis too long', 'GET', `/v1/eligibility?email=acct%40example.com&type=one-to-one&legalBasis=${'x'.repeat(501)}`, bearer('check')],
  ['address too long', 'GET', `/v1/eligibility?email=${'a'.repeat(1025)}`, bearer('check')],
  ['address of 1024', 'GET', `/v1/eligibility?email=${'a'.repeat(1014)}%40b.example`, bearer('check')],
  ['multi-byte address at the limit', 'GET', `/v1/eligibility?email=${'%C3%A9'.repeat(1024)}`, bearer('check')],
  ['minSeq', 'GET', '/v1/eligibility?email=acct%40example.com&minSeq=3', bearer('check')],
  ['bad minSeq', 'GET', '/v1/eligibility?email=acct%40example.com&minSeq=-1', bearer('check')],
  ['minSeq too long', 'GET', `/v1/eligibility?email=acct%40example.com&minSeq=${'9'.repeat(16)}`, bearer('check')],
  ['no query', 'GET', '/v1/eligibility', bearer('check')],
  ['empty query', 'GET', '/v1/eligibility?', bearer('check')],
  ['trailing slash', 'GET', '/v1/eligibility/?email=acct%40example.com', bearer('check')],
  ['double slash', 'GET', '//v1/eligibility?email=acct%40example.com', bearer('check')],
  ['HEAD', 'HEAD', '/v1/eligibility?email=acct%40example.com', bearer('check')],
  ['DELETE', 'DELETE', '/v1/eligibility?email=acct%40example.com', bearer('check')],
  ['OPTIONS', 'OPTIONS', '/v1/eligibility?email=acct%40example.com', {}],
  ['Expect', 'GET', '/v1/eligibility?email=acct%40example.com', { ...bearer('check'), expect: '100-continue' }],
  ['a body on a GET', 'GET', '/v1/eligibility?email=acct%40example.com', { ...bearer('check'), 'content-length': '0' }],
];

describe('fast path of GET /v1/eligibility: the same answers as the fastify route', () => {
  it('answers the edge cases alike, with the same log lines and metrics', async () => {
    const p = await pairOver(real);
    for (const [, method, path, headers] of edgeCases()) await p.ask(method, path, headers);
    p.expectSameLogs();
    await p.expectSameMetrics(keys['admin'] as string);
    // The cases reach both paths: answered by the fast path, and handed to fastify.
    const statuses = new Set(p.fastLines.map((l) => (JSON.parse(l) as { status: number }).status));
    for (const s of [200, 400, 401, 403, 404, 405, 429]) expect(statuses).toContain(s);
  });

  it('answers generated requests alike', async () => {
    const p = await pairOver(real);
    const address = fc.constantFrom('acct@example.com', 'first.last@gmail.com', ' FIRST.LAST+x@GMAIL.COM', 'unit@example.com', 'josé@example.com',
      'nobody@example.com', 'nope', '', 'a@b', '"q"@example.com', 'Name <acct@example.com>', 'mailto:acct@example.com');
    const value = fc.oneof(
      address,
      fc.constantFrom('emea', 'apac', '*', 'marketing', 'sequence', 'one-to-one', '12', '0', '-1', 'contract 42', '', ' '),
      fc.string({ maxLength: 8 }),
    );
    // How a value is written in the query: encoded as a browser would, as is, or with a stray escape.
    const writtenAs = (v: fc.Arbitrary<string>): fc.Arbitrary<string> => fc.tuple(v, fc.constantFrom('component', 'raw', 'plus', 'latin1', 'broken')).map(([v, how]) => {
      switch (how) {
        case 'component': return encodeURIComponent(v);
        case 'raw': return encodeURI(v).replaceAll('&', '%26').replaceAll('#', '%23');
        case 'plus': return encodeURIComponent(v).replaceAll('%20', '+');
        case 'latin1': return escape(v).replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('@', '%40');
        default: return `${encodeURIComponent(v)}%`;
      }
    });
    const written = writtenAs(value);
    const name = fc.constantFrom('email', 'email', 'email', 'unit', 'type', 'legalBasis', 'minSeq', 'units', 'Email', 'e%6Dail', '');
    const pairs = fc.array(fc.tuple(name, written), { maxLength: 3 }).map((ps) => ps.map(([n, v]) => `${n}=${v}`));
    // Half of them start with an address, encoded as a client would: mostly answerable checks.
    const query = fc.oneof(
      fc.tuple(address.map(encodeURIComponent), fc.array(fc.constantFrom('type=marketing', 'type=one-to-one', 'legalBasis=contract%2042', 'minSeq=0', 'unit=emea'), { maxLength: 2 }))
        .map(([e, rest]) => [`email=${e}`, ...rest].join('&')),
      pairs.map((ps) => ps.join('&')),
    );
    const auth = fc.constantFrom('check', 'check', 'check', 'admin', 'emea', 'revoked', 'none', 'wrong');
    const method = fc.constantFrom('GET', 'GET', 'GET', 'GET', 'HEAD', 'POST');
    await fc.assert(fc.asyncProperty(method, query, auth, async (m, q, a) => {
      const headers = a === 'none' ? {} : a === 'wrong' ? { authorization: `Bearer ${(keys['check'] ?? '').slice(0, -1)}A` } : bearer(a);
      await p.ask(m, `/v1/eligibility?${q}`, m === 'POST' ? { ...headers, 'content-type': 'application/json', 'content-length': '0' } : headers);
    }), { numRuns: 200, seed: 20261207 });
    p.expectSameLogs();
    await p.expectSameMetrics(keys['admin'] as string);
    expect(p.fastLines.filter((l) => l.includes('"status":200')).length).toBeGreaterThan(25);
  });

  it('fails closed alike: a store that answers unavailable, a store that throws, a stale replica, a minSeq not reached, a client gone', async () => {
    const state = { fresh: true, seq: 10, mode: 'ok' as 'ok' | 'unavailable' | 'throws' | 'slow' };
    const replica: ReplicaFreshness = {
      maxStalenessMs: 1000,
      get seq() { return state.seq; },
      provenAt: 0,
      fresh: () => state.fresh,
      assertFresh: () => {
        if (!state.fresh) throw new OptoutError('OPTOUT_ERR_STALE', 'The replica has not proven its view fresh');
      },
    };
    const store: OptoutStore = {
      ...real,
      store: real.store,
      replica,
      check: async (req, wait) => {
        if (wait?.minSeq !== undefined && wait.minSeq > state.seq) throw new OptoutError('OPTOUT_ERR_STALE', `Position ${wait.minSeq} not reached`);
        if (state.mode === 'throws') throw new OptoutError('OPTOUT_ERR_STORE', 'disk on fire at /secret/path');
        if (state.mode === 'unavailable') return { address: req.email, key: req.email, eligible: false, reason: 'unavailable' } satisfies Decision;
        if (state.mode === 'slow') await new Promise((r) => setTimeout(r, 200));
        return real.check(req, wait);
      },
    };
    const p = await pairOver(store);
    const ask = (q: string): Promise<Answer> => p.ask('GET', `/v1/eligibility?${q}`, bearer('check'));
    expect((await ask('email=acct%40example.com')).status).toBe(200);
    expect((await ask('email=acct%40example.com&minSeq=10')).status).toBe(200);
    expect((await ask('email=acct%40example.com&minSeq=11')).status).toBe(503);
    state.mode = 'unavailable';
    const unavailable = await ask('email=acct%40example.com');
    expect(unavailable.status).toBe(503);
    expect(unavailable.body).not.toContain('eligible');
    state.mode = 'throws';
    const thrown = await ask('email=acct%40example.com');
    expect(thrown.status).toBe(503);
    expect(thrown.body).not.toContain('/secret/path');
    // A client gone before its answer: neither logged nor counted, by either path.
    state.mode = 'slow';
    await p.abandon('/v1/eligibility?email=acct%40example.com', bearer('check'), 50);
    await new Promise((r) => setTimeout(r, 300));
    state.mode = 'ok';
    state.fresh = false;
    expect(JSON.parse((await ask('email=acct%40example.com')).body)).toMatchObject({ code: 'OPTOUT_ERR_STALE' });
    expect((await ask('email=acct%40example.com&bogus=1')).status).toBe(503);
    state.fresh = true;
    p.expectSameLogs();
    await p.expectSameMetrics(keys['admin'] as string);
  });

  it('answers alike while the store is not ready', async () => {
    const p = await pairOver(new Promise<OptoutStore>(() => undefined));
    const a = await p.ask('GET', '/v1/eligibility?email=acct%40example.com', bearer('check'));
    expect(a.status).toBe(503);
    p.expectSameLogs();
  });
});
