/**
 * `GET /u/<token>` and `POST /u/<token>`: the unsubscribe link's page and its one-click POST
 * (RFC 8058). No API key, no cookie, no redirect; every answer, errors included, is a page (or,
 * to a mail provider's one-click POST, a line of text) with the security headers of page.ts.
 *
 * The POST tells its senders apart by the form's fields: `List-Unsubscribe=One-Click` alone is a
 * mail provider's one-click request, answered 200 with no page; the page's own form adds
 * `via=page`, and is answered with the "done" page and its undo; `undo=<ticket>` is the undo.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, toApiError } from './errors.js';
import { RateLimiter } from './rate-limiter.js';
import { OptoutError, describeValue } from '../errors.js';
import type { Ledger } from '../store/store.js';
import { DEFAULT_UNDO_WINDOW_MS, resolveLink, undoByLink, undoTicket, unsubscribeByLink } from '../links/links.js';
import { ONE_CLICK_DONE, PAGE_HEADERS, confirmPage, donePage, messagePage, undonePage } from '../links/page.js';

export interface LinkRouteOptions {
  /**
   * Requests a second from one client address. Mail providers send the one-click POSTs of many
   * recipients from few addresses: keep it generous. @default 20
   */
  rateLimit?: number | undefined;
  /** How long after an unsubscribe from the page its undo is offered. @default 5 minutes */
  undoWindowMs?: number | undefined;
}

export interface LinkRouteContext extends LinkRouteOptions {
  /** The ledger, or an ApiError OPTOUT_ERR_NOT_READY. */
  store(): Ledger;
}

/** Client addresses whose rate is remembered at once. */
const MAX_CLIENTS = 100_000;
/** A form of a few fields; an undo ticket is the longest. */
const FORM_BODY_LIMIT = 16 * 1024;
const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];
const HTML = 'text/html; charset=utf-8';

type Fields = Record<string, string>;

/** Both encodings RFC 8058 allows, read by the platform's own form parser (undici's `FormData`). */
async function formFields(contentType: string | undefined, body: Buffer): Promise<Fields> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': contentType ?? '' } }).formData();
  } catch (cause) {
    throw new ApiError('OPTOUT_ERR_BAD_REQUEST', `The form could not be read as ${contentType ?? 'a form'}: ${(cause as Error).message}`);
  }
  const fields: Fields = Object.create(null) as Fields;
  for (const [name, value] of form) if (typeof value === 'string') fields[name] = value;
  return fields;
}

const PAGE_TEXT: Partial<Record<string, [string, string]>> = {
  OPTOUT_ERR_LINK_INVALID: ['Link not valid', 'This unsubscribe link is not valid. Use the link in a recent email, or contact the sender.'],
  OPTOUT_ERR_LINK_UNDO: ['Cannot undo', 'This unsubscribe can no longer be undone here. Contact the sender to receive their emails again.'],
  OPTOUT_ERR_RATE_LIMITED: ['Too many requests', 'Too many requests came from your network. Please try again in a moment.'],
};

function pageOf(code: string, status: number): string {
  const text = PAGE_TEXT[code];
  if (text !== undefined) return messagePage(text[0], text[1]);
  if (status >= 500) return messagePage('Please try again later', 'Your request could not be handled just now. Nothing was changed. Please try again later.');
  return messagePage('Bad request', 'This request could not be understood. Open the link from the email again.');
}

const FORM_SCHEMA = {
  type: 'object', additionalProperties: true,
  properties: {
    'List-Unsubscribe': { type: 'string', description: 'One-Click (RFC 8058)' },
    via: { type: 'string', description: '`page` from the page\'s form: the answer is the page, with undo' },
    undo: { type: 'string', description: 'the undo ticket the page handed out' },
  },
} as const;
const TOKEN_PARAM = { type: 'object', required: ['token'], properties: { token: { type: 'string' } } } as const;
const PAGE = { description: 'a page', content: { 'text/html': { schema: { type: 'string' } } } } as const;
const ERROR_PAGES = { '4xx': PAGE, '5xx': PAGE } as const;

