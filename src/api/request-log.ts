/**
 * The request log: one JSON line per answered request, through fastify's logger (pino). What a
 * line holds is chosen field by field, never the request as it came: a check's query string is
 * an email address, a body is a list of them, and the Authorization header is a key. The route
 * is its pattern (`/v1/suppressions/:email`), not the path that was asked.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from 'fastify';
import { destination, symbols } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RequestLogOptions {
  /** `silent` logs nothing. @default 'info' */
  level?: LogLevel;
  /** Where the lines go. @default stdout */
  stream?: { write(line: string): unknown };
}

/** Lines to stdout are written in blocks of this many bytes at most... */
const BLOCK_BYTES = 4096;
/** ...or this often, whichever comes first. */
const FLUSH_MS = 200;

/** A destination that takes blocks of lines (pino's, sonic-boom). */
export interface BlockSink {
  write(block: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * A stream that joins lines into blocks of at least `blockChars` characters before they reach
 * `out`; `flush` and `flushSync` pass on the block begun. sonic-boom (4.2) appends each write
 * to its last string and measures that string's bytes on every write, which flattens the whole
 * growing string each time: ~4 us a line in bursts, 8x the cost of making the line.
 */
export function lineBlocks(out: BlockSink, blockChars: number): BlockSink & { write(line: string): boolean } {
  let lines: string[] = [];
  let chars = 0;
  const pass = (): void => {
    if (lines.length === 0) return;
    out.write(lines.join(''));
    lines = [];
    chars = 0;
  };
  return {
    write(line: string): boolean {
      lines.push(line);
      // Characters, not bytes: a block of non-ASCII lines is only larger.
      chars += line.length;
      if (chars >= blockChars) pass();
      return true;
    },
    // pino's `flush` and `final` call these.
    flush(cb) {
      pass();
      out.flush(cb);
    },
    flushSync() {
      pass();
      out.flushSync();
    },
  };
}

/**
 * Where lines go when no stream is given: stdout, in blocks (pino's own buffered destination,
 * fed by {@link lineBlocks}). A line a request written at once to stdout is a write on the
 * thread pool and a wake-up of the event loop per request, more than the rest of a check
 * costs; a block holds about 20 lines. `close` writes what is left; a process killed outright
 * loses what was not yet written: the block begun here and the one the destination holds.
 */
export function bufferedStdout(): { stream: RequestLogOptions['stream'] & object; close(): void } {
  const stream = lineBlocks(destination({ dest: 1, sync: false, minLength: BLOCK_BYTES }), BLOCK_BYTES);
  const timer = setInterval(() => stream.flush(), FLUSH_MS);
  timer.unref();
  return {
    stream,
    close() {
      clearInterval(timer);
      stream.flushSync();
    },
  };
}

/** fastify's `logger` option for {@link RequestLogOptions}; serializers keep URLs and headers out. */
export function loggerOptions(user: boolean | RequestLogOptions | undefined, stdout?: RequestLogOptions['stream']): FastifyServerOptions['logger'] {
  if (user === undefined || user === false) return false;
  const o = user === true ? {} : user;
  const stream = o.stream ?? stdout;
  return {
    level: o.level ?? 'info',
    ...(stream === undefined ? {} : { stream }),
    // fastify and its plugins log `req` with some warnings (a stream that failed): its URL
    // could hold an address, its headers a key.
    serializers: {
      req: (req: { method?: string; routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url }),
      res: (res: { statusCode?: number }) => ({ status: res.statusCode }),
    },
  };
}

/** Whether {@link RequestLogOptions} log the requests at all (`info` or a lower level). */
export function logs(user: boolean | RequestLogOptions | undefined): boolean {
  if (user === undefined || user === false) return false;
  const level = user === true ? 'info' : (user.level ?? 'info');
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf('info') && level !== 'silent';
}

/** A request's time as its line gives it: milliseconds to two decimals. */
const lineMs = (elapsedMs: number): number => Math.round(elapsedMs * 100) / 100;

/** The fields of a request's line. */
export function requestLine(method: string, route: string | null, status: number, elapsedMs: number, keyId: string | null): Record<string, unknown> {
  return { method, route, status, ms: lineMs(elapsedMs), keyId };
}

/** Logs each answered request at `info`. */
export function logRequests(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info(requestLine(request.method, request.routeOptions.url ?? null, reply.statusCode, reply.elapsedTime, request.apiKey?.id ?? null), 'request');
    done();
  });
}

/** Writes one request's line: the request id and the fields of {@link requestLine}. */
export type RequestLineWriter = (reqId: string, method: string, route: string, status: number, elapsedMs: number, keyId: string | null) => void;

/**
 * A request's line written straight to the logger's stream: the line, byte for byte, that
 * `logger.info({ reqId, ...requestLine(...) }, 'request')` writes (test/api/fast-eligibility.test.ts
 * compares them), without pino's generic path (message formatting, each field serialized by its
 * type), which cost more than a single check's lookup. Only for a logger that changes nothing in
 * its lines (no formatter, mixin, hook, prefix, nested key, redaction or serializer of these
 * fields), as {@link loggerOptions} makes it; undefined for any other, which logs through pino.
 */
export function requestLineWriter(logger: FastifyBaseLogger): RequestLineWriter | undefined {
  const l = logger as unknown as Record<symbol, unknown> & { isLevelEnabled?(level: string): boolean };
  const stream = l[symbols.streamSym] as ({ write(line: string): unknown } & Record<symbol, unknown>) | undefined;
  const level = (l[symbols.lsCacheSym] as Record<number, string> | undefined)?.[30];
  const end = l[symbols.endSym];
  const time = l[symbols.timeSym];
  const formatters = l[symbols.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[symbols.hooksSym] as { logMethod?: unknown; streamWrite?: unknown } | undefined;
  const serializers = (l[symbols.serializersSym] ?? {}) as Record<string, unknown>;
  const stringifiers = (l[symbols.stringifiersSym] ?? {}) as Record<string | symbol, unknown>;
  const fields = ['reqId', 'method', 'route', 'status', 'ms', 'keyId', 'msg'];
  if (stream === undefined || typeof stream.write !== 'function' || level !== '{"level":30' || typeof end !== 'string' || typeof time !== 'function' ||
    typeof l.isLevelEnabled !== 'function' || formatters === undefined || formatters.log !== undefined || l[symbols.mixinSym] ||
    hooks?.logMethod || hooks?.streamWrite || l[symbols.messageKeySym] !== 'msg' || l[symbols.nestedKeySym] || l[(symbols as unknown as Record<string, symbol>)['msgPrefixSym'] ?? Symbol('none')] !== undefined ||
    stream[symbols.needsMetadataGsym] === true || Reflect.ownKeys(stringifiers).length > 0 || fields.some((f) => serializers[f] !== undefined)) {
    return undefined;
  }
  const isLevelEnabled = l.isLevelEnabled.bind(l);
  const timeOf = time as () => string;
  return (reqId, method, route, status, elapsedMs, keyId) => {
    // The level can be changed at run time (`app.log.level = ...`), as pino would see it.
    if (!isLevelEnabled('info')) return;
    stream.write(`${level}${timeOf.call(l)}${l[symbols.chindingsSym] as string},"reqId":${JSON.stringify(reqId)},"method":${JSON.stringify(method)},` +
      `"route":${JSON.stringify(route)},"status":${status},"ms":${lineMs(elapsedMs)},"keyId":${keyId === null ? 'null' : JSON.stringify(keyId)},"msg":"request"${end}`);
  };
}
