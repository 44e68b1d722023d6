/** The options of `fetchSource`, validated once and filled with their defaults. */
import { tmpdir } from 'node:os';
import type { Agent } from 'undici';
import { OptoutError, describeValue } from '../errors.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, createSyncAgent, policyOf, positiveMs } from './fetch-agent.js';
import type { AddressPolicy, AddressPolicyOptions } from './url-policy.js';

export interface FetchTimeouts {
  /**
   * Resolving the host name and opening the connection, per connection. Set on the agent
   * instead when passing `dispatcher`.
   * @default 10000
   */
  connectMs?: number;
  /** From sending a request to the end of the response headers. @default 30000 */
  headersMs?: number;
  /** Between two chunks of the body (a stalled body fails after this long). @default 30000 */
  bodyMs?: number;
  /** The whole fetch: every redirect, the headers and the whole body. @default 1800000 (30 minutes) */
  totalMs?: number;
}

export interface FetchSourceOptions extends AddressPolicyOptions {
  /** The `ETag` of the last fetch, sent as `If-None-Match`. @default none */
  etag?: string | null | undefined;
  /** The `Last-Modified` of the last fetch, sent verbatim as `If-Modified-Since`. @default none */
  lastModified?: string | null | undefined;
  /**
   * The largest body accepted, in bytes as written to the file (after `Content-Encoding: gzip`
   * is undone). A larger one fails as soon as the limit is passed.
   * @default 1073741824 (1 GiB)
   */
  maxBytes?: number;
  /** Time limits in milliseconds. */
  timeouts?: FetchTimeouts;
  /** Redirects followed at most; one more fails the fetch. @default 5 */
  maxRedirections?: number;
  /** Aborts the fetch (`OPTOUT_ERR_ABORTED`); the partial file is removed. */
  signal?: AbortSignal | undefined;
  /**
   * An agent from `createSyncAgent`, to reuse its connections; its address policy then
   * applies, so `allowPrivate`, `allowAddress` and `timeouts.connectMs` may not be given too.
   * Any other dispatcher is refused: it would connect without the address check.
   * @default a new agent for this fetch, closed at its end
   */
  dispatcher?: Agent | undefined;
  /** The folder the body file is written in. @default os.tmpdir() */
  dir?: string;
}

export interface NormalizedFetchOptions {
  etag: string | null;
  lastModified: string | null;
  maxBytes: number;
  headersMs: number;
  bodyMs: number;
  totalMs: number;
  maxRedirections: number;
  signal: AbortSignal | undefined;
  /** The agent to use, and whether this fetch made it (and must close it). */
  agent: Agent;
  ownAgent: boolean;
  policy: AddressPolicy;
  dir: string;
}

export const DEFAULT_MAX_BYTES = 1024 ** 3;
export const DEFAULT_MAX_REDIRECTIONS = 5;
export const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;
export const DEFAULT_TOTAL_TIMEOUT_MS = 30 * 60_000;

function invalid(message: string): OptoutError {
  return new OptoutError('OPTOUT_ERR_INVALID_OPTION', message);
}

/** A validator echoed in a request header: printable, on one line. */
function validator(name: string, value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > 1024 || !/^[\x20-\x7e\t]+$/.test(value)) {
    throw invalid(`Expected \`${name}\` to be a header value (1 to 1024 printable ASCII characters), got ${describeValue(value)}`);
  }
  return value;
}

function integerFrom(name: string, value: unknown, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalid(`Expected \`${name}\` to be an integer from ${min} and up, got ${describeValue(value)}`);
  }
  return value;
}

function agentFor(o: FetchSourceOptions, connectMs: number): { agent: Agent; ownAgent: boolean; policy: AddressPolicy } {
  if (o.dispatcher === undefined) {
    const agent = createSyncAgent({ allowPrivate: o.allowPrivate, allowAddress: o.allowAddress, connectTimeoutMs: connectMs });
    return { agent, ownAgent: true, policy: policyOf(agent) as AddressPolicy };
  }
  const policy = policyOf(o.dispatcher);
  if (policy === undefined) throw invalid('Expected `dispatcher` to be an agent made by createSyncAgent()');
  if (o.allowPrivate !== undefined || o.allowAddress !== undefined || o.timeouts?.connectMs !== undefined) {
    throw invalid('Expected `allowPrivate`, `allowAddress` and `timeouts.connectMs` on createSyncAgent(), not with `dispatcher`');
  }
  return { agent: o.dispatcher, ownAgent: false, policy };
}

/** Validates every option; makes the agent last, so that an invalid option leaves nothing open. */
export function normalizeFetchOptions(o: FetchSourceOptions): NormalizedFetchOptions {
  const t = o.timeouts ?? {};
  if (typeof t !== 'object' || t === null) throw invalid(`Expected \`timeouts\` to be an object, got ${describeValue(t)}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw invalid(`Expected \`signal\` to be an AbortSignal, got ${describeValue(o.signal)}`);
  }
  if (o.dir !== undefined && (typeof o.dir !== 'string' || o.dir.length === 0)) {
    throw invalid(`Expected \`dir\` to be a folder path, got ${describeValue(o.dir)}`);
  }
  const normalized = {
    etag: validator('etag', o.etag),
    lastModified: validator('lastModified', o.lastModified),
    maxBytes: integerFrom('maxBytes', o.maxBytes, 1, DEFAULT_MAX_BYTES),
    headersMs: positiveMs('timeouts.headersMs', t.headersMs, DEFAULT_HEADERS_TIMEOUT_MS),
    bodyMs: positiveMs('timeouts.bodyMs', t.bodyMs, DEFAULT_BODY_TIMEOUT_MS),
    totalMs: positiveMs('timeouts.totalMs', t.totalMs, DEFAULT_TOTAL_TIMEOUT_MS),
    maxRedirections: integerFrom('maxRedirections', o.maxRedirections, 0, DEFAULT_MAX_REDIRECTIONS),
    signal: o.signal,
    dir: o.dir ?? tmpdir(),
  };
  const connectMs = positiveMs('timeouts.connectMs', t.connectMs, DEFAULT_CONNECT_TIMEOUT_MS);
  return { ...normalized, ...agentFor(o, connectMs) };
}
