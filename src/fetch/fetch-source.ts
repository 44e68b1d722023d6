/**
 * Fetches an opt-out list from a URL into a file, for the import pipeline
 * (`{ kind: 'file', path }`).
 *
 * A file rather than a stream: an import with confirmation reads its source twice; a job that
 * is interrupted resumes from its source, which a consumed response cannot give back; and a
 * failed download (timeout, size limit, reset) must import nothing, which is only known once
 * the body has arrived whole. The file is written as `<name>.part` and renamed once complete
 * and flushed to disk, so a crash never leaves a file that looks complete.
 *
 * Every URL (the first and each redirect) is checked by `checkSyncUrl`, and every connection by
 * the agent's connect-time address check (fetch-agent.ts). Error messages carry the status and
 * the URL without its query, never the body.
 */
import { randomUUID } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { OptoutError } from '../errors.js';
import { writeFileStream } from '../files/file-stream.js';
import { normalizeFetchOptions, type FetchSourceOptions, type NormalizedFetchOptions } from './fetch-options.js';
import { checkSyncUrl, redactUrl } from './url-policy.js';

export type { FetchSourceOptions, FetchTimeouts } from './fetch-options.js';

export type FetchResult =
  /** The list has not changed since the `etag` / `lastModified` given (HTTP 304). */
  | { status: 'not-modified'; finalUrl: string }
  | {
    status: 'fetched';
    /** The body, decompressed when it came with `Content-Encoding: gzip`. The caller deletes it. */
    path: string;
    /** Size of the file. */
    bytes: number;
    /** Validators to pass to the next fetch; null when the server sent none. */
    etag: string | null;
    lastModified: string | null;
    contentType: string | null;
    /** The URL the body came from, after redirects. */
    finalUrl: string;
  };

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** 203 is a 200 passed on by a transforming proxy; 204 and 206 are not a whole list. */
const OK_STATUSES = new Set([200, 203]);

function fetchError(message: string, cause?: unknown): OptoutError {
  return new OptoutError('OPTOUT_ERR_FETCH', message, cause === undefined ? undefined : { cause });
}

function header(res: Dispatcher.ResponseData, name: string): string | null {
  const value = res.headers[name];
  return typeof value === 'string' ? value : null;
}

/** Whether the body must be gunzipped; refuses codings this client did not ask for. */
function isGzipEncoded(res: Dispatcher.ResponseData, url: URL): boolean {
  const raw = res.headers['content-encoding'];
  const codings = (Array.isArray(raw) ? raw.join(',') : raw ?? '')
    .split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return false;
  if (codings.length === 1 && (codings[0] === 'gzip' || codings[0] === 'x-gzip')) return true;
  throw fetchError(`${redactUrl(url)} sent the body with Content-Encoding ${codings.join(', ')}; only gzip is supported`);
}

/** Passes bytes through and fails as soon as more than `max` have passed. */
function byteLimit(max: number, url: URL, counted: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      counted.bytes += chunk.length;
      if (counted.bytes > max) callback(tooLarge(max, url));
      else callback(null, chunk);
    },
  });
}

function tooLarge(max: number, url: URL): OptoutError {
  return new OptoutError('OPTOUT_ERR_FETCH_TOO_LARGE', `The body of ${redactUrl(url)} is larger than the limit of ${max} bytes`);
}

/**
 * Decompresses a body that is itself a gzip file (a `.gz` list served without Content-Encoding),
 * so that the size limit counts what the import will read: 1 GiB of gzip can hold 100 GiB.
 */
async function* gunzipIfGzip(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < 2) {
    const next = await it.next();
    if (next.done) {
      if (head.length > 0) yield head;
      return;
    }
    head = Buffer.concat([head, next.value]);
  }
  async function* whole(): AsyncGenerator<Buffer> {
    yield head;
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value;
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) {
    yield* whole();
    return;
  }
  const gunzip = createGunzip();
  // A failure of either side ends the other: the loop below throws it.
  const feeding = pipeline(whole(), gunzip).catch(() => undefined);
  for await (const chunk of gunzip) yield chunk as Buffer;
  await feeding;
}

