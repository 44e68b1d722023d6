import { createReadStream, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { OptoutError } from '../errors.js';
import { decodeToUtf8, type InputEncoding } from './decode.js';

/** Where an import's bytes come from. URLs and HTTP uploads plug in here as further kinds. */
export type SourceSpec = { kind: 'file'; path: string } | { kind: 'stdin'; stream: Readable };

export interface SourceInfo {
  /** A label for reports: the file name, or `stdin`. */
  name: string;
  /** Absolute path, for files. */
  path: string | null;
  /** Size in bytes as stored (compressed size for .gz), when known. */
  size: number | null;
  mtimeMs: number | null;
}

export interface OpenedSource {
  info: SourceInfo;
  /** The content as UTF-8 bytes: decompressed, transcoded, without a byte-order mark. */
  bytes: AsyncIterable<Buffer>;
  /**
   * Whether the bytes were transcoded by a decoder that replaces what it cannot decode with
   * U+FFFD (see ChunkTask's `substitutes`); known once the first bytes have been read.
   */
  substitutes(): boolean;
  /** Source bytes read so far (before decompression), for progress against `info.size`. */
  bytesRead(): number;
  /** Releases the file, read to the end or not (stdin is left to its owner). */
  close(): void;
}

const READ_CHUNK = 1024 * 1024;

export function describeSource(spec: SourceSpec): SourceInfo {
  if (spec.kind === 'stdin') return { name: 'stdin', path: null, size: null, mtimeMs: null };
  const path = resolve(spec.path);
  let st;
  try {
    st = statSync(path);
  } catch (cause) {
    throw new OptoutError('OPTOUT_ERR_SOURCE', `Cannot read ${spec.path}: ${(cause as NodeJS.ErrnoException).code === 'ENOENT' ?
      'no such file' : (cause as Error).message}`, { cause });
  }
  if (!st.isFile()) throw new OptoutError('OPTOUT_ERR_SOURCE', `${spec.path} is not a file`);
  return { name: basename(path), path, size: st.size, mtimeMs: st.mtimeMs };
}

/** Opens a source for one pass. Gzip is recognised by its magic bytes, whatever the name. */
export function openSource(spec: SourceSpec, encoding: InputEncoding): OpenedSource {
  const info = describeSource(spec);
  const raw: Readable = spec.kind === 'stdin' ? spec.stream : createReadStream(info.path as string, { highWaterMark: READ_CHUNK });
  let read = 0;
  let decoded: InputEncoding = encoding;
  async function* counted(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of raw as AsyncIterable<Buffer>) {
        read += chunk.length;
        yield chunk;
      }
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_SOURCE', `Reading ${info.name} failed: ${(cause as Error).message}`, { cause });
    }
  }
  return {
    info,
    bytes: decodeToUtf8(counted(), encoding, info.name, (effective) => {
      decoded = effective;
    }),
    // windows-1252 maps every byte: only the UTF-16 decoder ever substitutes.
    substitutes: () => decoded === 'utf16le',
    bytesRead: () => read,
    close: () => {
      if (spec.kind === 'file') raw.destroy();
    },
  };
}
