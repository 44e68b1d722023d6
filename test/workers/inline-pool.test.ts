/**
 * The inline pool runs the workers' own task functions on the calling thread: the same results
 * as calling them, the pool's asynchrony and error code, and a pool passed to an import or a
 * scrub stays the caller's.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isOptoutError } from '../../src/errors.js';
import { runImport } from '../../src/pipeline/run-import.js';
import { runScrub } from '../../src/scrub/run-scrub.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import processChunk, { dedupBucket } from '../../src/workers/import-worker.js';
import { scrubChunk } from '../../src/workers/scrub-worker.js';
import { bucketText, removeTempDirs, tempDir } from '../helpers.js';

afterAll(removeTempDirs);

const rows = ['a@example.com', 'not an address', 'B@Example.com', 'a@example.com', '"quoted@example.org"'];
const shared = (text: string): Buffer => {
  const b = Buffer.from(new SharedArrayBuffer(Buffer.byteLength(text)));
  b.write(text);
  return b;
};
const task = { delimiter: 44, column: 0, maxRecordBytes: 1 << 20, final: true, substitutes: false };

describe('createInlinePool', () => {
  it('runs processChunk, scrubChunk and dedupBucket with their own results', async () => {
    const pool = createInlinePool();
    const bytes = shared(rows.join('\n') + '\n');
    expect(await pool.run({ ...task, bytes, bucketBits: 2 })).toEqual(processChunk({ ...task, bytes, bucketBits: 2 }));
    const scrubbed = await pool.scrub({ ...task, bytes });
    expect(scrubbed).toEqual(scrubChunk({ ...task, bytes }));
    // As posted by the worker pool: each typed array owns its buffer.
    const buffers = [scrubbed.spans, scrubbed.fields, scrubbed.keyEnds, scrubbed.hashes].map((a) => a.buffer);
    expect(new Set(buffers).size).toBe(4);
    for (const a of [scrubbed.spans, scrubbed.fields, scrubbed.keyEnds, scrubbed.hashes]) expect(a.byteLength).toBe(a.buffer.byteLength);

    const dir = await tempDir('optout-inline-pool-');
    const path = join(dir, 'bucket');
    await writeFile(path, 'k1\nk2\tK2@x\nk1\n');
    const bucket = { path, codec: { prefix: 's!*!', withHash: true } };
    expect(await pool.dedupBucket(bucket)).toEqual(dedupBucket(bucket));
    await pool.destroy();
  });

  it('sees shared chunk bytes as a worker does: the same memory, as a Uint8Array', async () => {
    const pool = createInlinePool();
    const bytes = shared('a@example.com\nb@example.com\n');
    const result = await pool.scrub({ ...task, bytes });
    // The spans point into the caller's bytes, which the main thread copies rows from.
    expect(bytes.subarray(result.spans[3] as number, result.spans[4] as number).toString()).toBe('b@example.com');
    await pool.destroy();
  });

  it('settles tasks asynchronously, in submission order', async () => {
    const pool = createInlinePool({ threads: 3 });
    expect(pool.threads).toBe(3);
    const order: number[] = [];
    let returned = false;
    const all = [0, 1, 2].map((i) => pool.run({ ...task, bytes: shared(`x${i}@example.com\n`), bucketBits: 0 }).then((r) => {
      expect(returned).toBe(true);
      order.push(i);
      return r;
    }));
    returned = true;
    const results = await Promise.all(all);
    expect(order).toEqual([0, 1, 2]);
    expect(results.map((r) => bucketText(r.buckets, 0))).toEqual(['x0@example.com\n', 'x1@example.com\n', 'x2@example.com\n']);
    await pool.destroy();
  });

  it('fails a task as the worker pool does, with OPTOUT_ERR_WORKER, and then keeps running', async () => {
    const pool = createInlinePool();
    const dir = await tempDir('optout-inline-pool-');
    await mkdir(join(dir, 'a-folder'));
    const err = await pool.dedupBucket({ path: join(dir, 'a-folder'), codec: { prefix: '', withHash: false } }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_WORKER');
    expect((await pool.run({ ...task, bytes: shared('y@example.com\n'), bucketBits: 0 })).valid).toBe(1);
    await pool.destroy();
    const late = await pool.run({ ...task, bytes: shared('z@example.com\n'), bucketBits: 0 }).catch((e: unknown) => e);
    expect(isOptoutError(late) && late.code).toBe('OPTOUT_ERR_WORKER');
  });

  it('rejects a thread count below 1', () => {
    for (const threads of [0, 1.5, -1]) {
      let err: unknown;
      try {
        createInlinePool({ threads });
      } catch (e) {
        err = e;
      }
      expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    }
  });
});

describe('the pool option', () => {
  it('runImport and runScrub use a passed pool and leave it running', async () => {
    const dir = await tempDir('optout-inline-pool-');
    const list = join(dir, 'list.csv');
    await writeFile(list, ['email', ...rows].join('\n') + '\n');
    const db = join(dir, 'db');
    const pool = createInlinePool();
    let tasks = 0;
    const counted = { ...pool, run: (t: Parameters<typeof pool.run>[0]) => (tasks++, pool.run(t)) };
    const report = await runImport({ source: { kind: 'file', path: list }, db, confirm: { mode: 'yes' }, pool: counted });
    expect(report).toMatchObject({ rows: 5, valid: 4, invalid: 1, unique: 3, duplicates: 1, added: 3 });
    expect(tasks).toBeGreaterThan(0);

    const send = join(dir, 'send.csv');
    await writeFile(send, 'email\na@example.com\nc@example.com\n');
    const scrub = await runScrub({ source: { kind: 'file', path: send }, db, out: join(dir, 'out.csv'), pool });
    expect(scrub).toMatchObject({ rows: 2, eligible: 1, suppressed: 1 });
    // Still the caller's: it runs tasks after both.
    expect((await pool.run({ ...task, bytes: shared('w@example.com\n'), bucketBits: 0 })).valid).toBe(1);
    await pool.destroy();
  });

  it('is validated by runImport and runScrub', async () => {
    const dir = await tempDir('optout-inline-pool-');
    const list = join(dir, 'list.csv');
    await writeFile(list, 'email\na@example.com\n');
    for (const pool of [{}, { ...createInlinePool(), threads: 0 }, 'inline', null]) {
      const bad = pool as unknown as ReturnType<typeof createInlinePool>;
      const imported = await runImport({ source: { kind: 'file', path: list }, db: join(dir, 'db'), confirm: { mode: 'yes' }, pool: bad }).catch((e: unknown) => e);
      expect(isOptoutError(imported) && imported.code).toBe('OPTOUT_ERR_INVALID_OPTION');
      const scrubbed = await runScrub({ source: { kind: 'file', path: list }, db: join(dir, 'db'), out: join(dir, 'out.csv'), pool: bad }).catch((e: unknown) => e);
      expect(isOptoutError(scrubbed) && scrubbed.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    }
  });
});
