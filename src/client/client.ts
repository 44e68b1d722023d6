/**
 * A client for the HTTP API (`optout serve`), on an undici `Pool`: keep-alive connections are
 * reused across calls, so a sender that checks before every send pays for a TCP handshake once
 * per connection, not once per check.
 *
 * Fail closed: every method either resolves with decisions the server gave, or rejects with an
 * {@link OptoutClientError} (an error answer, a timeout, a refused connection: each with its
 * code), which means "do not send": the client never guesses a decision.
 */
import { Pool } from 'undici';
import type { Decision, SendType } from '../check/rules.js';

/**
 * The server's limit of emails a POST (`MAX_BATCH` in src/api/server.ts). Kept as a copy so that
 * importing the client does not load fastify and prom-client; a test holds the two equal.
 */
export const CLIENT_MAX_BATCH = 10_000;

export interface OptoutClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  /** An API key (`optout keys create`), sent as `Authorization: Bearer <key>`. */
  key: string;
  /**
   * Keep-alive connections to the server at most.
   * @default 64
   */
  connections?: number;
  /**
   * Milliseconds to wait for the response headers, and then at most as long between body
   * chunks; a request that takes longer rejects (do not send).
   * @default undici's (300 s)
   */
  timeoutMs?: number;
}

export interface CheckOptions {
  /** Business unit; without it only account-wide suppressions apply. */
  unit?: string | undefined;
  /** @default 'marketing' (server side) */
  type?: SendType | undefined;
  /** Why a one-to-one send to a suppressed address is lawful; recorded by the server when used. */
  legalBasis?: string | undefined;
}

export interface CheckInput extends CheckOptions {
  email: string;
}

/**
 * Every way a call can fail; match on `code`, never on `message`:
 *
 * - the server's stable `OPTOUT_ERR_*` code, with its `status`, for a non-2xx answer (`retryAfter`
 *   is set when it sent `Retry-After`, as with `OPTOUT_ERR_RATE_LIMITED`);
 * - `OPTOUT_CLIENT_BAD_RESPONSE`: an answer that could not be read as the decisions asked for;
 * - `OPTOUT_CLIENT_CONNECTION`: no answer: the connection was refused, reset or closed early
 *   (`status` 0, the network error as `cause`);
 * - `OPTOUT_CLIENT_TIMEOUT`: no answer within `timeoutMs` (`status` 0).
 *
 * Every one of them means "do not send".
 */
