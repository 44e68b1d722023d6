import { describe, expect, it } from 'vitest';
import { splitSource, type Chunk } from '../../src/source/chunks.js';
import { isOptoutError } from '../../src/errors.js';

async function* pieces(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function collect(chunks: AsyncIterable<Chunk>): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for await (const c of chunks) out.push({ ...c, bytes: Buffer.from(c.bytes) });
  return out;
}

const rows = Array.from({ length: 500 }, (_, i) => `user${i}@example.org,"Name, ${i}",x`).join('\n') + '\n';
const file = Buffer.from('Email,Name,Other\n' + rows);

describe('splitSource', () => {
  it('reads the header and cuts the rest into chunks that end after a line break', async () => {
    for (const readSize of [7, 100, 1 << 16]) {
      const { header, chunks } = await splitSource(pieces(file, readSize), { maxRecordBytes: 1 << 20, chunkBytes: 1024 });
      expect(header.names).toEqual(['Email', 'Name', 'Other']);
      expect(header.dialect).toEqual({ delimiter: ',', eol: 'lf' });
      expect(header.byteLength).toBe('Email,Name,Other\n'.length);
      const all = await collect(chunks);
      expect(Buffer.concat(all.map((c) => c.bytes)).toString()).toBe(rows);
      expect(all.at(-1)?.final).toBe(true);
      expect(all.slice(0, -1).every((c) => !c.final && c.bytes.at(-1) === 0x0a)).toBe(true);
      let offset = header.byteLength;
      for (const c of all) {
        expect(c.offset).toBe(offset);
        offset += c.bytes.length;
      }
    }
  });

  it('skips to a resume offset', async () => {
    const start = file.indexOf('user250@');
    const { chunks } = await splitSource(pieces(file, 333), { maxRecordBytes: 1 << 20, chunkBytes: 512, startOffset: start });
    const all = await collect(chunks);
    expect(all[0]?.offset).toBe(start);
    expect(Buffer.concat(all.map((c) => c.bytes)).toString()).toBe(file.subarray(start).toString());
  });

  it('hands over a record without line breaks once it passes the record limit, instead of buffering on', async () => {
    const huge = Buffer.from('email\n' + 'a'.repeat(10_000) + '\n');
    const { chunks } = await splitSource(pieces(huge, 100), { maxRecordBytes: 2048, chunkBytes: 1024 });
    const first = (await chunks.next()).value as Chunk;
    expect(first.final).toBe(false);
    expect(first.bytes.length).toBeGreaterThan(2048);
    expect(first.bytes.length).toBeLessThan(10_000);
  });

  it('detects the delimiter and CR line endings from the header line', async () => {
    const { header } = await splitSource(pieces(Buffer.from('E-post;Navn\rola@example.no;Ola\r'), 4), { maxRecordBytes: 1 << 20 });
    expect(header.dialect).toEqual({ delimiter: ';', eol: 'cr' });
    expect(header.names).toEqual(['E-post', 'Navn']);
  });

  it('reports an empty file as OPTOUT_ERR_CSV_PARSE', async () => {
    const err = await splitSource(pieces(Buffer.alloc(0), 1), { maxRecordBytes: 1024 }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_CSV_PARSE');
  });
});
