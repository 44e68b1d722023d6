import { printable } from '../../report/printable.js';
import type { Command } from 'commander';
import { rollbackJob } from '../../manage/rollback.js';
import { jobSummary } from '../../store/jobs.js';
import { withStore } from '../args.js';

export function registerJobs(program: Command): void {
  program.command('jobs')
    .description('import jobs with their state and counts (--all also lists single adds)')
    .option('--all', 'include single adds')
    .option('--json', 'print JSON')
    .action(async (flags: { all?: boolean; json?: boolean }, cmd: Command) => {
      const jobs = await withStore(cmd, 'optout jobs', (store) => store.listJobs());
      const shown = jobs.filter((j) => flags.all || j.kind === 'import').map(jobSummary);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ jobs: shown }) + '\n');
        return;
      }
      for (const j of shown) {
        const counts = j['kind'] === 'import' ? `rows ${j['rows']} added ${j['added']} already ${j['alreadySuppressed']}` : `key ${j['key']}`;
        process.stdout.write(`${j['id']}  ${j['kind']}  ${j['state']}  ${j['scope']}  ${printable(String(j['source']), 80)}  ${counts}  ${j['createdAt']}\n`);
      }
    });

  program.command('rollback <job>')
    .description('undo a job: remove the entries it added that no other job also holds (audited)')
    .option('--json', 'print the result as JSON')
    .action(async (job: string, flags: { json?: boolean }, cmd: Command) => {
      const r = await withStore(cmd, 'optout rollback', (store) => rollbackJob(store, job, 'cli'));
      if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`rolled back job ${r.job}: ${r.removed} removed, ${r.kept} kept (held by other jobs), ${r.holdsReleased} holds released\n`);
    });
}