export class OptoutClientError extends Error {
  override readonly name = 'OptoutClientError';
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  readonly code: string | undefined;
  /** Seconds the server asked to wait before retrying (its `Retry-After`), when it said. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string | undefined, message: string, options: { retryAfter?: number | undefined; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    this.retryAfter = options.retryAfter;
  }
}

const BAD_RESPONSE = 'OPTOUT_CLIENT_BAD_RESPONSE';
const CONNECTION = 'OPTOUT_CLIENT_CONNECTION';
const TIMEOUT = 'OPTOUT_CLIENT_TIMEOUT';
/** undici's codes for a request that got no answer in time. */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** A failure to get an answer, as the one error type callers match on. */
function noAnswer(err: unknown): OptoutClientError {
  if (err instanceof OptoutClientError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  return TIMEOUT_CODES.has(String(code))
    ? new OptoutClientError(0, TIMEOUT, `No answer in time: ${detail}`, { cause: err })
    : new OptoutClientError(0, CONNECTION, `No answer from the server: ${detail}`, { cause: err });
}

/** `Retry-After` in seconds (a number of seconds, or an HTTP date). */
function retryAfterOf(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function isDecision(value: unknown): value is Decision {
  return typeof value === 'object' && value !== null
    && typeof (value as Record<string, unknown>)['eligible'] === 'boolean'
    && typeof (value as Record<string, unknown>)['reason'] === 'string';
}

export class OptoutClient {
  readonly #pool: Pool;
  readonly #auth: string;
  readonly #prefix: string;
  readonly #timeouts: { headersTimeout?: number; bodyTimeout?: number };

  /** @throws TypeError on a URL that is not http(s), or a bad `connections` or `timeoutMs`. */
  constructor(options: OptoutClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`Expected \`url\` to be http: or https:, got ${url.protocol}`);
    }
    const connections = options.connections ?? 64;
    if (!Number.isSafeInteger(connections) || connections < 1) {
      throw new TypeError(`Expected \`connections\` to be a positive integer, got ${String(connections)}`);
    }
    if (options.timeoutMs !== undefined && !(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
      throw new TypeError(`Expected \`timeoutMs\` to be a positive number, got ${String(options.timeoutMs)}`);
    }
    this.#pool = new Pool(url.origin, { connections, pipelining: 1 });
    this.#auth = `Bearer ${options.key}`;
    this.#prefix = url.pathname.replace(/\/+$/, '');
    this.#timeouts = options.timeoutMs === undefined ? {} : { headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs };
  }

  /** One decision (`GET /v1/eligibility`). Rejects on any failure: do not send. */
  async check(input: CheckInput): Promise<Decision> {
    const query = new URLSearchParams({ email: input.email });
    if (input.unit !== undefined) query.set('unit', input.unit);
    if (input.type !== undefined) query.set('type', input.type);
    if (input.legalBasis !== undefined) query.set('legalBasis', input.legalBasis);
    const body = await this.#send('GET', `${this.#prefix}/v1/eligibility?${query.toString()}`, undefined);
    if (!isDecision(body)) throw new OptoutClientError(200, BAD_RESPONSE, 'The answer is not a decision');
    return body;
  }

  /**
   * Decisions in input order (`POST /v1/eligibility`), in as many requests of at most
   * {@link CLIENT_MAX_BATCH} emails as it takes, sent concurrently. Rejects if any request
   * fails, with no partial result: do not send to any of `emails`.
   */
  async checkMany(emails: readonly string[], options: CheckOptions = {}): Promise<Decision[]> {
    const batches: Array<Promise<Decision[]>> = [];
    for (let i = 0; i < emails.length; i += CLIENT_MAX_BATCH) {
      batches.push(this.#batch(emails.slice(i, i + CLIENT_MAX_BATCH), options));
    }
    return (await Promise.all(batches)).flat();
  }

  /** Closes the connections once requests in flight have been answered. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  async #batch(emails: string[], options: CheckOptions): Promise<Decision[]> {
    const payload = JSON.stringify({ emails, unit: options.unit, type: options.type, legalBasis: options.legalBasis });
    const body = await this.#send('POST', `${this.#prefix}/v1/eligibility`, payload);
    const results = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['results'] : undefined;
    // A short or malformed list must not be zipped with the input: a shift would attach
    // another address's decision.
    if (!Array.isArray(results) || results.length !== emails.length || !results.every(isDecision)) {
      throw new OptoutClientError(200, BAD_RESPONSE, `Expected ${emails.length} decisions in the answer`);
    }
    return results;
  }

  async #send(method: 'GET' | 'POST', path: string, payload: string | undefined): Promise<unknown> {
    const headers: Record<string, string> = { authorization: this.#auth, accept: 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    let res: Awaited<ReturnType<Pool['request']>>;
    let text: string;
    try {
      res = await this.#pool.request({ method, path, headers, body: payload, ...this.#timeouts });
      text = await res.body.text();
    } catch (err) {
      throw noAnswer(err);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      const fields = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
      const code = typeof fields['code'] === 'string' ? fields['code'] : undefined;
      const message = typeof fields['message'] === 'string' ? fields['message'] : `HTTP ${res.statusCode}`;
      throw new OptoutClientError(res.statusCode, code, message, { retryAfter: retryAfterOf(res.headers['retry-after']) });
    }
    if (json === undefined) throw new OptoutClientError(res.statusCode, BAD_RESPONSE, 'The answer is not JSON');
    return json;
  }
}
