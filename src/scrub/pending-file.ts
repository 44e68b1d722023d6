import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OptoutError } from '../errors.js';
import { isProcessRunning } from '../files/process.js';

/**
 * An output file written under a temporary name beside its target (`<target>.<pid>.partial`, so
 * that the rename stays on one file system) and renamed to the target only when complete and
 * synced: a run that fails or is killed never leaves a half-written file under the final name.
 * A killed run does leave its temporary file: the next run writing to the same target removes
 * it (a send list is personal data), and temporary files are readable by their owner only.
 */
export class PendingFile {
  readonly target: string;
  readonly temp: string;
  readonly #label: string;
  #fh: FileHandle | undefined;

  private constructor(target: string, label: string) {
    this.target = target;
    this.temp = `${target}.${process.pid}.partial`;
    this.#label = label;
  }

  /** @param label how messages name the file (`--out`). */
  static async open(target: string, label: string): Promise<PendingFile> {
    const f = new PendingFile(target, label);
    await removeStalePartials(target);
    try {
      f.#fh = await open(f.temp, 'w', 0o600);
    } catch (cause) {
      throw f.#failed('create', cause);
    }
    return f;
  }

  async write(data: Uint8Array): Promise<void> {
    const fh = this.#fh as FileHandle;
    try {
      for (let at = 0; at < data.length;) at += (await fh.write(data, at, data.length - at)).bytesWritten;
    } catch (cause) {
      throw this.#failed('write', cause);
    }
  }

  /** Syncs, closes and renames the file to its target. */
  async commit(): Promise<void> {
    const fh = this.#fh as FileHandle;
    try {
      await fh.sync();
      await fh.close();
      this.#fh = undefined;
      await rename(this.temp, this.target);
    } catch (cause) {
      throw this.#failed('write', cause);
    }
  }

  /** Closes and removes the temporary file; the target is left as it was. */
  async discard(): Promise<void> {
    await this.#fh?.close().catch(() => undefined);
    this.#fh = undefined;
    await rm(this.temp, { force: true });
  }

  #failed(what: string, cause: unknown): OptoutError {
    return new OptoutError('OPTOUT_ERR_OUTPUT', `Cannot ${what} the ${this.#label} file ${this.target}: ${(cause as Error).message}`, { cause });
  }
}

/** Removes `<target>.<pid>.partial` files of processes that are gone (killed scrubs). */
async function removeStalePartials(target: string): Promise<void> {
  const prefix = `${basename(target)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(target));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.partial')) continue;
    const pid = Number(name.slice(prefix.length, -'.partial'.length));
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !isProcessRunning(pid)) {
      await rm(join(dirname(target), name), { force: true });
    }
  }
}
