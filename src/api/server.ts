/**
 * The HTTP API over an opened store. Built on fastify (v5) because it gives, without code of our
 * own, what an API facing the network must have: JSON-schema validation of queries and bodies,
 * a body size limit enforced while reading, connection/request/keep-alive timeouts, hooks that
 * run before the body is even parsed (authentication here), and a fast JSON serializer.
 *
 * Order of the checks on every eligibility request, so that nothing about the list leaks to a
 * caller who is not allowed to ask (no membership oracle):
 * readiness (503) -> key (401) -> scope (403) -> rate limit (429) -> body and parameters
 * (413/415/400) -> unit binding (403) -> lookup.
 *
 * Store failures: a decision of reason `unavailable` (the store could not answer) is sent as a
 * 503 `OPTOUT_ERR_STORE` for the whole request, batch included, with no decisions at all.
 * A client that treats any non-2xx as "do not send" thus fails closed, and no client can mistake
 * a partial batch for an answer.
 */
import compress from '@fastify/compress';
import swagger from '@fastify/swagger';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { LogController, fastify, type FastifyInstance, type FastifyReply, type FastifyRequest, type onRequestHookHandler } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { CheckRequest } from '../check/checker.js';
import { checkAtOnce, type OptoutStore, type ReplicaFreshness } from '../check/open-store.js';
import { SEND_TYPES, type Decision, type DecisionReason, type SendType } from '../check/rules.js';
import { KeyRing, type KeyRecord, type KeyScope } from '../auth/api-keys.js';
import { isOptoutError } from '../errors.js';
import { ImportJobs, normalizeImportJobsOptions, type ImportJobsOptions } from '../manage/import-jobs.js';
import { SyncScheduler, type SchedulerOptions } from '../sync/scheduler.js';
import { ApiError, toApiError } from './errors.js';
import { RateLimiter } from './rate-limiter.js';
import { registerManageRoutes } from './manage-routes.js';
import { registerInboundRoutes } from './inbound-routes.js';
import { limitBodyTime, normalizeBodyTimeouts, streamedBody, type BodyTimeouts } from './body-timeouts.js';
import { enforceStrictDecoding, frameworkErrors, parseQuery } from './strict-decoding.js';
import { clientErrorHandler, manageConnections } from './connection.js';
import { RouteMethods } from './methods.js';
import { bufferedStdout, logRequests, loggerOptions, logs, requestLine, requestLineWriter, type RequestLogOptions } from './request-log.js';
import { ELIGIBILITY_ROUTE, MIN_SEQ_PATTERN, QUERY_LIMITS, fastEligibility } from './fast-eligibility.js';
import { PendingCounts } from './pending-counts.js';
import { RouteHistogram } from './route-histogram.js';
import { COMPACT_DECISION_SCHEMA, DECISION_SCHEMA, answers, listOf, textOf } from './schemas.js';
import { batchAnswer } from './batch-answer.js';
import { registerLinkRoutes, type LinkRouteOptions } from './link-routes.js';

export const MAX_BATCH = 10_000;

export interface ServerOptions {
  /** The store, or a promise of it: until it resolves, /readyz and the API answer 503. */
  store: OptoutStore | Promise<OptoutStore>;
  /**
   * Imports over HTTP.
   * @default threads 1, uploads up to 8 GiB, waiting jobs expire after 24 h, 10 GiB of uploads kept at most
   */
  imports?: ImportJobsOptions;
  /** Runs due syncs; `false` leaves them to `optout sync run`. @default every 15 s */
  syncs?: SchedulerOptions | false;
  /** Lets JSON imports from a URL reach loopback and private addresses. @default false */
  allowPrivateUrls?: boolean;
  /** Time limits on request bodies: whole JSON bodies, and stalls of uploads. @default 30 s each */
  timeouts?: BodyTimeouts;
  /**
   * One JSON line per request (method, route, status, time, key id; never an address, a query,
   * a body or a key): `true` for level `info` on stdout, or a level and a stream.
   * @default false
   */
  logger?: boolean | RequestLogOptions;
  /** Unsubscribe links (`/u/<token>`): the rate per client address, the undo window. @default 20/s, 5 minutes */
  links?: LinkRouteOptions;
  /**
   * Answers `GET /v1/eligibility` in front of fastify (fast-eligibility.ts), with the same
   * answers, log lines and metrics; `false` sends every request through fastify's route.
   * Requests made with `inject()` always go through fastify.
   * @default true
   */
  fastChecks?: boolean;
}

