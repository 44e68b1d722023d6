import type { Command } from 'commander';
import { normalizeCheckRequest, type CheckRequest } from '../../check/checker.js';
import { keysOfEmails, ledgerChecker } from '../../check/ledger-checker.js';
import type { Decision, SendType } from '../../check/rules.js';
import { withStore } from '../args.js';

function explain(d: Decision): string {
  const scope = d.suppression?.scope === '*' ? 'account-wide' : `in unit ${d.suppression?.scope}`;
  const origin = d.suppression ? `${d.suppression.reason}, ${d.suppression.source}, job ${d.suppression.jobId}` : '';
  switch (d.reason) {
    case 'invalid_address': return `invalid address (${d.invalidReason})`;
    case 'suppressed': return `suppressed ${scope} (${origin})`;
    case 'legal_basis': return `suppressed ${scope} (${origin}); allowed one-to-one on the legal basis given, recorded`;
    case 'unavailable': return 'the store could not answer';
    default: return 'not suppressed';
  }
}

export function registerCheck(program: Command): void {
  program.command('check <email>')
    .description('may this email be sent to this address? exit 0 if eligible, 1 if not')
    .option('--unit <id>', 'business unit (default: account-wide suppressions only)')
    .option('--type <type>', 'marketing, sequence or one-to-one', 'marketing')
    .option('--legal-basis <text>', 'for a one-to-one send to a suppressed address: why it is lawful (recorded)')
    .option('--json', 'print the decision as JSON')
    .action(async (email: string, flags: { unit?: string; type: string; legalBasis?: string; json?: boolean }, cmd: Command) => {
      const req: CheckRequest = { email, unit: flags.unit, type: flags.type as SendType, legalBasis: flags.legalBasis, caller: 'cli' };
      normalizeCheckRequest(req);
      const decision: Decision = await withStore(cmd, 'optout check', async (store) => {
        // One check: reading the store directly beats loading the whole key filter first.
        const { checker, prepare } = await ledgerChecker(store, { filter: false });
        await prepare(keysOfEmails([email]));
        const d = checker.decide(req);
        await checker.record([req], [d]);
        return d;
      });
      if (flags.json) process.stdout.write(JSON.stringify(decision) + '\n');
      else process.stdout.write(`${decision.eligible ? 'eligible' : 'not eligible'}: ${decision.address ?? email} (${explain(decision)})\n`);
      process.exitCode = decision.eligible ? 0 : 1;
    });
}
