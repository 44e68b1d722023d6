/**
 * `GET /v1/eligibility` answered straight from node:http, in front of fastify, for the requests
 * it can answer exactly as the fastify route does; every other request, and every check request
 * it is not sure of, goes to fastify untouched.
 *
 * Why: a single check is a hash lookup, and node:http itself costs about 42 µs of CPU a request
 * on the benchmark's machine (2 shared cores). Through fastify the same check cost 89 µs, 9.7k
 * requests a second against 20.0k for a plain node:http server answering from a `Set` (0.49x,
 * bench:check, load average 1.3 to 4.3): routing, the request and reply objects, the hooks of
 * every plugin (compression, body deadlines, `Expect`, methods), schema validation, a child
 * logger a request. Answered here, with the same checks in the same order, it costs 70 µs,
 * 11.6k requests a second against 20.7k (0.56x, bench:check, load average 2.6 to 3.4); what this
 * file and its callees add to node:http is about 8 µs of CPU a check in-process (with the request
 * and response faked), of which the lookup, the key's SHA-256 and the log line are most. The rest
 * of the gap to the plain server was not found in a profile of ours: the kernel's share of each
 * write grows as the server gets slower, and the machine was shared.
 *
 * What it answers: a GET of exactly `/v1/eligibility?...`, without a body or `Expect`, on a
 * ready server that is not closing, with a valid key, parameters that pass the route's schema
 * and the key's unit binding, within the key's rate. Anything else (no key, a bad parameter,
 * a HEAD, a rate limit, a store that is not ready) is handed to fastify before anything has been
 * recorded, so that fastify's answer is the only one. Once the rate limiter has taken a token,
 * this path answers whatever comes (a decision, a stale replica, a store that fails) itself, as
 * the route's error handler would.
 *
 * Handing over a rate-limited request is exact: a refused `take` only refills the bucket, and
 * fastify's `take` a moment later refuses or accepts as one `take` at that moment would.
 *
 * test/api/fast-eligibility.test.ts sends the same requests to a server with and without this
 * path and compares status, body, headers, log lines and metrics.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CheckRequest } from '../check/checker.js';
import { SEND_TYPES, type Decision } from '../check/rules.js';
import type { KeyRecord, KeyRing } from '../auth/api-keys.js';
import { toApiError, type ApiError } from './errors.js';
import type { RateLimiter } from './rate-limiter.js';
import { decodeComponent } from './strict-decoding.js';

export const ELIGIBILITY_ROUTE = '/v1/eligibility';
const PREFIX = `${ELIGIBILITY_ROUTE}?`;

/**
 * The limits of the route's querystring, which its schema (server.ts) is built from: a value past
 * one is left to fastify's validation.
 */
export const QUERY_LIMITS = { email: 1024, unit: 64, legalBasis: 500 } as const;
export const MIN_SEQ_PATTERN = '^[0-9]{1,15}$';
const SEND_TYPE_NAMES: ReadonlySet<string> = new Set(SEND_TYPES);
const MIN_SEQ = new RegExp(MIN_SEQ_PATTERN);
const BEARER = /^Bearer[ ]+(\S+)[ ]*$/i;

const JSON_TYPE = 'application/json; charset=utf-8';

/** What the fast path shares with the server: its state, and how a response is counted and logged. */
export interface FastEligibilityContext {
  /** The key ring once the server is ready and not closing; undefined sends the request to fastify. */
  readyKeys(): KeyRing | undefined;
  limiter: RateLimiter;
  check(req: CheckRequest, minSeq: number | undefined): Promise<Decision>;
  /** {@link check}'s decision at once where it can be given so (see open-store.ts `checkAtOnce`); undefined otherwise. */
  checkAtOnce(req: CheckRequest, minSeq: number | undefined): Decision | undefined;
  /** Counts the decision and throws the error to answer for one that may not be sent. */
  failClosed(decisions: readonly Decision[]): void;
  /** The next request id, from fastify's sequence: taken once a request is this path's to answer. */
  requestId(): string;
  /** Metrics and the log line of an answered request, as the fastify route's onResponse hooks. */
  answered(reqId: string, method: string, route: string, status: number, elapsedMs: number, keyId: string | null): void;
  /** A fastify internal error is logged by the error handler; so is it here. */
  logError(err: unknown): void;
}

/**
 * The check's options when the query passes the route's schema exactly; undefined otherwise.
 * One pass over the query without the arrays of parseQuery (strict-decoding.ts), and stricter: a name must be
 * written as it reads (`%65mail` is left to fastify), each at most once, each with an `=`.
 */
