import type { Metric, MetricValueWithName, Registry } from 'prom-client';

/** What prom-client's registry reads from a histogram (its typings name the type by an enum the runtime does not use). */
export interface HistogramObject {
  name: string;
  help: string;
  type: 'histogram';
  values: Array<MetricValueWithName<string>>;
  aggregator: 'sum';
}

/** One label value's observations: per bucket (not cumulative; the last is above every bound), their sum and count. */
interface Series {
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram by one label, kept as plain numbers and read by prom-client's registry as one of
 * its own: `get()` answers what prom-client's `Histogram` answers for the same observations, so
 * /metrics reads the same. prom-client's `observe`, on a label child too, validates and hashes
 * the labels on every call: ~1.5-2 µs of a single check's ~60 µs of server CPU.
 */
export class RouteHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #label: L;
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(o: { name: string; help: string; label: L; buckets: readonly number[]; registers: readonly Registry[] }) {
    this.name = o.name;
    this.help = o.help;
    this.#label = o.label;
    this.#bounds = [...o.buckets].sort((a, b) => a - b);
    for (const registry of o.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** Counts `value` (seconds) in the series of label value `labelValue`. */
  observe(labelValue: string, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    let series = this.#series.get(labelValue);
    if (series === undefined) {
      series = { counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      this.#series.set(labelValue, series);
    }
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    series.counts[i] = (series.counts[i] as number) + 1;
    series.sum += value;
    series.count++;
  }

  async get(): Promise<HistogramObject> {
    const values: Array<MetricValueWithName<string>> = [];
    for (const [labelValue, s] of this.#series) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push({ value: cumulative, metricName: `${this.name}_bucket`, labels: { le, [this.#label]: labelValue } });
      });
      values.push({ value: s.count, metricName: `${this.name}_bucket`, labels: { le: '+Inf', [this.#label]: labelValue } });
      values.push({ value: s.sum, metricName: `${this.name}_sum`, labels: { [this.#label]: labelValue } });
      values.push({ value: s.count, metricName: `${this.name}_count`, labels: { [this.#label]: labelValue } });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#series.clear();
  }
}
