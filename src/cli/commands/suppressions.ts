import type { Command } from 'commander';
import { addSuppression, lookupSuppressions, removeSuppression, type Suppression } from '../../manage/suppressions.js';
import { checkViewOf } from '../../store/store.js';
import { withStore } from '../args.js';

function scopeName(scope: string): string {
  return scope === '*' ? 'account-wide' : `unit ${scope}`;
}

function describe(s: Suppression): string {
  return `${scopeName(s.scope)}: ${s.reason}, source ${s.source}, job ${s.job}, since ${s.addedAt}`;
}

export function registerSuppressions(program: Command): void {
  program.command('add <email>')
    .description('suppress one address (audited)')
    .option('--unit <id>', 'business unit (default: account-wide)')
    .option('--reason <r>', 'unsubscribed, bounced, complaint or manual', 'manual')
    .option('--source <label>', 'the source label kept with the entry (default: cli)')
    .option('--json', 'print the result as JSON')
    .action(async (email: string, flags: { unit?: string; reason: string; source?: string; json?: boolean }, cmd: Command) => {
      const r = await withStore(cmd, 'optout add', async (store) => {
        // Loaded so that the new key enters the filter and its snapshot stays valid.
        await checkViewOf(store)?.filter();
        return addSuppression(store, { email, unit: flags.unit, reason: flags.reason, source: flags.source, actor: 'cli' });
      }, { create: true });
      if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`${r.added ? 'suppressed' : 'already suppressed'} ${scopeName(r.scope)}: ${r.address} (job ${r.job})\n`);
    });

  program.command('remove <email>')
    .description('end the suppression of one address in one scope: the audited way to resubscribe someone')
    .option('--unit <id>', 'business unit (default: the account-wide suppression)')
    .requiredOption('--why <text>', 'why this address may be emailed again (kept in the audit trail)')
    .option('--json', 'print the result as JSON')
    .action(async (email: string, flags: { unit?: string; why: string; json?: boolean }, cmd: Command) => {
      const r = await withStore(cmd, 'optout remove', (store) => removeSuppression(store, { email, unit: flags.unit, why: flags.why, actor: 'cli' }));
      if (flags.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`removed ${r.removed.address} from ${scopeName(r.scope)} (was ${describe(r.removed)})\n`);
    });

  program.command('show <email>')
    .description('every scope that suppresses an address, with reason, source, job and date')
    .option('--json', 'print JSON')
    .action(async (email: string, flags: { json?: boolean }, cmd: Command) => {
      const found = await withStore(cmd, 'optout show', (store) => lookupSuppressions(store, email));
      if (flags.json) process.stdout.write(JSON.stringify({ suppressions: found }) + '\n');
      else if (found.length === 0) process.stdout.write('not suppressed in any scope\n');
      else for (const s of found) process.stdout.write(`${s.address}  ${describe(s)}\n`);
    });
}