/** A server with its readiness exposed, for embedders and tests. */
export type OptoutServer = FastifyInstance & { readonly optoutReady: boolean };

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: KeyRecord;
  }
}

interface EligibilityQuery { email: string; unit?: string; type?: SendType; legalBasis?: string; minSeq?: string }
interface EligibilityBody { emails: string[]; unit?: string; type?: SendType; legalBasis?: string; minSeq?: number; compact?: boolean }

const OPTIONS_SCHEMA = {
  unit: { type: 'string', maxLength: QUERY_LIMITS.unit },
  type: { type: 'string', enum: SEND_TYPES },
  legalBasis: { type: 'string', maxLength: QUERY_LIMITS.legalBasis },
} as const;

/** Generous for an address (254 octets) with spaces, a display name or `mailto:` around it. */
const MAX_EMAIL_CHARS = QUERY_LIMITS.email;

/**
 * 10,000 addresses of the longest legal size (254 octets, quoted, comma) take about 2.6 MB of
 * JSON; the POST route accepts that and no more, every other route 64 KiB.
 */
const BATCH_BODY_LIMIT = 3 * 1024 * 1024;
const DEFAULT_BODY_LIMIT = 64 * 1024;
const CONNECTION_TIMEOUT = 60_000;
const KEEP_ALIVE_TIMEOUT = 65_000;

/** An API replica's gauges: what an alert on a replica that falls behind or is cut off watches. */
function replicaGauges(registry: Registry, replica: ReplicaFreshness): void {
  new Gauge({
    name: 'optout_replica_feed_position', help: 'The feed position the API replica\'s view holds',
    registers: [registry],
    collect() {
      this.set(replica.seq);
    },
  });
  new Gauge({
    name: 'optout_replica_proof_age_seconds',
    help: 'Seconds since the API replica last proved its view holds every committed change; checks answer 503 past --max-staleness',
    registers: [registry],
    collect() {
      // Before the first proof: as old as can be, so that an alert fires.
      this.set(replica.provenAt === null ? Number.MAX_SAFE_INTEGER : (Date.now() - replica.provenAt) / 1000);
    },
  });
}

