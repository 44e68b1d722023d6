/**
 * `POST /v1/inbound/{id}`: where ESPs deliver bounces and complaints. No API key: each
 * provider authenticates its deliveries its own way (a signature, basic auth), checked over the
 * body's exact bytes, so the body is kept raw whatever its Content-Type (SNS sends text/plain).
 */
import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { OptoutStore } from '../check/open-store.js';
import { answers } from '../api/schemas.js';
import { receiveInbound, type ReceiveOptions } from './receive.js';

export interface InboundRouteContext {
  current(): OptoutStore;
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
      const { tally, ...result } = await receiveInbound(ctx.current().store, request.params.id, { headers: request.headers, body }, ctx.options);
      for (const t of tally) events.inc({ provider: result.provider, type: t.type, outcome: t.outcome });
      return result;
    });
  });
}
