import { describe, expect, it } from 'vitest';
import processChunk, { dedupBucket } from '../../src/workers/import-worker.js';
import type { ChunkPool } from '../../src/workers/pool.js';
import { scrubChunk } from '../../src/workers/scrub-worker.js';
import { splitSource } from '../../src/source/chunks.js';
import { scanChunks, scanWith, type ScannedChunk } from '../../src/pipeline/scan.js';
import { isOptoutError } from '../../src/errors.js';
import { bucketText } from '../helpers.js';

/** The worker functions run in-process: the scan loop's ordering and carry logic is what is under test. */
function inProcessPool(threads = 2): ChunkPool {
  return {
    threads,
    async run(task) {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      return processChunk(task);
    },
    dedupBucket: async (task) => dedupBucket(task),
    scrub: async (task) => scrubChunk(task),
    destroy: async () => undefined,
  };
}

async function* pieces(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

const params = { delimiter: 44, eol: 'lf' as const, column: 0, maxRecordBytes: 1 << 20, bucketBits: 0, substitutes: false };

async function scanAll(file: Buffer, chunkBytes: number): Promise<ScannedChunk[]> {
  const { header, chunks } = await splitSource(pieces(file, 97), { maxRecordBytes: 1 << 20, chunkBytes });
  const out: ScannedChunk[] = [];
  for await (const s of scanChunks(chunks, inProcessPool(), params, { line: header.lines + 1, row: 0 })) out.push(s);
  return out;
}

/** With one bucket, a chunk's bucket text is its valid keys in row order. */
const keysOf = (s: ScannedChunk): string[] => bucketText(s.result.buckets, 0).split('\n').filter(Boolean);

// Every third record has a quoted newline, so chunk cuts keep landing inside quoted fields.
const records = Array.from({ length: 400 }, (_, i) => i % 3 === 0 ? `"user${i}@example.org","line one\nline two"` : `user${i}@example.org,plain`);
const file = Buffer.from('email,note\n' + records.join('\n') + '\n');

describe('scanChunks', () => {
  it('yields every record once, in order, when cuts fall inside quoted newlines', async () => {
    for (const chunkBytes of [64, 100, 257, 4096]) {
      const scanned = await scanAll(file, chunkBytes);
      expect(scanned.flatMap(keysOf)).toEqual(records.map((_, i) => `user${i}@example.org`));
      expect(scanned.reduce((n, s) => n + s.result.records, 0)).toBe(400);
      expect(scanned.at(-1)?.endOffset).toBe(file.length);
    }
  });

  it('places chunks at the right line and row', async () => {
    const bad = Buffer.from('email\n' + Array.from({ length: 50 }, (_, i) => i === 37 ? 'not-an-address' : `"u${i}@x.org"`).join('\n') + '\n');
    const scanned = await scanAll(bad, 64);
    const rejects = scanned.flatMap((s) => s.result.rejects.map((r) => ({ line: s.baseLine + r.line, row: s.baseRow + r.record + 1 })));
    expect(rejects).toEqual([{ line: 39, row: 38 }]);
  });

  it('delivers the records before a broken one, then throws with its line', async () => {
    const broken = Buffer.from('email\n' + Array.from({ length: 30 }, (_, i) => `u${i}@x.org`).join('\n') + '\n"unclosed@x.org\nmore\n');
    const seen: string[] = [];
    const err = await (async () => {
      const { chunks } = await splitSource(pieces(broken, 50), { maxRecordBytes: 1 << 20, chunkBytes: 64 });
      for await (const s of scanChunks(chunks, inProcessPool(), params, { line: 2, row: 0 })) seen.push(...keysOf(s));
    })().catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_CSV_PARSE');
    expect(isOptoutError(err) && err.location?.line).toBe(32);
    expect(seen).toHaveLength(30);
  });
});

describe('scanWith', () => {
  /**
   * A task runner that counts the tasks started and not yet settled, as piscina does: a dropped
   * speculative task still holds its place in the pool's queue until it settles.
   */
  function countingRun(): { run: (bytes: Buffer, final: boolean) => Promise<ReturnType<typeof processChunk>>; peak: () => number; now: () => number } {
    let outstanding = 0;
    let peak = 0;
    const run = async (bytes: Buffer, final: boolean): Promise<ReturnType<typeof processChunk>> => {
      outstanding++;
      peak = Math.max(peak, outstanding);
      try {
        await new Promise((r) => setTimeout(r, Math.random() * 4));
        return processChunk({ ...params, maxRecordBytes: 2048, bytes, final });
      } finally {
        outstanding--;
      }
    };
    return { run, peak: () => peak, now: () => outstanding };
  }

  it('never has more tasks outstanding than its bound, dropped speculative ones included, and leaves none behind', async () => {
    // A long quoted record with line breaks after some good rows: many carries, then the error.
    const big = 'email,note\n' + records.join('\n') + '\n"big@example.org","' + 'a line of text\n'.repeat(400) + '"\n';
    for (const threads of [1, 2, 3]) {
      const counter = countingRun();
      const { header, chunks } = await splitSource(pieces(Buffer.from(big), 97), { maxRecordBytes: 2048, chunkBytes: 64 });
      let keys = 0;
      const err = await (async () => {
        for await (const s of scanWith(chunks, threads, counter.run, { line: header.lines + 1, row: 0 })) keys += keysOf(s).length;
      })().catch((e: unknown) => e);
      expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_RECORD_TOO_LARGE');
      expect(isOptoutError(err) && err.location?.line).toBe(big.slice(0, big.indexOf('"big@')).split('\n').length);
      expect(keys).toBe(records.length);
      expect(counter.peak()).toBeLessThanOrEqual(Math.max(2, threads * threads));
      // The pool is free for the next phase (the dedup tasks) once the scan has ended.
      expect(counter.now()).toBe(0);
    }
  });
});
