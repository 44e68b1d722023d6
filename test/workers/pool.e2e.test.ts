/**
 * The worker pool itself: imports and scrubs of the built package in real worker threads give
 * what the inline pool (which the unit tier uses) gives: the same counts, the same stored
 * entries, the same output files byte for byte.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeList } from '../../bench/generate.js';
import { ROOT, dumpStore, removeTempDirs, tempDir } from '../helpers.js';

const { runImport, runScrub, createInlinePool } = await import(join(ROOT, 'dist/src/index.js')) as typeof import('../../src/index.js');

afterAll(removeTempDirs);

/** The store's suppression entries (`e…` keys with their values); job records carry times. */
async function entries(db: string): Promise<Array<[string, string]>> {
  return (await dumpStore(db)).filter(([k]) => k.startsWith('e'));
}

const COUNTS = ['rows', 'valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed', 'eligible', 'suppressed'] as const;
/** The counts of an import or scrub report (the others are times and sizes). */
const counts = (r: object): Record<string, unknown> =>
  Object.fromEntries(COUNTS.filter((k) => k in r).map((k) => [k, (r as Record<string, unknown>)[k]]));

describe('worker threads and the inline pool', () => {
  it('import and scrub alike', async () => {
    const dir = await tempDir('optout-pool-');
    const list = join(dir, 'list.csv');
    await writeList({ rows: 40_000, seed: 9, out: list });
    const send = join(dir, 'send.csv');
    // The scrubbed list: half of it imported, half not, from another seed.
    await writeList({ rows: 20_000, seed: 10, out: join(dir, 'other.csv') });
    const listed = (await readFile(list, 'utf8')).split('\n');
    const other = (await readFile(join(dir, 'other.csv'), 'utf8')).split('\n');
    await writeFile(send, [...listed.slice(0, 10_001), ...other.slice(1)].join('\n'));

    const inline = createInlinePool({ threads: 2 });
    try {
      const small = { chunkBytes: 64 * 1024, confirm: { mode: 'yes' } as const };
      const real = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'real'), threads: 2, ...small });
      const same = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'inline'), pool: inline, ...small });
      expect(real.added).toBeGreaterThan(30_000);
      expect(counts(same)).toEqual(counts(real));
      expect(await entries(join(dir, 'inline'))).toEqual(await entries(join(dir, 'real')));

      const scrub = async (name: string, pool: { pool: typeof inline } | { threads: number }): Promise<[Record<string, unknown>, string, string]> => {
        const out = join(dir, `${name}-eligible.csv`);
        const removed = join(dir, `${name}-removed.csv`);
        const report = await runScrub({ source: { kind: 'file', path: send }, db: join(dir, 'real'), out, removed, chunkBytes: 64 * 1024, ...pool });
        return [counts(report), await readFile(out, 'utf8'), await readFile(removed, 'utf8')];
      };
      const [realReport, ...realFiles] = await scrub('real', { threads: 2 });
      const [inlineReport, ...inlineFiles] = await scrub('inline', { pool: inline });
      expect(realReport['suppressed']).toBeGreaterThan(5_000);
      expect(realReport['eligible']).toBeGreaterThan(5_000);
      expect(inlineReport).toEqual(realReport);
      expect(inlineFiles).toEqual(realFiles);
    } finally {
      await inline.destroy();
    }
  });
});
