/**
 * Time limits on request bodies. Node's `requestTimeout` bounds a whole request, body included:
 * right for the small JSON bodies (a client trickling 64 KiB must not hold a socket for hours),
 * wrong for uploads, which are accepted up to gigabytes: a 75 MB list sent at 1 MB/s got a 408
 * after 30 to 60 s. Node's limit is per server, not per route, so it is off and two limits of
 * ours replace it:
 *
 * - every body must arrive in full within `body` ms of the headers;
 * - a route that streams its body (an upload) lifts that limit when it takes the stream, and
 *   fails instead when no bytes come for `uploadStall` ms while it waits for them. The clock runs
 *   only while the server is ready for more, so a slow disk never counts against the client.
 *
 * Both answer 408 `OPTOUT_ERR_REQUEST_TIMEOUT` and close the connection: the rest of the body
 * will not be read.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OptoutError, describeValue } from '../errors.js';
import { ApiError } from './errors.js';

export interface BodyTimeouts {
  /** Longest time, in ms, from the headers to the end of a JSON body. @default 30000 */
  body?: number;
  /** Longest time, in ms, an upload may send nothing while the server waits for it. @default 30000 */
  uploadStall?: number;
}

export const DEFAULT_BODY_TIMEOUTS: Readonly<Required<BodyTimeouts>> = { body: 30_000, uploadStall: 30_000 };

export function normalizeBodyTimeouts(user: BodyTimeouts | undefined): Readonly<Required<BodyTimeouts>> {
  const out = { ...DEFAULT_BODY_TIMEOUTS, ...user };
  for (const name of ['body', 'uploadStall'] as const) {
    const v = out[name];
    if (!(Number.isSafeInteger(v) && v > 0)) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`timeouts.${name}\` to be an integer number of ms from 1 and up, got ${describeValue(v)}`);
    }
  }
  return out;
}

function timedOut(message: string): ApiError {
  return new ApiError('OPTOUT_ERR_REQUEST_TIMEOUT', message, { connection: 'close' });
}

/** The whole-body deadline of each request still reading its body. */
const deadlines = new WeakMap<FastifyRequest['raw'], NodeJS.Timeout>();

/** Whether the request announces a body (a length other than 0, or chunks). */
export function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Arms the whole-body deadline on every request with a body. */
export function limitBodyTime(app: FastifyInstance, timeouts: Readonly<Required<BodyTimeouts>>): void {
  // Hooks on the path of every request take a callback: an async hook costs a promise each time.
  app.addHook('onRequest', (request, reply, done) => {
    if (!hasBody(request)) {
      done();
      return;
    }
    const timer = setTimeout(() => {
      deadlines.delete(request.raw);
      if (request.raw.complete || reply.sent) return;
      const err = timedOut(`The request body did not arrive within ${timeouts.body} ms`);
      void reply.code(err.status).headers(err.headers).send({ code: err.code, message: err.message });
    }, timeouts.body);
    // A deadline is no reason to keep a process alive that is otherwise done.
    timer.unref();
    deadlines.set(request.raw, timer);
    const clear = (): void => {
      clearTimeout(timer);
      deadlines.delete(request.raw);
    };
    request.raw.once('end', clear);
    reply.raw.once('close', clear);
    done();
  });
}

/**
 * The body of `request` as it arrives, for a route that streams it: lifts the whole-body deadline
 * and fails with a 408 when no bytes come for `stallMs` while the consumer waits for them. The
 * request is never destroyed here, which would take the socket and the answer with it.
 */
export async function* streamedBody(request: FastifyRequest, body: AsyncIterable<Buffer>, stallMs: number): AsyncGenerator<Buffer> {
  clearTimeout(deadlines.get(request.raw));
  deadlines.delete(request.raw);
  const it = body[Symbol.asyncIterator]();
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(timedOut(`The upload sent nothing for ${stallMs} ms`)), stallMs);
    });
    let next: IteratorResult<Buffer>;
    try {
      next = await Promise.race([it.next(), stalled]);
    } finally {
      clearTimeout(timer);
    }
    if (next.done === true) return;
    yield next.value;
  }
}
