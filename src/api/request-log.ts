/**
 * The request log: one JSON line per answered request, through fastify's logger (pino). What a
 * line holds is chosen field by field, never the request as it came: a check's query string is
 * an email address, a body is a list of them, and the Authorization header is a key. The route
 * is its pattern (`/v1/suppressions/:email`), not the path that was asked.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RequestLogOptions {
  /** `silent` logs nothing. @default 'info' */
  level?: LogLevel;
  /** Where the lines go. @default stdout */
  stream?: { write(line: string): unknown };
}

/** fastify's `logger` option for {@link RequestLogOptions}; serializers keep URLs and headers out. */
export function loggerOptions(user: boolean | RequestLogOptions | undefined): FastifyServerOptions['logger'] {
  if (user === undefined || user === false) return false;
  const o = user === true ? {} : user;
  return {
    level: o.level ?? 'info',
    ...(o.stream === undefined ? {} : { stream: o.stream }),
    // fastify and its plugins log `req` with some warnings (a stream that failed): its URL
    // could hold an address, its headers a key.
    serializers: {
      req: (req: { method?: string; routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url }),
      res: (res: { statusCode?: number }) => ({ status: res.statusCode }),
    },
  };
}

/** Logs each answered request at `info`. */
export function logRequests(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({
      method: request.method,
      route: request.routeOptions.url ?? null,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      keyId: request.apiKey?.id ?? null,
    }, 'request');
  });
}
