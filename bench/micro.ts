import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';

/**
 * `npm run bench:micro [-- --filter <text>]`: the hot functions one by one, each next to the
 * alternative a user would otherwise reach for (csv-parse, the bloom-filters package).
 */
const { values } = parseArgs({ options: { filter: { type: 'string' }, time: { type: 'string', default: '1000' } } });
const bench = new Bench({ time: Number(values.time), warmupTime: 200 });

const cleanups: Array<() => Promise<void>> = [];
const areas: Array<[string, () => Promise<void>]> = [
  ['policy', async () => (await import('./micro/policy.js')).registerPolicyBenches(bench)],
  ['dedup', async () => (await import('./micro/dedup.js')).registerDedupBenches(bench)],
  ['csv', async () => (await import('./micro/csv.js')).registerCsvBenches(bench)],
  ['store', async () => { cleanups.push(await (await import('./micro/store.js')).registerStoreBenches(bench)); }],
];
for (const [name, register] of areas) {
  if (values.filter === undefined || name.includes(values.filter)) await register();
}
process.stderr.write(`running ${bench.tasks.length} benchmarks...\n`);
await bench.run();
console.table(bench.table());
for (const cleanup of cleanups) await cleanup();
