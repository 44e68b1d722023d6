import type { Command } from 'commander';
import { readAudit } from '../../manage/audit-log.js';
import type { AuditRecord } from '../../store/audit.js';
import { withStore, writeOut } from '../args.js';

function describe(r: AuditRecord): string {
  const what = r.key ?? (r.job === null ? '' : `job ${r.job}`);
  return `${r.time}  ${r.actor}  ${r.action}  ${what}  ${r.unit ?? '*'}  ${JSON.stringify(r.details)}\n`;
}

export function registerAudit(program: Command): void {
  program.command('audit')
    .description('the audit trail: imports, adds, removals, rollbacks, keys, legal-basis sends')
    .option('--email <address>', 'only the records about this address')
    .option('--since <time>', 'only records at or after this ISO 8601 date or time')
    .option('--json', 'one JSON record per line')
    .action(async (flags: { email?: string; since?: string; json?: boolean }, cmd: Command) => {
      await withStore(cmd, 'optout audit', async (store) => {
        for await (const r of readAudit(store, { email: flags.email, since: flags.since })) {
          await writeOut(flags.json ? JSON.stringify(r) + '\n' : describe(r));
        }
      });
    });
}