/** Writes the body to `<dir>/optout-sync-<uuid>`; removes the partial file on any failure. */
async function saveBody(res: Dispatcher.ResponseData, url: URL, o: NormalizedFetchOptions, signal: AbortSignal): Promise<{ path: string; bytes: number }> {
  const gzip = isGzipEncoded(res, url);
  const length = Number(header(res, 'content-length') ?? Number.NaN);
  if (!gzip && length > o.maxBytes) throw tooLarge(o.maxBytes, url);
  const path = join(o.dir, `optout-sync-${randomUUID()}`);
  const part = `${path}.part`;
  const counted = { bytes: 0 };
  const limit = byteLimit(o.maxBytes, url, counted);
  // Lists are personal data: readable by this user only. `flush`: on disk before it is renamed.
  await writeFileStream(part, { flags: 'wx', mode: 0o600, flush: true }, async (out) => {
    if (gzip) await pipeline(res.body, createGunzip(), gunzipIfGzip, limit, out, { signal });
    else await pipeline(res.body, gunzipIfGzip, limit, out, { signal });
  });
  try {
    await rename(part, path);
  } catch (err) {
    await rm(part, { force: true });
    throw err;
  }
  return { path, bytes: counted.bytes };
}

/** Bytes of a discarded body read to keep the connection; a longer one closes it. */
const DISCARD_LIMIT = 64 * 1024;

/** Reads and drops a response body that is not the list (a redirect, an error page). */
async function discard(res: Dispatcher.ResponseData, signal: AbortSignal): Promise<void> {
  await res.body.dump({ limit: DISCARD_LIMIT, signal }).catch(() => undefined);
}

function nextHop(res: Dispatcher.ResponseData, from: URL, redirects: number, o: NormalizedFetchOptions): URL {
  const location = header(res, 'location');
  if (location === null || location === '') throw fetchError(`HTTP ${res.statusCode} from ${redactUrl(from)} without a Location`);
  if (redirects >= o.maxRedirections) throw fetchError(`More than ${o.maxRedirections} redirects, the last from ${redactUrl(from)}`);
  let target: URL;
  try {
    target = new URL(location, from);
  } catch (cause) {
    throw fetchError(`HTTP ${res.statusCode} from ${redactUrl(from)} with an invalid Location`, cause);
  }
  const next = checkSyncUrl(target, o.policy);
  if (from.protocol === 'https:' && next.protocol === 'http:') {
    throw new OptoutError('OPTOUT_ERR_URL_REFUSED', `Refused the redirect from ${redactUrl(from)} to ${redactUrl(next)}: https to http`);
  }
  return next;
}

