import type { Ledger } from '../../src/store/store.js';

/**
 * `ledger`, counting the keys asked of `presentKeys`, and calling `onChunk` with each chunk's
 * number (from 1) as the chunk begins (under the write lock).
 */
export function watchedLedger(ledger: Ledger, onChunk: (n: number) => void = () => undefined): { ledger: Ledger; asked: () => number } {
  let asked = 0;
  let chunks = 0;
  const proxy = new Proxy(ledger, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop === 'presentKeys') {
        return (keys: readonly string[]) => {
          asked += keys.length;
          return target.presentKeys(keys);
        };
      }
      if (prop === 'beginChunk') {
        return (scope: string, jobId: string) => {
          onChunk(++chunks);
          return target.beginChunk(scope, jobId);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { ledger: proxy, asked: () => asked };
}
