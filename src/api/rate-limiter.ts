/**
 * Per-key token buckets: `rate` tokens a second, bursts of up to one second's worth, and never
 * less than one request's worth: a rate below 1/s (0.2/s is one request every 5 s) must still
 * let a request through now and then, not lock the key out for good.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #maxIds: number;

  /**
   * @param maxIds buckets kept at most: ids such as client addresses come without end, and the
   * oldest bucket is dropped for a new one (its id starts afresh). @default no limit
   */
  constructor(maxIds = Infinity) {
    this.#maxIds = maxIds;
  }

  /** Seconds to wait before retrying, or 0 when the request may go. */
  take(id: string, rate: number, now = performance.now()): number {
    const capacity = Math.max(1, rate);
    let b = this.#buckets.get(id);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxIds) this.#buckets.delete(this.#buckets.keys().next().value as string);
      b = { tokens: capacity, at: now };
      this.#buckets.set(id, b);
    }
    b.tokens = Math.min(capacity, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate));
  }
}
