/**
 * Which methods each path takes, from the routes as they are registered: a known path asked
 * with another method is a 405 with `Allow` (not a 404, which reads as "wrong URL"), and
 * `OPTIONS` on it answers 204 with `Allow`. Neither needs a key: they tell what the API is,
 * nothing about the list.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

interface PathMethods {
  pattern: RegExp;
  methods: Set<string>;
}

/** `/v1/imports/:id/confirm` -> a pattern for the raw (still percent-encoded) request path. */
function patternOf(url: string): RegExp {
  const parts = url.split('/').map((p) => (p.startsWith(':') ? '[^/]+' : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('/')}/?$`);
}

export class RouteMethods {
  readonly #paths = new Map<string, PathMethods>();

  /** Records every route as fastify registers it (HEAD included, when fastify adds it). */
  constructor(app: FastifyInstance) {
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      let entry = this.#paths.get(route.url);
      if (entry === undefined) {
        entry = { pattern: patternOf(route.url), methods: new Set() };
        this.#paths.set(route.url, entry);
      }
      for (const m of methods) entry.methods.add(m.toUpperCase());
    });
  }

  /** The `Allow` value of the request's path, or undefined when no route has that path. */
  allowOf(rawUrl: string): string | undefined {
    const path = rawUrl.split('?')[0] ?? '';
    const methods = new Set<string>();
    for (const { pattern, methods: m } of this.#paths.values()) {
      if (pattern.test(path)) for (const x of m) methods.add(x);
    }
    if (methods.size === 0) return undefined;
    methods.add('OPTIONS');
    return [...methods].sort().join(', ');
  }

  /**
   * For the not-found handler: answers OPTIONS and a wrong method on a known path, and says
   * whether it did.
   */
  answer(request: FastifyRequest, reply: FastifyReply): boolean {
    const allow = this.allowOf(request.raw.url ?? '');
    if (allow === undefined) return false;
    void reply.header('allow', allow);
    if (request.method === 'OPTIONS') {
      void reply.code(204).send();
      return true;
    }
    throw new ApiError('OPTOUT_ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed here; allowed: ${allow}`);
  }
}
