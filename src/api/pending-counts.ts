import type { Counter } from 'prom-client';

type Labels<L extends string> = Partial<Record<L, string | number>>;

/**
 * Counts kept as plain numbers and added to a prom-client counter when the metrics are read
 * (from its `collect`). A counter's `inc`, on a label child too, validates and hashes its labels
 * on every call: on a single check that cost as much as the check's own lookup.
 */
export class PendingCounts<L extends string> {
  readonly #pending = new Map<string, { labels: Labels<L>; n: number }>();

  /** Adds `n` to the count of `id`; `labels` is called the first time `id` is seen. */
  add(id: string, labels: () => Labels<L>, n = 1): void {
    let p = this.#pending.get(id);
    if (p === undefined) this.#pending.set(id, (p = { labels: labels(), n: 0 }));
    p.n += n;
  }

  /** Moves the counts into `counter`. */
  flush(counter: Counter<L>): void {
    for (const p of this.#pending.values()) {
      if (p.n > 0) {
        counter.inc(p.labels, p.n);
        p.n = 0;
      }
    }
  }
}
