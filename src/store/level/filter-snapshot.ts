import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurably } from '../../files/durable-file.js';
import { KeyFilter } from '../../filter/bloom.js';

/** 2: the header holds the token of the generation (filter-log.ts); older snapshots are ignored. */
const MAGIC = 'OPTOUTF2';
const TOKEN_BYTES = 8;
const HEADER_BYTES = 16 + TOKEN_BYTES;
export const FILTER_SNAPSHOT_FILE = 'filter.snapshot';

/**
 * The filter snapshot names the store generation it covers, and that generation's token in the
 * filter log. The store bumps its generation in the same LevelDB batch as every change, so a
 * snapshot whose generation and token are the store's current ones is proven to cover every
 * stored key; an older one is brought up to date from the log, or ignored (filter-rebuild.ts).
 * Returns it whatever generation it names; undefined when there is none or it is damaged.
 */
export function readFilterSnapshot(dir: string): { generation: number; token: string; filter: KeyFilter } | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(join(dir, FILTER_SNAPSHOT_FILE));
  } catch {
    return undefined;
  }
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const generation = buf.readDoubleLE(8);
  if (!Number.isSafeInteger(generation) || generation < 0) return undefined;
  const token = buf.toString('hex', 16, 16 + TOKEN_BYTES);
  try {
    return { generation, token, filter: KeyFilter.fromBuffer(buf.subarray(HEADER_BYTES)) };
  } catch {
    // A damaged snapshot is only a slower start: the filter is rebuilt from the store.
    return undefined;
  }
}

/** Writes the snapshot atomically (a temporary file, fsynced, renamed) for `generation` and its `token`. */
export async function saveFilterSnapshot(dir: string, filter: KeyFilter, generation: number, token: string): Promise<void> {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeDoubleLE(generation, 8);
  if (header.write(token, 16, 'hex') !== TOKEN_BYTES) throw new RangeError(`Expected a token of ${TOKEN_BYTES} bytes in hex, got ${token}`);
  // Copied now, written later: a server keeps answering checks while tens of megabytes go to
  // disk, and the filter may only grow meanwhile (a superset of the keys of `generation`).
  const body = filter.toBuffer();
  await writeFileDurably(dir, FILTER_SNAPSHOT_FILE, [header, body]);
}
