/**
 * The key index's snapshot (key-index.ts): saved when a store that has the index closes, loaded
 * by the next build instead of a scan of every entry (~1.5 s of CPU a million entries, with
 * slower checks meanwhile). Like the filter's snapshot it names the store generation it covers
 * and that generation's token (filter-snapshot.ts); unlike the filter's it is used only for
 * exactly that generation: the filter log says which keys a later generation added, not which
 * it removed, nor their jobs. Any other snapshot, or a damaged one, and the index is built from
 * a scan, as without one.
 *
 * ```
 * OPTOUTK1  generation (f64)  token (8 bytes)  meta length (u32)  CRC-32 of the rest (u32)
 * meta: JSON { jobIds, tables: [{ scope, size, slots }] }, padded with spaces to 4 bytes
 * each table's slots (u32, little-endian), in the meta's order
 * ```
 */
import { open, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { writeFileDurably } from '../../files/durable-file.js';
import { KeyIndex, type SavedKeyIndex } from './key-index.js';

/** Where a store's key index came from. */
export type KeyIndexSource = 'snapshot' | 'scan';

const MAGIC = 'OPTOUTK1';
const TOKEN_BYTES = 8;
const HEADER_BYTES = 32;
export const KEY_INDEX_SNAPSHOT_FILE = 'key-index.snapshot';
/** The checksum is computed in pieces of this size, with the event loop given back between them. */
const CRC_PIECE = 16 * 2 ** 20;
// The slots are written as memory holds them.
const LITTLE_ENDIAN = endianness() === 'LE';

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function checksum(parts: readonly Uint8Array[]): Promise<number> {
  let crc = 0;
  for (const part of parts) {
    for (let at = 0; at < part.length; at += CRC_PIECE) {
      crc = crc32(part.subarray(at, at + CRC_PIECE), crc);
      await nextTurn();
    }
  }
  return crc;
}

/**
 * Writes the snapshot of `index` for `generation` and its `token`, atomically. The index must
 * not change until this resolves (the store saves it once closing, when nothing changes it).
 */
export async function saveKeyIndexSnapshot(dir: string, index: KeyIndex, generation: number, token: string): Promise<void> {
  if (!LITTLE_ENDIAN) return;
  const saved = index.saved();
  const json = JSON.stringify({ jobIds: saved.jobIds, tables: saved.tables.map((t) => ({ scope: t.scope, size: t.size, slots: t.slots.length })) });
  const text = Buffer.from(json);
  // Padded with spaces, so that the slots after it are 4-byte aligned in the file read back.
  const meta = Buffer.alloc(Math.ceil(text.length / 4) * 4, ' ');
  text.copy(meta);
  const body = [meta, ...saved.tables.map((t) => new Uint8Array(t.slots.buffer, t.slots.byteOffset, t.slots.byteLength))];
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeDoubleLE(generation, 8);
  if (header.write(token, 16, 'hex') !== TOKEN_BYTES) throw new RangeError(`Expected a token of ${TOKEN_BYTES} bytes in hex, got ${token}`);
  header.writeUInt32LE(meta.length, 24);
  header.writeUInt32LE(await checksum(body), 28);
  await writeFileDurably(dir, KEY_INDEX_SNAPSHOT_FILE, [header, ...body]);
}

/** The generation a snapshot names, its token, and a way to its index once they are proven current. */
export interface KeyIndexSnapshot {
  generation: number;
  token: string;
  /** Reads the index; undefined when the snapshot is damaged, or was replaced by another meanwhile. */
  load(sizes: ReadonlyMap<string, number>): Promise<KeyIndex | undefined>;
}

interface Header {
  generation: number;
  token: string;
  metaLength: number;
  crc: number;
}

function parseHeader(buf: Buffer): Header | undefined {
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const generation = buf.readDoubleLE(8);
  if (!Number.isSafeInteger(generation) || generation < 0) return undefined;
  return { generation, token: buf.toString('hex', 16, 16 + TOKEN_BYTES), metaLength: buf.readUInt32LE(24), crc: buf.readUInt32LE(28) };
}

/**
 * The snapshot in `dir`, whatever generation it names, from its header alone (a stale one is
 * not read whole); undefined when there is none or its header is damaged.
 */
export async function readKeyIndexSnapshot(dir: string): Promise<KeyIndexSnapshot | undefined> {
  if (!LITTLE_ENDIAN) return undefined;
  const path = join(dir, KEY_INDEX_SNAPSHOT_FILE);
  let header: Header | undefined;
  try {
    const file = await open(path, 'r');
    try {
      const buf = Buffer.alloc(HEADER_BYTES);
      const { bytesRead } = await file.read(buf, 0, HEADER_BYTES, 0);
      header = parseHeader(buf.subarray(0, bytesRead));
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
  if (header === undefined) return undefined;
  const { generation, token } = header;
  return {
    generation,
    token,
    async load(sizes) {
      let buf: Buffer;
      try {
        buf = await readFile(path);
      } catch {
        return undefined;
      }
      const whole = parseHeader(buf);
      if (whole === undefined || whole.generation !== generation || whole.token !== token) return undefined;
      return decode(buf, whole, sizes);
    },
  };
}

async function decode(buf: Buffer, header: Header, sizes: ReadonlyMap<string, number>): Promise<KeyIndex | undefined> {
  const { metaLength } = header;
  const rest = buf.subarray(HEADER_BYTES);
  if (metaLength % 4 !== 0 || metaLength > rest.length || (await checksum([rest])) !== header.crc) return undefined;
  let meta: { jobIds?: unknown; tables?: unknown };
  try {
    meta = JSON.parse(rest.toString('utf8', 0, metaLength)) as typeof meta;
  } catch {
    return undefined;
  }
  const { jobIds, tables } = meta;
  if (!Array.isArray(jobIds) || !jobIds.every((j) => typeof j === 'string') || !Array.isArray(tables)) return undefined;
  // The slots are read in place when they are 4-byte aligned in memory, else from a copy.
  const slotBytes = rest.subarray(metaLength);
  const aligned = slotBytes.byteOffset % 4 === 0 ? slotBytes : Buffer.from(slotBytes);
  const saved: SavedKeyIndex = { jobIds, tables: [] };
  let at = 0;
  for (const t of tables as Array<Record<string, unknown>>) {
    const { scope, size, slots } = t;
    if (typeof scope !== 'string' || typeof size !== 'number' || typeof slots !== 'number' || !Number.isSafeInteger(slots) || slots < 0 ||
      at + slots * 4 > aligned.length) {
      return undefined;
    }
    saved.tables.push({ scope, size, slots: new Uint32Array(aligned.buffer, aligned.byteOffset + at, slots) });
    at += slots * 4;
  }
  if (at !== aligned.length) return undefined;
  return KeyIndex.fromSaved(saved, sizes);
}
