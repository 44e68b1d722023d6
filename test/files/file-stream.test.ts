import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileStream } from '../../src/files/file-stream.js';
import { removeTempDirs, tempDir } from '../helpers.js';

afterAll(removeTempDirs);

async function* failingAfter(pieces: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < pieces; i++) yield Buffer.from(`row ${i}\n`);
  throw new Error('source broke');
}

describe('writeFileStream', () => {
  it('leaves the whole file when the writing succeeds', async () => {
    const dir = await tempDir('optout-file-');
    const path = join(dir, 'out');
    await writeFileStream(path, {}, (out) => pipeline(Readable.from(['a\n', 'b\n']), out));
    expect(await readFile(path, 'utf8')).toBe('a\nb\n');
  });

  // From a failure before the file has opened to one deep into the writing.
  it.each([0, 1, 1000])('removes the file when the source fails after %i pieces, whenever that is', async (pieces) => {
    const dir = await tempDir('optout-file-');
    for (let i = 0; i < 20; i++) {
      await expect(writeFileStream(join(dir, `out-${i}`), { mode: 0o600 }, (out) => pipeline(failingAfter(pieces), out)))
        .rejects.toThrow('source broke');
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes the file when the writer fails without touching the stream', async () => {
    const dir = await tempDir('optout-file-');
    for (let i = 0; i < 20; i++) {
      await expect(writeFileStream(join(dir, `out-${i}`), {}, () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    }
    expect(await readdir(dir)).toEqual([]);
  });
});
