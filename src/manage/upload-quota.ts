/**
 * The bytes of the files a server keeps for its import jobs (uploads, fetched lists) until each
 * job ends, and of the uploads still arriving. An upload that would take the total past the
 * limit is refused before it is stored: at once when its length is declared, else as soon as
 * its running count crosses the limit.
 *
 * Counted in memory, per holder (a job id, or an upload's temporary file), so that two uploads
 * arriving at once cannot both take the last room: the disk lags behind what is being written.
 */
import { OptoutError } from '../errors.js';

export class UploadQuota {
  readonly #max: number;
  readonly #held = new Map<string, number>();

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes held now, by every holder. */
  get used(): number {
    let sum = 0;
    for (const bytes of this.#held.values()) sum += bytes;
    return sum;
  }

  /** Counts a stored file (a job's upload), whatever the limit: it is on disk already. */
  set(holder: string, bytes: number): void {
    this.#held.set(holder, bytes);
  }

  release(holder: string): void {
    this.#held.delete(holder);
  }

  /**
   * Raises what `holder` holds to `bytes` (an upload's declared length, or its count so far).
   * @throws OptoutError OPTOUT_ERR_PENDING_QUOTA when that does not fit: `holder` keeps what it held.
   */
  grow(holder: string, bytes: number): void {
    const held = this.#held.get(holder) ?? 0;
    if (bytes <= held && this.#held.has(holder)) return;
    const others = this.used - held;
    if (others + bytes > this.#max) {
      throw new OptoutError('OPTOUT_ERR_PENDING_QUOTA',
        `The server keeps ${others} bytes of uploads for unfinished import jobs, and this upload (at least ${bytes} bytes) ` +
        `would take them past the limit of ${this.#max} bytes: confirm the jobs that wait, or let them expire, then send it again`);
    }
    this.#held.set(holder, bytes);
  }
}

