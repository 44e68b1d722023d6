import { printable } from '../../report/printable.js';
import type { Command } from 'commander';
import { DEFAULT_LOST_AFTER_MS, abandonJob, holdingOf, lastSeen, type Holding } from '../../manage/job-holders.js';
import { rollbackJob } from '../../manage/rollback.js';
import { jobSummary, type AnyJob } from '../../store/jobs.js';
import { parseDuration } from '../../units.js';
import { withStore } from '../args.js';

const LOST_AFTER = `${DEFAULT_LOST_AFTER_MS / 60_000}m`;

/** A job not ended on a shared ledger: where its server stands, as a column. */
function holderText(h: Holding): string {
  if (h.id === null) return '  holder none';
  return `  holder ${h.id} ${h.seenAt === null ? 'never seen' : `seen ${h.seenAt}`}${h.lost ? ' LOST' : ''}`;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs')
    .description('import jobs with their state and counts (--all also lists single adds); a job not ended shows the server that holds it')
    .option('--all', 'include single adds')
    .option('--json', 'print JSON')
    .option('--lost-after <duration>', 'a server not seen this long is shown LOST (as `optout serve --lost-after`)', LOST_AFTER)
    .action(async (flags: { all?: boolean; json?: boolean; lostAfter: string }, cmd: Command) => {
      const lostAfterMs = parseDuration('--lost-after', flags.lostAfter);
      const { listed, seen } = await withStore(cmd, 'optout jobs', async (store) => {
        const all = await store.listJobs();
        const shared = !store.supports.exclusive && all.some((j) => j.kind === 'import' && j.holder !== undefined);
        return { listed: all, seen: shared ? await lastSeen(store) : undefined };
      });
      const holding = (j: AnyJob): Holding | undefined => (seen === undefined || j.kind !== 'import' ? undefined : holdingOf(j, seen, lostAfterMs));
      const shown = listed.filter((j) => flags.all || j.kind === 'import').map((j) => ({ job: j, summary: jobSummary(j), holder: holding(j) }));
      if (flags.json) {
        process.stdout.write(JSON.stringify({ jobs: shown.map((s) => (s.holder === undefined ? s.summary : { ...s.summary, holder: s.holder })) }) + '\n');
        return;
      }
      for (const { summary: j, holder } of shown) {
        const counts = j['kind'] === 'import' ? `rows ${j['rows']} added ${j['added']} already ${j['alreadySuppressed']}` : `key ${j['key']}`;
        const held = holder === undefined ? '' : holderText(holder);
        process.stdout.write(`${j['id']}  ${j['kind']}  ${j['state']}  ${j['scope']}  ${printable(String(j['source']), 80)}  ${counts}  ${j['createdAt']}${held}\n`);
      }
    });

  // `--json` and `--lost-after` are the parent's: commander gives a parent's options to it
  // wherever they are typed, so the subcommand reads them from there.
  jobs.command('abandon <job>')
    .description('end an import job whose server is gone for good (it fails, or expires if it waited for a confirmation; audited); ' +
      'then `optout rollback <job>` takes back what it wrote. Takes --lost-after (the server must not have been seen that long) and --json')
    .option('--force', 'even if its server was seen within --lost-after, or none is recorded')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const flags = cmd.optsWithGlobals<{ force?: boolean; lostAfter: string; json?: boolean }>();
      const lostAfterMs = parseDuration('--lost-after', flags.lostAfter);
      const job = await withStore(cmd, 'optout jobs abandon', (store) => abandonJob(store, id, { actor: 'cli', force: flags.force === true, lostAfterMs }));
      if (flags.json) process.stdout.write(JSON.stringify(jobSummary(job)) + '\n');
      else process.stdout.write(`job ${job.id} is now ${job.state}: ${job.error?.message ?? ''}\n`);
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
