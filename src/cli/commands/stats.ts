import { printable } from '../../report/printable.js';
import type { Command } from 'commander';
import { LevelStore } from '../../store/level/level-store.js';
import { dbOption } from '../args.js';
import type { ImportCounts } from '../../store/counts.js';
import type { JobRecord } from '../../store/jobs.js';

/** What `optout stats --json` prints. */
export interface StoreStats {
  db: string;
  entries: number;
  /** Entries per scope; `*` is account-wide. */
  scopes: Record<string, number>;
  sizeOnDiskBytes: number;
  jobs: Array<Pick<JobRecord, 'id' | 'state' | 'scope' | 'reason' | 'source' | 'createdAt' | 'finishedAt'> & ImportCounts>;
}

export function registerStats(program: Command): void {
  program.command('stats')
    .description('entries per scope, size on disk and jobs')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const store = await LevelStore.open(dbOption(cmd), { purpose: 'optout stats', create: false });
      let stats: StoreStats;
      try {
        const jobs = await store.listImports();
        stats = {
          db: store.dir,
          entries: store.totalEntries(),
          scopes: Object.fromEntries([...store.counts()].sort(([a], [b]) => a.localeCompare(b))),
          sizeOnDiskBytes: store.sizeOnDisk(),
          jobs: jobs.map((j) => ({
            id: j.id, state: j.state, scope: j.scope, reason: j.reason, source: j.source,
            createdAt: j.createdAt, finishedAt: j.finishedAt, ...j.checkpoint.counts,
          })),
        };
      } finally {
        await store.close();
      }
      if (flags.json) {
        process.stdout.write(JSON.stringify(stats) + '\n');
        return;
      }
      const out = [
        `store     ${stats.db}`,
        `entries   ${stats.entries.toLocaleString('en-US')}`,
        ...Object.entries(stats.scopes).map(([s, n]) => `  ${s === '*' ? 'account-wide' : `unit ${s}`}: ${n.toLocaleString('en-US')}`),
        `on disk   ${(stats.sizeOnDiskBytes / 1e6).toFixed(1)} MB`,
        `jobs      ${stats.jobs.length}`,
        ...stats.jobs.map((j) => `  ${j.id.padStart(4)} ${j.state.padEnd(11)} ${printable(j.source, 80)} -> ${j.scope === '*' ? 'account-wide' : j.scope}: ` +
          `${j.rows} rows, ${j.added} added, ${j.alreadySuppressed} already, ${j.invalid} invalid`),
      ];
      process.stdout.write(out.join('\n') + '\n');
    });
}