export function createServer(options: ServerOptions): OptoutServer {
  // Checked now rather than once the store has opened, where a bad option would only be logged.
  normalizeImportJobsOptions(options.imports);
  const stdout = logs(options.logger) && (options.logger === true || (options.logger as RequestLogOptions).stream === undefined) ? bufferedStdout() : undefined;
  // fastify's own request ids (`req-1`, `req-2`, ...), from one counter that the fast path shares.
  let lastRequestId = 0;
  const requestId = (): string => {
    lastRequestId = (lastRequestId + 1) & 0x7fffffff;
    return `req-${lastRequestId.toString(36)}`;
  };
  // Set once the server's state exists (below); until then every request goes to fastify.
  let fast: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const app = fastify({
    genReqId: requestId,
    // The server fastify would make, with the fast path of single checks in front of it.
    serverFactory: (handler) => {
      const server = createHttpServer((req, res) => {
        if (fast === undefined || !fast(req, res)) handler(req, res);
      });
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT;
      server.requestTimeout = 0;
      server.setTimeout(CONNECTION_TIMEOUT);
      return server;
    },
    logger: loggerOptions(options.logger, stdout?.stream),
    // Our own line per request, without the URL: a check's query holds the address.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: DEFAULT_BODY_LIMIT,
    // Idle sockets, slow request bodies and idle keep-alive connections must not pin resources.
    // Bodies have limits of their own (body-timeouts.ts): Node's would also cut off long uploads.
    connectionTimeout: CONNECTION_TIMEOUT,
    requestTimeout: 0,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
    // The 503 while closing is ours (below), with a `{ code, message }` body.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // No type coercion and no silent dropping of unknown fields: `emails: [5]` or a misspelt
    // `units=emea` must be a 400, not a check of something else (a dropped unit would check
    // account-wide only and could answer eligible for an address suppressed in that unit).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // Unsubscribe tokens run to a few hundred characters, and an address percent-encoded in a
    // path to about 800: the default of 100 would answer them as unknown routes.
    routerOptions: { querystringParser: parseQuery, maxParamLength: 3072 },
    frameworkErrors,
    clientErrorHandler,
  });
  manageConnections(app);
  const methods = new RouteMethods(app);
  // Response schemas document the answers (OpenAPI); serializing by them would drop any field
  // they do not list, so answers are serialized as they are.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'optout', version: '1', description: 'Email opt-out (suppression) lists: eligibility checks and list management' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
    },
    exposeHeadRoutes: true,
  });
  // Large answers (exports, batches of decisions) are compressed for clients that accept it;
  // bodies sent with Content-Encoding gzip or deflate are decompressed, within the body limits.
  void app.register(compress, {
    global: true,
    encodings: ['gzip', 'deflate'],
    requestEncodings: ['gzip', 'deflate', 'identity'],
    onUnsupportedRequestEncoding: (encoding) =>
      new ApiError('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${encoding} is not accepted: send the body as it is, gzip or deflate`),
    onInvalidRequestPayload: (encoding) => new ApiError('OPTOUT_ERR_BAD_REQUEST', `The body is not valid ${encoding}`),
  });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Hooks on the path of every request take a callback: an async hook costs a promise each time.
  app.addHook('onRequest', (_request, _reply, done) => {
    done(closing ? new ApiError('OPTOUT_ERR_NOT_READY', 'The server is shutting down', { connection: 'close' }) : undefined);
  });
  enforceStrictDecoding(app);
  const timeouts = normalizeBodyTimeouts(options.timeouts);
  limitBodyTime(app, timeouts);
  // Slowloris: the headers of a request must arrive quickly.
  app.server.headersTimeout = 10_000;
  // Bodies are JSON only: a text body would otherwise reach validation and read as a bad parameter.
  app.removeContentTypeParser('text/plain');

  // Metrics in a registry of this server's own, so that several servers (tests) do not collide.
  const registry = new Registry();
  let store: OptoutStore | undefined;
  let keys: KeyRing | undefined;
  let imports: ImportJobs | undefined;
  let scheduler: SyncScheduler | undefined;
  let failed: unknown;
  const bind = (s: OptoutStore): void => {
    // Keys are read from the check view (an API replica's revocations come through its feed);
    // every write goes to the ledger.
    keys = new KeyRing(s.store);
    // What the jobs do on their own (a lost server's job ended) goes to the request log when there is one.
    imports = new ImportJobs(s.ledger, { ...(logs(options.logger) ? { onNotice: (m: string) => app.log.warn(m) } : {}), ...options.imports });
    // Jobs a previous server left unfinished are taken up again; a failure there is logged, and
    // the jobs stay as they are for the next start.
    if (options.syncs !== false) scheduler = new SyncScheduler(s.ledger, imports, { onError: (err) => app.log.error(err), ...options.syncs });
    // Syncs start once the cleanup of files left by a previous process is done.
    imports.resumeAll().catch((err: unknown) => app.log.error(err)).finally(() => scheduler?.start());
    store = s;
    if (s.replica !== undefined) replicaGauges(registry, s.replica);
  };
  app.addHook('onClose', async () => {
    // Together: the scheduler waits for the import of its current run, which closing the jobs stops.
    await Promise.all([scheduler?.close(), imports?.close()]);
    stdout?.close();
  });
  if (options.store instanceof Promise) {
    // The server must not crash on a store that never opens: /readyz keeps saying 503.
    options.store.then(bind).catch((err: unknown) => {
      failed = err;
      app.log.error(err);
    });
  } else {
    // openStore resolves only once the filter is loaded: a server made from its result is ready.
    bind(options.store);
  }

  /** An API replica must also be fresh: its view answers checks and says which API keys are valid. */
  const isReady = (): boolean => store !== undefined && store.store.isOpen && (store.replica?.fresh() ?? true);
  const assertReady = (): void => {
    if (store === undefined || !store.store.isOpen || keys === undefined) throw new ApiError('OPTOUT_ERR_NOT_READY', 'The store is not ready');
    store.replica?.assertFresh();
  };
  Object.defineProperty(app, 'optoutReady', { get: isReady, enumerable: false });

  const answeredRequests = new PendingCounts<'route' | 'method' | 'status'>();
  const counted = new PendingCounts<'reason'>();
  new Counter({
    name: 'optout_http_requests_total', help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'] as const, registers: [registry],
    collect() {
      answeredRequests.flush(this);
    },
  });
  const latency = new RouteHistogram({
    name: 'optout_http_request_duration_seconds', help: 'Time to answer an HTTP request, by route',
    label: 'route', registers: [registry],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  });
  new Counter({
    name: 'optout_checks_total', help: 'Eligibility decisions, by reason',
    labelNames: ['reason'] as const, registers: [registry],
    collect() {
      counted.flush(this);
    },
  });
  new Gauge({
    name: 'optout_store_entries', help: 'Suppression entries in the store, all scopes',
    registers: [registry],
    collect() {
      if (store !== undefined) this.set(store.store.totalEntries());
    },
  });

  const countResponse = (route: string, method: string, status: number, elapsedMs: number): void => {
    answeredRequests.add(`${status} ${method} ${route}`, () => ({ route, method, status: String(status) }));
    latency.observe(route, elapsedMs / 1000);
  };
  app.addHook('onResponse', (request, reply, done) => {
    countResponse(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime);
    done();
  });
  const logging = logs(options.logger);
  if (logging) logRequests(app);

  app.setErrorHandler(async (err, _request, reply) => {
    const api = toApiError(err);
    if (api.code === 'OPTOUT_ERR_INTERNAL') app.log.error(err);
    void reply.code(api.status).headers(api.headers);
    return { code: api.code, message: api.message };
  });
  app.setNotFoundHandler(async (request, reply) => {
    if (methods.answer(request, reply)) return reply;
    void reply.code(404);
    return { code: 'OPTOUT_ERR_NOT_FOUND', message: `No route ${request.method} ${request.url.split('?')[0] ?? ''}` };
  });

  const limiter = new RateLimiter();

  /**
   * onRequest hook: runs before the body is read, so nothing about the request is looked at first.
   * A callback hook, not an async one: it runs on every check.
   */
  function guard(scope: KeyScope): onRequestHookHandler {
    return (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void => {
      try {
        authorize(scope, request, reply);
      } catch (err) {
        done(err as Error);
        return;
      }
      done();
    };
  }

  /** The key, its scope and its rate limit; throws the error to answer. */
  function authorize(scope: KeyScope, request: FastifyRequest, reply: FastifyReply): void {
    assertReady();
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    let key: KeyRecord | undefined;
    try {
      key = match?.[1] === undefined ? undefined : keys?.verify(match[1]);
    } catch (err) {
      // A key that matched but may not be used: its holder is told why.
      if (isOptoutError(err) && err.code === 'OPTOUT_ERR_UNAUTHORIZED') {
        throw new ApiError('OPTOUT_ERR_UNAUTHORIZED', err.message, { 'www-authenticate': 'Bearer error="invalid_token"' });
      }
      throw err;
    }
    if (key === undefined) {
      // One answer for a missing, malformed, unknown or revoked key.
      void reply.header('www-authenticate', 'Bearer');
      throw new ApiError('OPTOUT_ERR_UNAUTHORIZED', 'A valid API key is required (Authorization: Bearer <key>)');
    }
    if (scope === 'admin' && key.scope !== 'admin') throw new ApiError('OPTOUT_ERR_FORBIDDEN', 'This key may not use this route');
    if (key.rateLimit !== null) {
      const wait = limiter.take(key.id, key.rateLimit);
      if (wait > 0) throw new ApiError('OPTOUT_ERR_RATE_LIMITED', `Rate limit of ${key.rateLimit}/s exceeded`, { 'retry-after': String(wait) });
    }
    request.apiKey = key;
  }

  /**
   * A unit-bound key may only ask about its own unit. Asking with no unit (account-wide only)
   * is refused too: it would answer about suppressions outside the key's unit.
   */
  function assertUnit(request: FastifyRequest, unit: string | undefined): void {
    const bound = request.apiKey?.unit ?? null;
    if (bound !== null && unit !== bound) throw new ApiError('OPTOUT_ERR_FORBIDDEN', `This key may only ask about unit ${bound}`);
  }

  /** Counts the decisions (once a request, by reason) and refuses an answer with any `unavailable` in it. */
  function failClosed(decisions: readonly Decision[]): void {
    if (decisions.length === 1) {
      const { reason } = decisions[0] as Decision;
      counted.add(reason, () => ({ reason }));
    } else {
      const tally = new Map<DecisionReason, number>();
      for (const d of decisions) tally.set(d.reason, (tally.get(d.reason) ?? 0) + 1);
      for (const [reason, n] of tally) counted.add(reason, () => ({ reason }), n);
    }
    if (decisions.some((d) => d.reason === 'unavailable')) throw new ApiError('OPTOUT_ERR_STORE', 'The store could not answer');
  }

  const current = (): OptoutStore => {
    if (store === undefined) throw new ApiError('OPTOUT_ERR_NOT_READY', 'The store is not ready');
    return store;
  };

  if (options.fastChecks !== false) {
    const writeLine = logging ? requestLineWriter(app.log) : undefined;
    fast = fastEligibility({
      readyKeys: () => (closing || !isReady() ? undefined : keys),
      limiter,
      check: (req, minSeq) => current().check(req, { minSeq }),
      checkAtOnce: (req, minSeq) => {
        const s = current();
        return checkAtOnce(s)?.(req, { minSeq });
      },
      failClosed,
      requestId,
      answered(reqId, method, route, status, elapsedMs, keyId) {
        countResponse(route, method, status, elapsedMs);
        if (writeLine !== undefined) writeLine(reqId, method, route, status, elapsedMs, keyId);
        else if (logging) app.log.info({ reqId, ...requestLine(method, route, status, elapsedMs, keyId) }, 'request');
      },
      logError: (err) => app.log.error(err),
    });
  }

  // Declared once the plugins above are loaded: the OpenAPI document sees every route.
  void app.register(async (api) => {
    // The reference for fast-eligibility.ts, which answers most of these requests before fastify.
    api.get<{ Querystring: EligibilityQuery }>(ELIGIBILITY_ROUTE, {
      onRequest: guard('check'),
      // A decision is a few hundred bytes, under the 1 KiB from which answers are compressed:
      // the compression hooks would only look at it and let it go.
      compress: false,
      // A HEAD would run the check and record a legal-basis decision that nobody reads: 405.
      exposeHeadRoute: false,
      schema: {
        summary: 'One decision',
        querystring: {
          type: 'object', required: ['email'], additionalProperties: false,
          properties: { email: { type: 'string', maxLength: MAX_EMAIL_CHARS }, ...OPTIONS_SCHEMA, minSeq: { type: 'string', pattern: MIN_SEQ_PATTERN } },
        },
        response: answers({ 200: DECISION_SCHEMA }),
      },
    }, async (request) => {
      const q = request.query;
      assertUnit(request, q.unit);
      const req: CheckRequest = { email: q.email, unit: q.unit, type: q.type, legalBasis: q.legalBasis, caller: `key:${request.apiKey?.id ?? '?'}` };
      const decision = await current().check(req, { minSeq: q.minSeq === undefined ? undefined : Number(q.minSeq) });
      failClosed([decision]);
      return decision;
    });

    api.post<{ Body: EligibilityBody }>('/v1/eligibility', {
      onRequest: guard('check'),
      bodyLimit: BATCH_BODY_LIMIT,
      schema: {
        summary: 'Decisions in input order, at most 10,000 a request',
        body: {
          type: 'object', required: ['emails'], additionalProperties: false,
          properties: {
            emails: { type: 'array', items: { type: 'string', maxLength: MAX_EMAIL_CHARS } }, ...OPTIONS_SCHEMA,
            minSeq: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            compact: { type: 'boolean', description: 'Answer each address with `eligible` and `reason` only (and `invalidReason`), in input order' },
          },
        },
        response: answers({ 200: listOf('results', { anyOf: [DECISION_SCHEMA, COMPACT_DECISION_SCHEMA] }) }),
      },
    }, async (request, reply) => {
      const b = request.body;
      if (b.emails.length > MAX_BATCH) {
        throw new ApiError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', `At most ${MAX_BATCH} emails a request, got ${b.emails.length}`);
      }
      assertUnit(request, b.unit);
      const caller = `key:${request.apiKey?.id ?? '?'}`;
      const results = await current().checkEmails(b.emails, { unit: b.unit, type: b.type, legalBasis: b.legalBasis, caller }, { minSeq: b.minSeq });
      failClosed(results);
      // Serialized once, to the bytes sent: a string answer would be measured again by the
      // compression hook and by the reply, and encoded on the way out.
      return reply.type('application/json; charset=utf-8').send(batchAnswer(results, b.compact === true));
    });

    registerManageRoutes(api, {
      guard,
      allowPrivateUrls: options.allowPrivateUrls === true,
      keys: () => {
        if (keys === undefined) throw new ApiError('OPTOUT_ERR_NOT_READY', 'The store is not ready');
        return keys;
      },
      assertUnit,
      current,
      uploadBody: (request, body) => streamedBody(request, body, timeouts.uploadStall),
      imports: () => {
        if (imports === undefined) throw new ApiError('OPTOUT_ERR_NOT_READY', 'The store is not ready');
        return imports;
      },
    });

    registerLinkRoutes(api, { ...options.links, store: () => current().ledger });
    registerInboundRoutes(api, { current, registry, guard });

    const status = { type: 'object', required: ['status'], properties: { status: { type: 'string' } } };
    api.get('/healthz', { schema: { summary: 'The process runs', response: answers({ 200: status }) } }, async () => ({ status: 'ok' }));

    api.get('/readyz', {
      schema: { summary: 'The store and its key filter are loaded; an API replica has also caught up with its database within its bound', response: answers({ 200: status }) },
    }, async (_request, reply) => {
      if (isReady()) return { status: 'ready' };
      void reply.code(503);
      if (failed !== undefined) return { code: 'OPTOUT_ERR_NOT_READY', message: 'The store failed to open' };
      try {
        assertReady();
      } catch (err) {
        if (isOptoutError(err) && err.code === 'OPTOUT_ERR_STALE') return { code: err.code, message: err.message };
      }
      return { code: 'OPTOUT_ERR_NOT_READY', message: 'The store is loading' };
    });

    api.get('/metrics', {
      onRequest: guard('admin'),
      schema: { summary: 'Prometheus metrics', response: answers({ 200: textOf('text/plain') }) },
    }, async (_request, reply) => {
      void reply.type(registry.contentType);
      return registry.metrics();
    });

    api.get('/openapi.json', { schema: { summary: 'This document', response: answers({ 200: { type: 'object', additionalProperties: true } }) } },
      async () => api.swagger());
  });

  return app as unknown as OptoutServer;
}