/** Any failure as an OptoutError that names the URL and what went wrong. */
function toFetchError(err: unknown, url: URL, o: NormalizedFetchOptions, deadline: AbortSignal): OptoutError {
  if (o.signal?.aborted === true) return new OptoutError('OPTOUT_ERR_ABORTED', 'The fetch was interrupted', { cause: err });
  if (deadline.aborted) {
    return new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', `Fetching ${redactUrl(url)} took longer than ${o.totalMs} ms`, { cause: err });
  }
  if (err instanceof OptoutError) return err;
  const code = (err as { code?: unknown }).code;
  const shown = redactUrl(url);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', `Connecting to ${url.host} timed out`, { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', `No response headers from ${shown} within ${o.headersMs} ms`, { cause: err });
    case 'UND_ERR_BODY_TIMEOUT':
      return new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', `The body of ${shown} stalled for ${o.bodyMs} ms`, { cause: err });
    default:
      if (typeof code === 'string' && code.startsWith('Z_')) return fetchError(`The gzip body of ${shown} is corrupt`, err);
      return fetchError(`Fetching ${shown} failed: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function requestHeaders(o: NormalizedFetchOptions): Record<string, string> {
  const headers: Record<string, string> = {
    'accept': 'text/csv, text/plain;q=0.9, */*;q=0.8',
    'accept-encoding': 'gzip',
    'user-agent': 'optout',
  };
  if (o.etag !== null) headers['if-none-match'] = o.etag;
  if (o.lastModified !== null) headers['if-modified-since'] = o.lastModified;
  return headers;
}

/** The answer to a request that was not redirected: the list, "not modified", or an error. */
async function settle(res: Dispatcher.ResponseData, url: URL, start: URL, o: NormalizedFetchOptions, signal: AbortSignal): Promise<FetchResult> {
  if (res.statusCode === 304) {
    await discard(res, signal);
    // Unasked, a 304 would make a sync skip a list it never read.
    if (o.etag === null && o.lastModified === null) throw fetchError(`HTTP 304 from ${redactUrl(url)} to a request without validators`);
    return { status: 'not-modified', finalUrl: url.href };
  }
  if (!OK_STATUSES.has(res.statusCode)) {
    await discard(res, signal);
    const via = url === start ? '' : ` (redirected from ${redactUrl(start)})`;
    throw fetchError(`HTTP ${res.statusCode} from ${redactUrl(url)}${via}`);
  }
  let saved;
  try {
    saved = await saveBody(res, url, o, signal);
  } catch (err) {
    // A body refused before it was read (its size, its encoding) would hold the connection.
    // Destroying it emits an abort error nobody needs.
    res.body.on('error', () => undefined).destroy();
    throw err;
  }
  return {
    status: 'fetched',
    ...saved,
    etag: header(res, 'etag'),
    lastModified: header(res, 'last-modified'),
    contentType: header(res, 'content-type'),
    finalUrl: url.href,
  };
}

/**
 * Fetches `url` (GET, following at most `maxRedirections` redirects) and writes the body to a
 * new file in `dir`. With `etag` or `lastModified` the request is conditional, and a 304 answers
 * `{ status: 'not-modified' }`. Nothing is left on disk when it fails.
 *
 * @throws OptoutError `OPTOUT_ERR_INVALID_OPTION` for a bad option or URL;
 *   `OPTOUT_ERR_URL_REFUSED` when the URL, a redirect or a resolved address is refused;
 *   `OPTOUT_ERR_FETCH` for an error status, a failed connection, too many redirects, an
 *   unsupported or corrupt content encoding; `OPTOUT_ERR_FETCH_TIMEOUT` when a time limit
 *   passed; `OPTOUT_ERR_FETCH_TOO_LARGE` when the body exceeds `maxBytes`;
 *   `OPTOUT_ERR_ABORTED` when `signal` aborted it.
 */
export async function fetchSource(url: string | URL, options: FetchSourceOptions = {}): Promise<FetchResult> {
  const o = normalizeFetchOptions(options);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), o.totalMs);
  const signal = o.signal === undefined ? deadline.signal : AbortSignal.any([o.signal, deadline.signal]);
  const headers = requestHeaders(o);
  let current: URL | null = null;
  try {
    const start = checkSyncUrl(url, o.policy);
    current = start;
    for (let redirects = 0; ; redirects++) {
      signal.throwIfAborted();
      const res = await o.agent.request({
        origin: current.origin, path: `${current.pathname}${current.search}`, method: 'GET', headers,
        headersTimeout: o.headersMs, bodyTimeout: o.bodyMs, signal,
      });
      if (!REDIRECT_STATUSES.has(res.statusCode)) return await settle(res, current, start, o, signal);
      await discard(res, signal);
      current = nextHop(res, current, redirects, o);
    }
  } catch (err) {
    throw current === null ? err : toFetchError(err, current, o, deadline.signal);
  } finally {
    clearTimeout(timer);
    if (o.ownAgent) await o.agent.destroy();
  }
}
