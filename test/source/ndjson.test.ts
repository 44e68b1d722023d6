import { describe, expect, it } from 'vitest';
import { readNdjson, type Row } from '../../src/source/ndjson.js';
import { splitNdjson } from '../../src/source/records.js';

function read(text: string | Buffer, final = true, maxRecordBytes = 1024) {
  const rows: Array<[Row, number, boolean]> = [];
  const result = readNdjson(Buffer.from(text), { final, maxRecordBytes }, (row, line, undecodable) => rows.push([row, line, undecodable]));
  return { rows, result };
}

async function* pieces(text: string, size: number): AsyncGenerator<Buffer> {
  const all = Buffer.from(text);
  for (let i = 0; i < all.length; i += size) yield all.subarray(i, i + size);
}

describe('readNdjson: the rows of whole lines', () => {
  it('a row per record with its line; empty lines, white space and CR passed over; lines count line feeds', () => {
    const { rows, result } = read('{"a":1}\r\n\n  \r\n {"a":2} \n{"a":3}');
    expect(rows.map(([r, line]) => [r['a'], line])).toEqual([[1, 0], [2, 3], [3, 4]]);
    expect(result).toEqual({ consumed: 31, records: 3, lines: 4 });
  });

  it('stops before a last line without its line feed unless final', () => {
    expect(read('{"a":1}\n{"a":', false).result).toEqual({ consumed: 8, records: 1, lines: 1 });
    expect(read('{"a":1}\n{"a":2}', false).rows).toHaveLength(1);
    expect(read('{"a":1}\n{"a":2}', true).result).toEqual({ consumed: 15, records: 2, lines: 1 });
  });

  it('an SES event is a row per recipient', () => {
    const event = { notificationType: 'Bounce', mail: { destination: [] }, bounce: { bounceType: 'Permanent', bouncedRecipients: [{ emailAddress: 'a@x.org' }, { emailAddress: 'b@x.org' }] } };
    const { rows, result } = read(`{"email":"c@x.org"}\n${JSON.stringify(event)}\n`);
    expect(rows.map(([r, line]) => [r['email'] ?? r['emailAddress'], line])).toEqual([['c@x.org', 0], ['a@x.org', 1], ['b@x.org', 1]]);
    expect(result.records).toBe(3);
  });

  it('a line that is not a JSON object stops the reading where it starts', () => {
    for (const bad of ['{"a":', '[1]', '"x"', 'null', '{"a":1} {"b":2}']) {
      const { rows, result } = read(`{"a":1}\n\n${bad}\n{"a":2}\n`);
      expect(rows, bad).toHaveLength(1);
      expect(result, bad).toMatchObject({ consumed: 9, records: 1, lines: 2, error: { code: 'OPTOUT_ERR_JSON_PARSE', line: 2, record: 1 } });
    }
  });

  it('a line over maxRecordBytes, whole or cut off, is too large', () => {
    const long = `{"a":"${'x'.repeat(100)}"}`;
    expect(read(`{"a":1}\n${long}\n`, true, 64).result).toMatchObject({ consumed: 8, records: 1, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 1 } });
    expect(read(`{"a":1}\n${long}`, false, 64).result).toMatchObject({ consumed: 8, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE' } });
    expect(read(`{"a":1}\n${long}\n`, true, long.length).result.error).toBeUndefined();
  });

  it('marks the rows of a line with bytes that are not UTF-8', () => {
    const text = Buffer.concat([Buffer.from('{"e":"ok@x.org"}\n{"e":"b'), Buffer.from([0xff]), Buffer.from('d@x.org"}\n{"e":"\uFFFD@x.org"}\n')]);
    expect(read(text).rows.map(([r, , bad]) => [r['e'], bad])).toEqual([['ok@x.org', false], ['b\uFFFDd@x.org', true], ['\uFFFD@x.org', false]]);
  });
});

describe('splitNdjson', () => {
  it('the first record\'s keys, a sample of the first rows as cells, and chunks of whole lines from the first byte', async () => {
    const lines = ['', JSON.stringify({ email: 'a@x.org', n: 1, tags: ['t'] }), JSON.stringify({ n: 2, email: 'b@x.org', more: true }),
      ...Array.from({ length: 300 }, (_, i) => JSON.stringify({ email: `u${i}@x.org`, n: null }))];
    const text = lines.join('\n') + '\n';
    const split = await splitNdjson(pieces(text, 100), { maxRecordBytes: 1024, chunkBytes: 1024 });
    expect(split.header.names).toEqual(['email', 'n', 'tags']);
    expect((await split.sample(3))).toEqual([['a@x.org', '1', '["t"]'], ['b@x.org', '2', ''], ['u0@x.org', '', '']]);
    const chunks: Array<{ bytes: Buffer; offset: number }> = [];
    for await (const c of split.chunks) chunks.push(c);
    expect(Buffer.concat(chunks.map((c) => c.bytes)).toString()).toBe(text);
    expect(chunks.map((c) => c.offset)).toEqual(chunks.map((_, i) => chunks.slice(0, i).reduce((n, c) => n + c.bytes.length, 0)));
    for (const c of chunks.slice(0, -1)) expect(c.bytes.at(-1)).toBe(0x0a);
  });

  it('a broken line before the first record is an error with its line; a source without records has no keys', async () => {
    await expect(splitNdjson(pieces('\n\n{"a": tru\n', 4), { maxRecordBytes: 1024 })).rejects.toMatchObject({ code: 'OPTOUT_ERR_JSON_PARSE', location: { line: 3 } });
    await expect(splitNdjson(pieces(`{"a":"${'x'.repeat(200)}`, 16), { maxRecordBytes: 64 })).rejects.toMatchObject({ code: 'OPTOUT_ERR_RECORD_TOO_LARGE' });
    expect((await splitNdjson(pieces('\n  \n', 2), { maxRecordBytes: 1024 })).header.names).toEqual([]);
    expect((await splitNdjson(pieces('{}\n{"a":1}\n', 2), { maxRecordBytes: 1024 })).header.names).toEqual([]);
  });
});
