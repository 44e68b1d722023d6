/**
 * The two helpers every backend's writers share: a queue that runs tasks one at a time in the
 * order they asked, and the set of writes submitted and not yet settled, which a writer that
 * reads before it writes drains first.
 */

/** Runs tasks one at a time, in the order they asked; a failed task does not stop the queue. */
export class TurnQueue {
  #tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((r) => {
      release = r;
    });
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** Writes submitted and not yet settled. */
export class InFlight {
  readonly #writes = new Set<Promise<unknown>>();

  /** Counts `write` as in flight until it settles; gives it back. */
  track<T>(write: Promise<T>): Promise<T> {
    this.#writes.add(write);
    const done = (): void => {
      this.#writes.delete(write);
    };
    write.then(done, done);
    return write;
  }

  /** Resolves once every write submitted so far has settled, whatever its outcome. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#writes]);
  }
}
