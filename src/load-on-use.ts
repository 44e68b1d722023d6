/**
 * Packages of many modules that most processes never use, loaded by their first user instead of
 * at start-up: the ESM loader's cost is per module, and `optout check` or a server that never
 * fetches a URL would otherwise load undici (~130 modules) and piscina for nothing.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A getter of the CommonJS package `name`, which loads it on its first call. */
export function loadOnUse<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
