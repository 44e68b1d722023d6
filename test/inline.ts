/**
 * Helpers for the unit tier, which runs `src/` in the test process: `runImport` and `runScrub`
 * with an inline pool (the task functions on the calling thread, no worker threads and no
 * build), and requests to a server through `app.inject()` rather than a socket.
 */
import { openStore } from '../src/check/open-store.js';
import type { ImportOptions } from '../src/options.js';
import { runImport as importWith } from '../src/pipeline/run-import.js';
import type { ImportReport } from '../src/report/summary.js';
import type { ScrubOptions } from '../src/scrub/options.js';
import type { ScrubReport } from '../src/scrub/report.js';
import { runScrub as scrubWith } from '../src/scrub/run-scrub.js';
import { createInlinePool } from '../src/workers/inline-pool.js';
import type { ChunkPool } from '../src/workers/pool.js';
import { codeOf, type ApiAnswer, type ApiCall } from './helpers.js';

/**
 * Runs `fn` with the options' own pool, or an inline pool that reports the options' `threads`
 * (so that as many tasks are in flight as with that many workers), destroyed afterwards.
 * `threads` itself is passed on, for the options' validation to see.
 */
async function withPool<T>(o: { pool?: ChunkPool | undefined; threads?: number | undefined }, fn: (pool: ChunkPool) => Promise<T>): Promise<T> {
  if (o.pool !== undefined) return fn(o.pool);
  const t = o.threads;
  const pool = createInlinePool({ threads: typeof t === 'number' && Number.isInteger(t) && t >= 1 ? t : 1 });
  try {
    return await fn(pool);
  } finally {
    await pool.destroy();
  }
}

/** `runImport` of `src/`, with an inline pool unless the options name one. */
export function runImport(o: ImportOptions): Promise<ImportReport> {
  return withPool(o, (pool) => importWith({ ...o, pool }));
}

/** `runScrub` of `src/`, with an inline pool unless the options name one. */
export function runScrub(o: ScrubOptions): Promise<ScrubReport> {
  return withPool(o, (pool) => scrubWith({ ...o, pool }));
}

/** Which of these addresses the store suppresses (checked through the library's checker). */
export async function suppressed(db: string, emails: readonly string[]): Promise<string[]> {
  const s = await openStore(db);
  try {
    const decisions = await s.checkMany(emails.map((email) => ({ email })));
    return emails.filter((_, i) => decisions[i]?.eligible === false);
  } finally {
    await s.close();
  }
}

/** What `app.inject()` takes and gives back, as far as these helpers use it. */
interface Injectable {
  inject(o: { method: string; url: string; headers: Record<string, string>; payload?: string | Buffer }): Promise<{
    statusCode: number; body: string; headers: Record<string, unknown>;
  }>;
}

/**
 * {@link ApiCall} through `app.inject()`: the same requests and answers as `callApi` over a
 * socket (a string or byte body as it is, anything else as JSON; the path as written).
 */
export function injectCaller(app: () => Injectable): ApiCall {
  return async (method, path, key, body, headers = {}): Promise<ApiAnswer> => {
    const isRaw = typeof body === 'string' || body instanceof Uint8Array;
    const res = await app().inject({
      method,
      url: path,
      headers: {
        ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
        ...(body === undefined || isRaw ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body) }),
    });
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(res.body) as Record<string, unknown>;
    } catch {
      // CSV and text answers.
    }
    return { status: res.statusCode, text: res.body, json, code: codeOf(res.body), headers: res.headers };
  };
}
