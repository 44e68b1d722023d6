/**
 * Every text a request carries (query, path parameters, JSON body) must decode to valid UTF-8
 * exactly, or the request is a 400 `OPTOUT_ERR_INVALID_ENCODING`, never a decision.
 *
 * Why not fastify's defaults: fast-querystring keeps an escape it cannot decode as text, so
 * `email=jos%E9@example.com` (Latin-1) reached the check as `jos%E9@example.com`, a legal address
 * that nobody suppresses: eligible, for a suppressed `josé@example.com`. The JSON body was decoded
 * with replacement characters, and the address policy accepts U+FFFD: eligible again. The router
 * (find-my-way) does refuse a bad escape in the path, but with a body of its own.
 *
 * Decoding never guesses: `decodeURIComponent` and a fatal `TextDecoder` throw on a truncated,
 * overlong or surrogate sequence, while a literal U+FFFD sent as valid UTF-8 (`%EF%BF%BD`) decodes
 * like any other character and is judged by the address policy as written.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, toApiError } from './errors.js';

export type ParsedQuery = Record<string, string | string[]>;

/** Marks a query that did not decode: the parser may not throw (it runs inside the router). */
const MALFORMED = Symbol('optout.malformedQuery');

/** A query component percent-decoded (`+` as a space), or undefined when it is not UTF-8. */
export function decodeComponent(text: string): string | undefined {
  // Most names and many values hold neither an escape nor a `+`: they decode to themselves.
  if (text.indexOf('%') === -1 && text.indexOf('+') === -1) return text;
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * `application/x-www-form-urlencoded` query parsing as fast-querystring does it (a repeated name
 * gives an array, a name without `=` an empty value, no prototype), but strict: one component
 * that is not percent-encoded UTF-8 marks the whole query as malformed.
 */
export function parseQuery(query: string): ParsedQuery {
  const out = Object.create(null) as ParsedQuery;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq));
    const value = decodeComponent(eq === -1 ? '' : pair.slice(eq + 1));
    if (name === undefined || value === undefined) return Object.assign(Object.create(null) as ParsedQuery, { [MALFORMED]: true });
    const seen = out[name];
    out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}

/** Whether {@link parseQuery} found a component that does not decode. */
function isMalformed(query: object): boolean {
  return MALFORMED in query;
}

function invalidEncoding(part: string): ApiError {
  return new ApiError('OPTOUT_ERR_INVALID_ENCODING', `The ${part} is not valid UTF-8 once percent-decoded: encode text as UTF-8 before percent-encoding it`);
}

/** Whether the path, without its query, decodes; find-my-way refuses it for other reasons too. */
function pathDecodes(url: string): boolean {
  try {
    decodeURI(url.split('?')[0] ?? '');
    return true;
  } catch {
    return false;
  }
}

/**
 * fastify's `frameworkErrors`: errors the router raises before any route runs (a path that does
 * not decode, a parameter too long) answered as `{ code, message }` like every other error.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const api = err.code === 'FST_ERR_BAD_URL' && !pathDecodes(request.raw.url ?? '') ? invalidEncoding('path') : toApiError(err);
  void reply.code(api.status).send({ code: api.code, message: api.message });
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Replaces fastify's JSON body parser with the same parser (same prototype-poisoning rules) fed
 * by a strict UTF-8 decode, and refuses a query marked malformed. The query check runs as a
 * preValidation hook, after authentication, so that the documented order of checks holds.
 */
export function enforceStrictDecoding(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(invalidEncoding('body'), undefined);
      return;
    }
    json(request, text, done);
  });
  app.addHook('preValidation', (request, _reply, done) => {
    done(isMalformed(request.query as object) ? invalidEncoding('query string') : undefined);
  });
}
