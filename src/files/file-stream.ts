/**
 * A file written through a stream, removed when the writing fails.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';

/** What `createWriteStream` takes, as far as the callers use it. */
export interface FileStreamOptions {
  flags?: string;
  mode?: number;
  /** fsync before close, for a file renamed into place afterwards. */
  flush?: boolean;
}

/**
 * Runs `write` with a write stream on `path`. When `write` fails, waits for the stream to close
 * before removing the file: a stream destroyed while its file is still opening creates the file
 * afterwards, so removing it at once could leave a partial file behind.
 */
export async function writeFileStream(path: string, options: FileStreamOptions, write: (out: WriteStream) => Promise<void>): Promise<void> {
  const out = createWriteStream(path, options);
  try {
    await write(out);
  } catch (err) {
    if (!out.destroyed) out.destroy();
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await rm(path, { force: true });
    throw err;
  }
}
