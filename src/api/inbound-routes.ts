/**
 * `POST /v1/inbound/{id}`: where ESPs deliver bounces and complaints. No API key: each
 * provider authenticates its deliveries its own way (a signature, basic auth), checked over the
 * body's exact bytes, so the body is kept raw whatever its Content-Type (SNS sends text/plain).
 */
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { KeyScope } from '../auth/api-keys.js';
import type { OptoutStore } from '../check/open-store.js';
import { answers, listOf } from './schemas.js';
import { addEndpoint, endpointUrl, listEndpoints, removeEndpoint, type AddEndpointOptions } from '../inbound/endpoints.js';
import { PROVIDERS } from '../inbound/provider.js';
import { receiveInbound, type ReceiveOptions } from '../inbound/receive.js';

export interface InboundRouteContext {
  current(): OptoutStore;
  /** The API key check of the management routes. */
  guard(scope: KeyScope): onRequestHookHandler;
  /** Where `optout_inbound_events_total` is registered. */
  registry: Registry;
  options?: ReceiveOptions;
}

/** SendGrid's largest batches (about 1,000 events of up to a few KiB each), with room. */
const INBOUND_BODY_LIMIT = 8 * 1024 * 1024;

const RESULT_SCHEMA = {
  type: 'object', required: ['events', 'suppressed', 'duplicates', 'ignored'], additionalProperties: true,
  properties: {
    provider: { type: 'string' }, events: { type: 'integer' }, suppressed: { type: 'integer' }, duplicates: { type: 'integer' },
    ignored: { type: 'integer' }, invalidAddresses: { type: 'integer' }, confirmed: { type: 'boolean' },
  },
} as const;

export function registerInboundRoutes(app: FastifyInstance, ctx: InboundRouteContext): void {
  const events = new Counter({
    name: 'optout_inbound_events_total', help: 'ESP webhook events received, by provider, event type and outcome (suppressed, duplicate, ignored, invalid_address)',
    labelNames: ['provider', 'type', 'outcome'] as const, registers: [ctx.registry],
  });

  registerEndpointRoutes(app, ctx);

  void app.register(async (scoped) => {
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: INBOUND_BODY_LIMIT }, (_request, body, done) => {
      done(null, body);
    });

    scoped.post<{ Params: { id: string }; Body: Buffer | undefined }>('/v1/inbound/:id', {
      bodyLimit: INBOUND_BODY_LIMIT,
      schema: {
        summary: 'An ESP webhook delivery (SNS, SendGrid, Mailgun, Postmark): bounces and complaints become suppressions',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } },
        response: answers({ 200: RESULT_SCHEMA }),
      },
    }, async (request) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const { tally, ...result } = await receiveInbound(ctx.current().ledger, request.params.id, { headers: request.headers, body }, ctx.options);
      for (const t of tally) events.inc({ provider: result.provider, type: t.type, outcome: t.outcome });
      return result;
    });
  });
}

const SUMMARY = { type: 'object', required: ['id', 'provider', 'path'], additionalProperties: true, properties: { id: { type: 'string' }, provider: { type: 'string' }, path: { type: 'string' } } } as const;

/** The endpoints themselves, for an admin key: while the server runs it owns the store, so the CLI cannot. */
function registerEndpointRoutes(app: FastifyInstance, ctx: InboundRouteContext): void {
  const secret = { type: 'string', minLength: 1, maxLength: 16 * 1024 } as const;
  app.post<{ Body: Omit<AddEndpointOptions, 'actor'> }>('/v1/inbound', {
    onRequest: ctx.guard('admin'),
    schema: {
      summary: 'Add an inbound endpoint; Postmark credentials made up here are answered once',
      body: {
        type: 'object', required: ['provider'], additionalProperties: false,
        properties: {
          provider: { type: 'string', enum: [...PROVIDERS] }, unit: { type: 'string', maxLength: 64 },
          publicKey: secret, signingKey: secret, basicAuth: secret, snsCert: secret, topicArn: { type: 'string', maxLength: 512 },
        },
      },
      response: answers({ 201: SUMMARY }),
    },
  }, async (request, reply) => {
    const store = ctx.current().ledger;
    const added = await addEndpoint(store, { ...request.body, actor: `key:${request.apiKey?.id ?? '?'}` });
    const url = await endpointUrl(store, added.endpoint, undefined, added.basicAuth);
    void reply.code(201);
    return { ...added.endpoint, url, ...(added.basicAuth === undefined ? {} : { basicAuth: added.basicAuth }) };
  });

  app.get('/v1/inbound', {
    onRequest: ctx.guard('admin'),
    schema: { summary: 'Inbound endpoints, secrets masked', response: answers({ 200: listOf('endpoints', SUMMARY) }) },
  }, async () => ({ endpoints: await listEndpoints(ctx.current().ledger) }));

  app.delete<{ Params: { id: string } }>('/v1/inbound/:id', {
    onRequest: ctx.guard('admin'),
    schema: {
      summary: 'Remove an inbound endpoint: its next deliveries get a 404',
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } },
      response: answers({ 200: SUMMARY }),
    },
  }, async (request) => removeEndpoint(ctx.current().ledger, request.params.id, `key:${request.apiKey?.id ?? '?'}`));
}
