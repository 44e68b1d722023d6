import { printable } from '../../report/printable.js';
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { isPgUrl, redact } from '../../store/pg/url.js';
import { dbOption, withStore } from '../args.js';
import type { ImportCounts } from '../../store/counts.js';
import type { JobRecord } from '../../store/jobs.js';

/** What `optout stats --json` prints. */
export interface StoreStats {
  db: string;
  entries: number;
  /** Entries per scope; `*` is account-wide. */
  scopes: Record<string, number>;
  /** The store folder's files, or the database's tables with their indexes. */
  sizeOnDiskBytes: number;
  jobs: Array<Pick<JobRecord, 'id' | 'state' | 'scope' | 'reason' | 'source' | 'createdAt' | 'finishedAt'> & ImportCounts>;
}

export function registerStats(program: Command): void {
  program.command('stats')
    .description('entries per scope, size on disk and jobs')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const stats: StoreStats = await withStore(cmd, 'optout stats', async (store) => {
        const jobs = await store.listImports();
        const scopes = [...await store.scopeCounts()].sort(([a], [b]) => a.localeCompare(b));
        const db = dbOption(cmd);
        return {
          db: isPgUrl(db) ? redact(db) : resolve(db),
          entries: scopes.reduce((sum, [, n]) => sum + n, 0),
          scopes: Object.fromEntries(scopes),
          sizeOnDiskBytes: await store.storageBytes(),
          jobs: jobs.map((j) => ({
            id: j.id, state: j.state, scope: j.scope, reason: j.reason, source: j.source,
            createdAt: j.createdAt, finishedAt: j.finishedAt, ...j.checkpoint.counts,
          })),
        };
      });
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
