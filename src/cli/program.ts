/** The command tree and its error handling; `main.ts` is the executable that runs it. */
import { Command, CommanderError } from 'commander';
import { exitCodeFor, isOptoutError } from '../errors.js';
import { printable } from '../report/printable.js';
import { assertArgumentsDecoded } from './args.js';
import { removeStaleOsScratch } from '../files/scratch.js';
import { registerImport } from './commands/import.js';
import { registerCheck } from './commands/check.js';
import { registerNormalize } from './commands/normalize.js';
import { registerStats } from './commands/stats.js';
import { registerServe } from './commands/serve.js';
import { registerKeys } from './commands/keys.js';
import { registerSuppressions } from './commands/suppressions.js';
import { registerExport } from './commands/export.js';
import { registerAudit } from './commands/audit.js';
import { registerJobs } from './commands/jobs.js';
import { registerSync } from './commands/sync.js';
import { registerScrub } from './commands/scrub.js';
import { registerLinks } from './commands/links.js';
import { registerInbound } from './commands/inbound.js';
import { registerMigrate } from './commands/migrate.js';

/** Builds the command tree; exported so tests and embedders can run commands in-process. */
export function buildProgram(): Command {
  const program = new Command('optout')
    .description('Email opt-out (suppression) lists: import, check, manage.')
    .option('--db <dir|url>', 'store folder, or a postgres:// URL (default: $OPTOUT_DB or ./optout-db)')
    .showHelpAfterError()
    .exitOverride();
  registerImport(program);
  registerCheck(program);
  registerNormalize(program);
  registerStats(program);
  registerServe(program);
  registerKeys(program);
  registerSuppressions(program);
  registerExport(program);
  registerAudit(program);
  registerJobs(program);
  registerSync(program);
  registerScrub(program);
  registerLinks(program);
  registerInbound(program);
  registerMigrate(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // Temporary folders of optout processes that were killed (see files/scratch.ts).
  removeStaleOsScratch();
  try {
    assertArgumentsDecoded(argv.slice(2));
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other parse failure is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    const code = isOptoutError(err) ? err.code : 'OPTOUT_ERR_INTERNAL';
    process.stderr.write(`optout: ${printable((err as Error).message, 4000)} [${code}]\n`);
    if (!isOptoutError(err) && process.env['OPTOUT_DEBUG']) process.stderr.write(`${(err as Error).stack}\n`);
    return exitCodeFor(err);
  }
}
