import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { KeyFilter } from '../dedup/bloom.js';

const MAGIC = 'OPTOUTFS';
const HEADER_BYTES = 16;
const FILE_NAME = 'filter.snapshot';

/**
 * The filter snapshot names the store generation it covers. The store bumps its generation in
 * the same LevelDB batch as every change, so a snapshot whose generation equals the store's is
 * proven to cover every stored key; any other snapshot (a crash after it was saved) is ignored
 * and the filter is rebuilt from the entries.
 */
export function loadFilterSnapshot(dir: string, generation: number): KeyFilter | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(join(dir, FILE_NAME));
  } catch {
    return undefined;
  }
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
  if (buf.readDoubleLE(8) !== generation) return undefined;
  try {
    return KeyFilter.fromBuffer(buf.subarray(HEADER_BYTES));
  } catch {
    // A damaged snapshot is only a slower start: the filter is rebuilt from the store.
    return undefined;
  }
}

export function saveFilterSnapshot(dir: string, filter: KeyFilter, generation: number): void {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeDoubleLE(generation, 8);
  const body = filter.toBuffer();
  const tmp = join(dir, FILE_NAME + '.tmp');
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, header);
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, FILE_NAME));
}
