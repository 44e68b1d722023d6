import { open, type FileHandle } from 'node:fs/promises';
import type { ChunkReject } from '../workers/chunk-task.js';
import { OptoutError } from '../errors.js';
import { csvCell } from './csv-cell.js';

const HEADER = 'line,row,value,reason\n';

/** Rejected cells come from lists nobody vetted: they are written safe to open in a spreadsheet. */
const REJECT_CELL = { spreadsheetSafe: true, escapeControls: true } as const;

/**
 * The rejects file: `line,row,value,reason` for every invalid row; values that a spreadsheet
 * would run as a formula get a `'` prefix, and control characters show as `\xNN`. Its length is recorded in
 * each import checkpoint, so a resumed import truncates it back to the last durable batch and
 * the file ends up the same as after an uninterrupted run.
 */
export class RejectsFile {
  #fh: FileHandle | undefined;
  #bytes = 0;

  private constructor(readonly path: string) {}

  /** Opens for writing: a fresh file, or an existing one cut back to `resumeAt` bytes. */
  static async open(path: string, resumeAt?: number): Promise<RejectsFile> {
    const f = new RejectsFile(path);
    try {
      if (resumeAt !== undefined && resumeAt > 0) {
        f.#fh = await open(path, 'r+');
        await f.#fh.truncate(resumeAt);
        f.#bytes = resumeAt;
      } else {
        f.#fh = await open(path, 'w');
        await f.#append(HEADER);
      }
    } catch (cause) {
      await f.#fh?.close();
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Cannot write the rejects file ${path}: ${(cause as Error).message}`, { cause });
    }
    return f;
  }

  get bytes(): number {
    return this.#bytes;
  }

  async write(rejects: readonly ChunkReject[], baseLine: number, baseRow: number): Promise<void> {
    if (rejects.length === 0) return;
    let text = '';
    for (const r of rejects) {
      text += `${baseLine + r.line},${baseRow + r.record + 1},${csvCell(r.value, REJECT_CELL)},${r.reason}\n`;
    }
    await this.#append(text);
  }

  async #append(text: string): Promise<void> {
    const buf = Buffer.from(text, 'utf8');
    await (this.#fh as FileHandle).write(buf, 0, buf.length, this.#bytes);
    this.#bytes += buf.length;
  }

  async close(): Promise<void> {
    await this.#fh?.close();
    this.#fh = undefined;
  }
}
