/**
 * Conditional GETs of answers that depend only on the store's entries and the query (the
 * export): the entity tag is the store's generation (bumped by every change of entries) and a
 * digest of the query; `Last-Modified` is when this process first saw that generation.
 *
 * The tag is weak: the same entries may be sent gzip-compressed or not.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export class GenerationClock {
  #generation = -1;
  #at = 0;

  /**
   * When `generation` was first seen, in whole seconds (HTTP dates have no finer unit). Each new
   * generation gets a later second than the one before, so that an `If-Modified-Since` from an
   * older answer never matches a newer generation.
   */
  modifiedAt(generation: number, now = Date.now()): number {
    if (generation !== this.#generation) {
      this.#at = Math.max(Math.floor(now / 1000) * 1000, this.#at + 1000);
      this.#generation = generation;
    }
    return this.#at;
  }
}

export function entityTag(generation: number, query: unknown): string {
  const digest = createHash('sha256').update(JSON.stringify(query)).digest('base64url').slice(0, 16);
  return `W/"${generation}-${digest}"`;
}

function opaque(tag: string): string {
  return tag.trim().replace(/^W\//, '');
}

/**
 * Sets `ETag` and `Last-Modified` and says whether the client's copy is current (then answer
 * 304). `If-None-Match` wins over `If-Modified-Since` when both are sent (RFC 9110, 13.2.2).
 */
export function isNotModified(request: FastifyRequest, reply: FastifyReply, tag: string, modifiedAt: number): boolean {
  void reply.header('etag', tag).header('last-modified', new Date(modifiedAt).toUTCString());
  const match = request.headers['if-none-match'];
  if (match !== undefined) {
    return match.trim() === '*' || match.split(',').some((t) => opaque(t) === opaque(tag));
  }
  const since = request.headers['if-modified-since'];
  if (since === undefined) return false;
  const at = Date.parse(since);
  return Number.isFinite(at) && modifiedAt <= at;
}
