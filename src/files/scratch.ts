/**
 * Folders for a process's temporary files (a copy of stdin, an analysis spool): copies of opt-out
 * lists, so personal data. Every one lives in a folder optout owns, is removed when its work
 * ends and again when the process exits, and one left by a killed process is removed the next
 * time optout runs:
 *
 * - under a store, `<store>/tmp/<pid>-<random>/`: the store's owner empties `<store>/tmp` when
 *   it opens the store (it holds the store's lock, so no other process can be using it);
 * - without a store (a dry run on a folder that holds none, which must create nothing there),
 *   `<OS temp>/optout-<pid>-<random>/`: removed at the next start of optout once no process
 *   has that id.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OptoutError } from '../errors.js';
import { isProcessRunning } from './process.js';

/** The folder of a store that holds its processes' temporary files. */
export function storeTempRoot(storeDir: string): string {
  return join(storeDir, 'tmp');
}

const OS_TEMP_NAME = /^optout-(\d+)-[0-9a-f]{8}$/;

/** Folders made by this process and not removed yet: the exit handler removes what is left. */
const live = new Set<string>();
let exitHookInstalled = false;

function removeLiveOnExit(): void {
  // 'exit' listeners must be synchronous; this also runs after process.exit() (a second Ctrl-C).
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
  live.clear();
}

/** One folder of temporary files, removed by {@link ScratchDir.remove} or at the latest when the process exits. */
export class ScratchDir {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  /** A folder in the store's `tmp/`: use it while holding the store open. */
  static inStore(storeDir: string): ScratchDir {
    return ScratchDir.#make(storeTempRoot(storeDir), `${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** A folder in the OS temp folder, for work that must leave no trace in a store folder. */
  static inOsTemp(): ScratchDir {
    return ScratchDir.#make(tmpdir(), `optout-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  static #make(root: string, name: string): ScratchDir {
    const path = join(root, name);
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new OptoutError('OPTOUT_ERR_OUTPUT', `Cannot create a folder for temporary files ${path}: ${(cause as Error).message}`, { cause });
    }
    if (!exitHookInstalled) {
      process.on('exit', removeLiveOnExit);
      exitHookInstalled = true;
    }
    live.add(path);
    return new ScratchDir(path);
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
    live.delete(this.path);
  }
}

/**
 * Empties a store's temporary folder. Only for the store's owner, right after it took the
 * store's lock: what is there was left by a process that was killed.
 */
export function clearStoreTemp(storeDir: string): void {
  rmSync(storeTempRoot(storeDir), { recursive: true, force: true });
}

/** Removes `optout-<pid>-*` folders of the OS temp folder whose process is gone. Best effort. */
export function removeStaleOsScratch(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(OS_TEMP_NAME.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isProcessRunning(pid)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // Another user's, or removed meanwhile: not ours to insist on.
    }
  }
}
