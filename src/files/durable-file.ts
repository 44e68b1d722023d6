import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes `dir/name` atomically and durably: a temporary file of its own, fsynced, renamed over
 * the old one, then the folder fsynced. A reader finds the old file or the new one, whole.
 */
export async function writeFileDurably(dir: string, name: string, parts: readonly Uint8Array[]): Promise<void> {
  // A name of its own: two saves of the same file (a timer's and `close`'s) must not share one.
  const tmp = join(dir, `${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await open(tmp, 'w');
    try {
      await file.writev([...parts]);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // The rename itself must be durable too, or a power cut could bring back the older file.
  const folder = await open(dir, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/** Removes the temporary files of {@link writeFileDurably} saves of `names` that never finished (a killed process's), in one listing of `dir`. */
export function removeUnfinishedWrites(dir: string, names: readonly string[]): void {
  for (const entry of readdirSync(dir)) {
    if (entry.endsWith('.tmp') && names.some((name) => entry.startsWith(`${name}.`))) rmSync(join(dir, entry), { force: true });
  }
}
