/**
 * A client for the HTTP API (`optout serve`), on an undici `Pool`: keep-alive connections are
 * reused across calls, so a sender that checks before every send pays for a TCP handshake once
 * per connection, not once per check.
 *
 * Fail closed: every method either resolves with decisions the server gave, or rejects. A
 * rejection of any kind (an {@link OptoutClientError}, a timeout, a refused connection) means
 * "do not send": the client never guesses a decision.
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
 * A non-2xx answer, or a 2xx answer that is not the decisions asked for. `code` is the server's
 * stable `OPTOUT_ERR_*` code when it sent one (match on it, never on `message`);
 * `OPTOUT_CLIENT_BAD_RESPONSE` when the answer could not be read as decisions.
 */
export class OptoutClientError extends Error {
  override readonly name = 'OptoutClientError';
  readonly status: number;
  readonly code: string | undefined;

  constructor(status: number, code: string | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const BAD_RESPONSE = 'OPTOUT_CLIENT_BAD_RESPONSE';

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
    const res = await this.#pool.request({ method, path, headers, body: payload, ...this.#timeouts });
    const text = await res.body.text();
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
      throw new OptoutClientError(res.statusCode, code, message);
    }
    if (json === undefined) throw new OptoutClientError(res.statusCode, BAD_RESPONSE, 'The answer is not JSON');
    return json;
  }
}