export function registerLinkRoutes(app: FastifyInstance, ctx: LinkRouteContext): void {
  const rate = ctx.rateLimit ?? 20;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`links.rateLimit\` to be a positive number of requests a second, got ${describeValue(rate)}`);
  const windowMs = ctx.undoWindowMs ?? DEFAULT_UNDO_WINDOW_MS;
  const limiter = new RateLimiter(MAX_CLIENTS);

  void app.register(async (scoped) => {
    scoped.addContentTypeParser(FORM_TYPES, { parseAs: 'buffer', bodyLimit: FORM_BODY_LIMIT },
      async (request: FastifyRequest, body: Buffer) => formFields(request.headers['content-type'], body));

    scoped.setErrorHandler(async (err, request, reply) => {
      const api = toApiError(err);
      if (api.code === 'OPTOUT_ERR_INTERNAL') request.log.error(err);
      void reply.code(api.status).headers(api.headers).type(HTML);
      return pageOf(api.code, api.status);
    });
    scoped.addHook('onSend', async (_request, reply, payload) => {
      void reply.headers(PAGE_HEADERS);
      return payload;
    });
    // Before the body is read: a flood costs a bucket lookup.
    scoped.addHook('onRequest', async (request) => {
      const wait = limiter.take(request.ip, rate);
      if (wait > 0) throw new ApiError('OPTOUT_ERR_RATE_LIMITED', `More than ${rate} requests a second from ${request.ip}`, { 'retry-after': String(wait) });
    });

    scoped.get<{ Params: { token: string } }>('/u/:token', {
      schema: {
        summary: 'An unsubscribe link\'s page: the masked address, its scope, and a button that POSTs the one-click form. Changes nothing.',
        params: TOKEN_PARAM, response: { 200: PAGE, ...ERROR_PAGES },
      },
    }, async (request, reply) => {
      const target = await resolveLink(ctx.store(), request.params.token);
      void reply.type(HTML);
      return confirmPage(target);
    });

    scoped.post<{ Params: { token: string }; Body: Fields | undefined }>('/u/:token', {
      schema: {
        summary: 'One-click unsubscribe (RFC 8058), the page\'s form, or its undo',
        params: TOKEN_PARAM,
        body: { content: Object.fromEntries(FORM_TYPES.map((t) => [t, { schema: FORM_SCHEMA }])) },
        response: { 200: { description: 'done', content: { 'text/html': { schema: { type: 'string' } }, 'text/plain': { schema: { type: 'string' } } } }, ...ERROR_PAGES },
      },
    }, async (request, reply) => {
      const store = ctx.store();
      const { token } = request.params;
      // A bad link is a 404 whatever the body says.
      await resolveLink(store, token);
      const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      if (type !== '' && !FORM_TYPES.includes(type)) {
        throw new ApiError('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE', `Send the form as ${FORM_TYPES.join(' or ')}, got ${type}`);
      }
      const fields: Fields = typeof request.body === 'object' && request.body !== null ? request.body : {};
      void reply.type(HTML);
      if (typeof fields['undo'] === 'string') {
        const { target } = await undoByLink(store, token, fields['undo'], { windowMs });
        return undonePage(target);
      }
      if (fields['List-Unsubscribe'] !== 'One-Click') {
        throw new ApiError('OPTOUT_ERR_BAD_REQUEST', 'A one-click unsubscribe has the body List-Unsubscribe=One-Click (RFC 8058)');
      }
      const done = await unsubscribeByLink(store, token);
      if (fields['via'] !== 'page') {
        void reply.type('text/plain; charset=utf-8');
        return ONE_CLICK_DONE;
      }
      const ticket = done.job === undefined ? undefined : await undoTicket(store, token, done.job);
      return donePage(done.target, ticket, Math.round(windowMs / 60_000));
    });
  });
}
