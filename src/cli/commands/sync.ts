import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { addSync, listSyncs, publicSync, removeSync, runSync, type SyncRunResult } from '../../sync/syncs.js';
import { withStore } from '../args.js';

function describeRun(r: SyncRunResult): string {
  if (r.status === 'not-modified') return `sync ${r.sync}: not modified since the last run\n`;
  if (r.status === 'failed') return `sync ${r.sync}: failed: ${r.error?.message ?? ''} [${r.error?.code ?? ''}]\n`;
  const c = r.job?.counts;
  return `sync ${r.sync}: job ${r.job?.id ?? ''}: rows ${c?.rows ?? 0}, invalid ${c?.invalid ?? 0}, added ${c?.added ?? 0}, already suppressed ${c?.alreadySuppressed ?? 0}\n`;
}

export function registerSync(program: Command): void {
  const sync = program.command('sync').description('opt-out lists fetched from an external system\'s URL, imported whenever they change');

  sync.command('add <url>')
    .description('add a sync (no confirmation at each run: the source is approved here)')
    .option('--column <name|index>', 'the email column (default: detected)')
    .option('--unit <id>', 'business unit (default: account-wide)')
    .option('--reason <r>', 'unsubscribed, bounced, complaint or manual', 'unsubscribed')
    .option('--every <duration>', 'run on a schedule while optout serve runs, e.g. 15m, 1h, 1d (default: on demand)')
    .option('--allow-private', 'allow loopback and private-network addresses (a list served inside a trusted network)')
    .option('--json', 'print JSON')
    .action(async (url: string, flags: { column?: string; unit?: string; reason: string; every?: string; allowPrivate?: boolean; json?: boolean }, cmd: Command) => {
      const rec = await withStore(cmd, 'optout sync add', (store) => addSync(store, {
        url, column: flags.column, unit: flags.unit, reason: flags.reason, every: flags.every, allowPrivate: flags.allowPrivate, actor: 'cli',
      }), { create: true });
      if (flags.json) process.stdout.write(JSON.stringify(publicSync(rec)) + '\n');
      else process.stdout.write(`sync ${rec.id} added: ${rec.label}${rec.everyMs === null ? ' (on demand)' : ` every ${flags.every ?? ''}`}\n`);
    });

  sync.command('run [id]')
    .description('run one sync, or every sync, now')
    .option('--json', 'one JSON result per sync')
    .action(async (id: string | undefined, flags: { json?: boolean }, cmd: Command) => {
      const results = await withStore(cmd, 'optout sync run', async (store) => {
        const { ImportJobs } = await import('../../manage/import-jobs.js');
        const jobs = new ImportJobs(store, { threads: availableParallelism() });
        const out: SyncRunResult[] = [];
        try {
          const ids = id === undefined ? (await listSyncs(store)).map((s) => s.id) : [id];
          for (const one of ids) {
            const r = await runSync(store, jobs, one);
            out.push(r);
            process.stdout.write(flags.json ? JSON.stringify(r) + '\n' : describeRun(r));
          }
        } finally {
          await jobs.close();
        }
        return out;
      });
      if (results.some((r) => r.status === 'failed')) process.exitCode = 1;
    });

  sync.command('list')
    .description('the syncs, with their last run')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const syncs = (await withStore(cmd, 'optout sync list', (store) => listSyncs(store))).map(publicSync);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ syncs }) + '\n');
        return;
      }
      for (const s of syncs) {
        process.stdout.write(`${s.id}  ${s.label}  ${s.unit ?? '*'}  ${s.everyMs === null ? 'on demand' : `every ${s.everyMs / 1000}s`}  ` +
          `last ${s.lastStatus ?? 'never'}${s.lastRunAt ? ` at ${s.lastRunAt}` : ''}${s.lastJobId ? ` (job ${s.lastJobId})` : ''}\n`);
      }
    });

  sync.command('remove <id>')
    .description('remove a sync; the addresses it imported stay suppressed')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      await withStore(cmd, 'optout sync remove', (store) => removeSync(store, id, 'cli'));
      process.stdout.write(`sync ${id} removed\n`);
    });
}
