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
      expect(header.dialect).toEqual({ delimiter: ',' });
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

  it('detects the delimiter from a header line that ends with a lone CR', async () => {
    const { header } = await splitSource(pieces(Buffer.from('E-post;Navn\rola@example.no;Ola\r'), 4), { maxRecordBytes: 1 << 20 });
    expect(header.dialect).toEqual({ delimiter: ';' });
    expect(header.names).toEqual(['E-post', 'Navn']);
  });

  it('cuts mixed line breaks after an LF or a CR, never between the CR and the LF of a CRLF', async () => {
    const breaks = ['\n', '\r\n', '\r'];
    const mixed = Array.from({ length: 600 }, (_, i) => `user${i}@example.org,x${breaks[i % 3] as string}`).join('');
    for (const readSize of [5, 64, 1000]) {
      const { header, chunks } = await splitSource(pieces(Buffer.from('Email,Other\r' + mixed), readSize), { maxRecordBytes: 1 << 20, chunkBytes: 256 });
      expect(header.byteLength).toBe('Email,Other\r'.length);
      const all = await collect(chunks);
      expect(Buffer.concat(all.map((c) => c.bytes)).toString()).toBe(mixed);
      expect(all.length).toBeGreaterThan(10);
      for (const c of all.slice(0, -1)) {
        const last = c.bytes.at(-1);
        expect(last === 0x0a || last === 0x0d).toBe(true);
        const nextFirst = all[all.indexOf(c) + 1]?.bytes[0];
        if (last === 0x0d) expect(nextFirst).not.toBe(0x0a);
      }
    }
  });

  it('drops empty lines before the header as they arrive, with their bytes and lines counted', async () => {
    for (const lead of ['\n', '\r\n', '\r', '\n\r\r\n']) {
      const text = lead.repeat(1000) + 'a;email\nx;y@example.org\n';
      for (const readSize of [1, 3, 4096]) {
        const { header, chunks } = await splitSource(pieces(Buffer.from(text), readSize), { maxRecordBytes: 1 << 20 });
        expect(header.names).toEqual(['a', 'email']);
        expect(header.dialect.delimiter).toBe(';');
        expect(header.byteLength).toBe(text.indexOf('x;'));
        expect(header.lines).toBe(1000 * (lead === '\n\r\r\n' ? 3 : 1) + 1);
        expect(header.bytes.toString()).toBe('a;email\n');
        expect(Buffer.concat((await collect(chunks)).map((c) => c.bytes)).toString()).toBe('x;y@example.org\n');
      }
    }
  });

  it('reads past 128 MiB of empty lines before the header without buffering them', async () => {
    const blank = Buffer.alloc(1 << 16, 0x0a);
    const pieceCount = 2048;
    let held = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < pieceCount; i++) yield blank;
      yield Buffer.from('email\na@example.org\n');
    }
    const { header, chunks } = await splitSource(source(), { maxRecordBytes: 1 << 20 });
    for await (const c of chunks) held = Math.max(held, c.bytes.length);
    expect(header.names).toEqual(['email']);
    expect(header.byteLength).toBe(pieceCount * blank.length + 'email\n'.length);
    expect(header.lines).toBe(pieceCount * blank.length + 1);
    expect(header.bytes.length).toBe('email\n'.length);
    expect(held).toBe('a@example.org\n'.length);
  });

  it('reports an empty file as OPTOUT_ERR_CSV_PARSE', async () => {
    const err = await splitSource(pieces(Buffer.alloc(0), 1), { maxRecordBytes: 1024 }).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_CSV_PARSE');
  });
});
