import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeToUtf8, normalizeEncoding } from '../../src/source/decode.js';
import { isOptoutError } from '../../src/errors.js';

/** Feeds bytes in pieces of `size` so that magic bytes and BOMs can straddle reads. */
async function* pieces(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function decode(buf: Buffer, encoding: Parameters<typeof decodeToUtf8>[1] = 'utf8', size = 3): Promise<string> {
  const parts: Buffer[] = [];
  for await (const p of decodeToUtf8(pieces(buf, size), encoding, 'test')) parts.push(p);
  return Buffer.concat(parts).toString('utf8');
}

const text = 'email,name\nJürgen@Bücher.de,Jürgen €\n';

describe('decodeToUtf8', () => {
  it('passes UTF-8 through and strips a UTF-8 byte-order mark, even split across reads', async () => {
    expect(await decode(Buffer.from(text))).toBe(text);
    for (const size of [1, 2, 3, 64]) {
      expect(await decode(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 'utf8', size)).toBe(text);
    }
  });

  it('recognises gzip by its magic bytes, whatever the name', async () => {
    expect(await decode(gzipSync(Buffer.from(text)), 'utf8', 1)).toBe(text);
    expect(await decode(gzipSync(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])))).toBe(text);
  });

  it('reports a damaged gzip stream as OPTOUT_ERR_SOURCE', async () => {
    const gz = gzipSync(Buffer.from(text.repeat(100)));
    const err = await decode(gz.subarray(0, gz.length - 30)).catch((e: unknown) => e);
    expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_SOURCE');
  });

  it('honours a UTF-16LE byte-order mark when no encoding was asked for', async () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    expect(await decode(utf16, 'utf8', 5)).toBe(text);
    expect(await decode(Buffer.from(text, 'utf16le'), 'utf16le', 7)).toBe(text);
  });

  it('honours a UTF-16BE byte-order mark when no encoding was asked for, and reads utf16be when asked', async () => {
    const be = Buffer.from(text, 'utf16le').swap16();
    for (const size of [1, 5, 64]) expect(await decode(Buffer.concat([Buffer.from([0xfe, 0xff]), be]), 'utf8', size)).toBe(text);
    expect(await decode(be, 'utf16be', 7)).toBe(text);
    expect(normalizeEncoding('UTF-16BE')).toBe('utf16be');
  });

  it('transcodes latin1 and windows-1252 (the euro sign is 0x80 there)', async () => {
    const latin1 = Buffer.from('email,name\nJ\xfcrgen@b\xfccher.de,\x80\n', 'latin1');
    expect(await decode(latin1, 'latin1')).toBe('email,name\nJürgen@bücher.de,€\n');
    expect(await decode(latin1, 'windows-1252')).toBe('email,name\nJürgen@bücher.de,€\n');
  });

  it('handles an empty input', async () => {
    expect(await decode(Buffer.alloc(0))).toBe('');
  });
});

describe('normalizeEncoding', () => {
  it('accepts the usual spellings and rejects others with OPTOUT_ERR_INVALID_OPTION', () => {
    expect(normalizeEncoding('UTF-8')).toBe('utf8');
    expect(normalizeEncoding('ISO-8859-1')).toBe('latin1');
    expect(normalizeEncoding('cp1252')).toBe('windows-1252');
    expect(normalizeEncoding('UTF-16LE')).toBe('utf16le');
    for (const bad of ['ebcdic', '', 42]) {
      let err: unknown;
      try {
        normalizeEncoding(bad);
      } catch (e) {
        err = e;
      }
      expect(isOptoutError(err) && err.code).toBe('OPTOUT_ERR_INVALID_OPTION');
    }
  });
});