function checkQuery(query: string): { email: string; unit?: string; type?: string; legalBasis?: string; minSeq?: string } | undefined {
  let email: string | undefined;
  let unit: string | undefined;
  let type: string | undefined;
  let legalBasis: string | undefined;
  let minSeq: string | undefined;
  for (let at = 0; at <= query.length;) {
    let end = query.indexOf('&', at);
    if (end === -1) end = query.length;
    if (end > at) {
      const eq = query.indexOf('=', at);
      if (eq === -1 || eq > end) return undefined;
      // As parseQuery decodes it: a value that is not percent-encoded UTF-8 is fastify's 400.
      const value = decodeComponent(query.slice(eq + 1, end));
      if (value === undefined) return undefined;
      // Lengths in UTF-16 units: never fewer than the code points the schema counts.
      switch (query.slice(at, eq)) {
        case 'email': if (email !== undefined || value.length > QUERY_LIMITS.email) return undefined; email = value; break;
        case 'unit': if (unit !== undefined || value.length > QUERY_LIMITS.unit) return undefined; unit = value; break;
        case 'legalBasis': if (legalBasis !== undefined || value.length > QUERY_LIMITS.legalBasis) return undefined; legalBasis = value; break;
        case 'type': if (type !== undefined || !SEND_TYPE_NAMES.has(value)) return undefined; type = value; break;
        case 'minSeq': if (minSeq !== undefined || !MIN_SEQ.test(value)) return undefined; minSeq = value; break;
        default: return undefined;
      }
    }
    at = end + 1;
  }
  if (email === undefined) return undefined;
  return { email, unit, type, legalBasis, minSeq };
}

function send(res: ServerResponse, status: number, headers: Readonly<Record<string, string>>, body: string): void {
  res.writeHead(status, { ...headers, 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/**
 * A request listener in front of fastify's: answers the request and returns true, or leaves it
 * untouched and returns false.
 */
export function fastEligibility(ctx: FastEligibilityContext): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (req.method !== 'GET' || url === undefined || !url.startsWith(PREFIX)) return false;
    const h = req.headers;
    if (h['content-length'] !== undefined || h['transfer-encoding'] !== undefined || h.expect !== undefined) return false;
    const started = performance.now();
    const keys = ctx.readyKeys();
    if (keys === undefined) return false;
    const match = h.authorization === undefined ? null : BEARER.exec(h.authorization);
    if (match?.[1] === undefined) return false;
    let key: KeyRecord | undefined;
    try {
      key = keys.verify(match[1]);
    } catch {
      return false;
    }
    if (key === undefined) return false;
    const q = checkQuery(url.slice(PREFIX.length));
    if (q === undefined) return false;
    if (key.unit !== null && q.unit !== key.unit) return false;
    if (key.rateLimit !== null && ctx.limiter.take(key.id, key.rateLimit) > 0) return false;
    // From here on the answer is ours: the request has used the key's rate. Its id is taken now,
    // as fastify takes one when a request arrives, whether or not it is answered.
    const keyId = key.id;
    const reqId = ctx.requestId();
    const finish = (status: number, headers: Readonly<Record<string, string>>, body: string): void => {
      // Counted and logged once written, as fastify's onResponse hooks are: an answer to a
      // client that has gone away is neither.
      res.once('finish', () => ctx.answered(reqId, 'GET', ELIGIBILITY_ROUTE, status, performance.now() - started, keyId));
      send(res, status, headers, body);
    };
    const fail = (err: unknown): void => {
      const api: ApiError = toApiError(err);
      if (api.code === 'OPTOUT_ERR_INTERNAL') ctx.logError(err);
      finish(api.status, api.headers, JSON.stringify({ code: api.code, message: api.message }));
    };
    const request: CheckRequest = { email: q.email, unit: q.unit, type: q.type as CheckRequest['type'], legalBasis: q.legalBasis, caller: `key:${keyId}` };
    const respond = (decision: Decision): void => {
      let body: string;
      try {
        ctx.failClosed([decision]);
        body = JSON.stringify(decision);
      } catch (err) {
        fail(err);
        return;
      }
      finish(200, {}, body);
    };
    let now: Decision | undefined;
    let answer: Promise<Decision> | undefined;
    try {
      const minSeq = q.minSeq === undefined ? undefined : Number(q.minSeq);
      now = ctx.checkAtOnce(request, minSeq);
      if (now === undefined) answer = ctx.check(request, minSeq);
    } catch (err) {
      fail(err);
      return true;
    }
    if (answer === undefined) respond(now as Decision);
    else answer.then(respond, fail);
    return true;
  };
}
