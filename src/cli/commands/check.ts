import type { Command } from 'commander';
import { checkAddress } from '../../check/check-address.js';
import { normalizeUnit } from '../../options.js';
import { LevelStore } from '../../store/level-store.js';
import { dbOption } from '../args.js';

export function registerCheck(program: Command): void {
  program.command('check <email>')
    .description('may marketing email be sent to this address? exit 0 if eligible, 1 if not')
    .option('--unit <id>', 'business unit (default: account-wide suppressions only)')
    .option('--json', 'print the decision as JSON')
    .action(async (email: string, flags: { unit?: string; json?: boolean }, cmd: Command) => {
      const unit = flags.unit === undefined ? undefined : normalizeUnit(flags.unit);
      const store = await LevelStore.open(dbOption(cmd), { purpose: 'optout check' });
      let result;
      try {
        result = await checkAddress(store, email, unit);
      } finally {
        await store.close();
      }
      if (flags.json) {
        process.stdout.write(JSON.stringify(result) + '\n');
      } else {
        const why = result.reason === 'invalid_address' ? `invalid address (${result.invalidReason})`
          : result.reason === 'suppressed' ? `suppressed ${result.suppression?.scope === '*' ? 'account-wide' : `in unit ${result.suppression?.scope}`} (job ${result.suppression?.jobId})`
          : 'not suppressed';
        process.stdout.write(`${result.eligible ? 'eligible' : 'not eligible'}: ${result.address ?? email} (${why})\n`);
      }
      process.exitCode = result.eligible ? 0 : 1;
    });
}
