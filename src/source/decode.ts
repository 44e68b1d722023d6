import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { OptoutError, describeValue } from '../errors.js';

export type InputEncoding = 'utf8' | 'latin1' | 'windows-1252' | 'utf16le';

const ENCODING_ALIASES: Record<string, InputEncoding> = {
  'utf8': 'utf8', 'utf-8': 'utf8',
  'latin1': 'latin1', 'iso-8859-1': 'latin1', 'iso8859-1': 'latin1', 'l1': 'latin1',
  'windows-1252': 'windows-1252', 'cp1252': 'windows-1252', 'win1252': 'windows-1252',
  'utf16le': 'utf16le', 'utf-16le': 'utf16le', 'ucs2': 'utf16le', 'ucs-2': 'utf16le',
};

export function normalizeEncoding(value: unknown): InputEncoding {
  const found = typeof value === 'string' ? ENCODING_ALIASES[value.toLowerCase()] : undefined;
  if (found === undefined) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`encoding\` to be one of utf8, latin1, windows-1252, utf16le, got ${describeValue(value)}`);
  }
  return found;
}

/** WHATWG decoder labels; its "latin1" is windows-1252, which is what such exports really are. */
const DECODER_LABEL: Record<Exclude<InputEncoding, 'utf8'>, string> = {
  'latin1': 'windows-1252',
  'windows-1252': 'windows-1252',
  'utf16le': 'utf-16le',
};

async function* prepend(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/** Reads until at least `n` bytes are buffered (or the input ends) so magic bytes can be seen whole. */
async function peek(it: AsyncIterator<Buffer>, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const next = await it.next();
    if (next.done) break;
    parts.push(next.value);
    len += next.value.length;
  }
  return Buffer.concat(parts, len);
}

function gunzip(input: AsyncIterable<Buffer>, name: string): AsyncIterable<Buffer> {
  const out = pipeline(Readable.from(input, { objectMode: false }), createGunzip(), () => undefined);
  return (async function* () {
    try {
      for await (const chunk of out as AsyncIterable<Buffer>) yield chunk;
    } catch (cause) {
      if (cause instanceof OptoutError) throw cause;
      throw new OptoutError('OPTOUT_ERR_SOURCE', `${name} is not a valid gzip file: ${(cause as Error).message}`, { cause });
    }
  })();
}

/**
 * Turns source bytes into UTF-8 without a byte-order mark: gunzips when the gzip magic is
 * present, honours a UTF-16 BOM when no other encoding was asked for, and transcodes
 * single-byte encodings. Everything downstream then only ever sees UTF-8. `onDecided` hears the
 * encoding actually read (a UTF-16 BOM overrides `utf8`) once the first bytes are in.
 */
export async function* decodeToUtf8(input: AsyncIterable<Buffer>, encoding: InputEncoding, name: string,
  onDecided: (effective: InputEncoding) => void = () => undefined): AsyncGenerator<Buffer> {
  let it = input[Symbol.asyncIterator]();
  let head = await peek(it, 4);
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    it = gunzip(prepend(head, it), name)[Symbol.asyncIterator]();
    head = await peek(it, 4);
  }
  let effective = encoding;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
    head = head.subarray(3);
  } else if (head[0] === 0xff && head[1] === 0xfe && encoding === 'utf8') {
    effective = 'utf16le';
  }
  onDecided(effective);
  if (effective === 'utf8') {
    yield* prepend(head, it);
    return;
  }
  // TextDecoder drops a UTF-16 BOM itself and keeps multi-byte state across chunks.
  const decoder = new TextDecoder(DECODER_LABEL[effective]);
  for await (const chunk of prepend(head, it)) {
    const text = decoder.decode(chunk, { stream: true });
    if (text.length > 0) yield Buffer.from(text, 'utf8');
  }
  const rest = decoder.decode();
  if (rest.length > 0) yield Buffer.from(rest, 'utf8');
}
