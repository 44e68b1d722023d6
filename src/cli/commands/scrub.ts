import type { Command } from 'commander';
import type { SendType } from '../../check/rules.js';
import { formatScrubSummary, type ScrubReport } from '../../scrub/report.js';
import { ProgressBar } from '../progress.js';
import { dbOption, parseInteger } from '../args.js';

interface ScrubFlags {
  column?: string;
  delimiter?: string;
  encoding?: string;
  unit?: string;
  type?: string;
  legalBasis?: string;
  out: string;
  removed?: string;
  json?: boolean;
  threads?: string;
  maxRecordBytes?: string;
}

export function registerScrub(program: Command): void {
  program.command('scrub <send-list>')
    .description('filter a campaign send list (a CSV file, a .gz file, or - for stdin): keep the rows that may be sent')
    .requiredOption('--out <file>', 'eligible rows, as written, with the header')
    .option('--removed <file>', 'removed rows, with optout_reason and optout_detail columns added')
    .option('--column <name|index>', 'email column: header name or 1-based index (default: detected)')
    .option('--delimiter <char>', 'field delimiter: , ; | or tab (default: detected)')
    .option('--encoding <name>', 'utf8, latin1, windows-1252, utf16le or utf16be', 'utf8')
    .option('--unit <id>', 'business unit the campaign is for (default: account-wide suppressions only)')
    .option('--type <type>', 'marketing, sequence or one-to-one', 'marketing')
    .option('--legal-basis <text>', 'for a one-to-one send: why suppressed addresses may be emailed (recorded per row)')
    .option('--max-record-bytes <n>', 'largest CSV record accepted', '1048576')
    .option('--json', 'print one JSON report on stdout')
    .option('--threads <n>', 'parsing threads (default: one per core)')
    .action(async (sourceArg: string, flags: ScrubFlags, cmd: Command) => {
      const bar = process.stderr.isTTY && !flags.json ? new ProgressBar() : undefined;
      const controller = new AbortController();
      const onSigint = (): void => {
        if (controller.signal.aborted) process.exit(130);
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      // The pipeline (and its worker pool) is loaded by this command only.
      const { runScrub } = await import('../../scrub/run-scrub.js');
      let report: ScrubReport;
      try {
        report = await runScrub({
          source: sourceArg === '-' ? { kind: 'stdin', stream: process.stdin } : { kind: 'file', path: sourceArg },
          db: dbOption(cmd),
          out: flags.out,
          ...(flags.removed === undefined ? {} : { removed: flags.removed }),
          ...(flags.column === undefined ? {} : { column: flags.column }),
          ...(flags.delimiter === undefined ? {} : { delimiter: flags.delimiter }),
          ...(flags.encoding === undefined ? {} : { encoding: flags.encoding }),
          ...(flags.unit === undefined ? {} : { unit: flags.unit }),
          ...(flags.legalBasis === undefined ? {} : { legalBasis: flags.legalBasis }),
          type: (flags.type ?? 'marketing') as SendType,
          caller: 'cli',
          maxRecordBytes: parseInteger('max-record-bytes', flags.maxRecordBytes ?? '1048576'),
          ...(flags.threads === undefined ? {} : { threads: parseInteger('threads', flags.threads) }),
          signal: controller.signal,
          onProgress: (p) => bar?.update({ ...p, phase: 'scrubbing' }),
        });
      } finally {
        bar?.stop();
        process.off('SIGINT', onSigint);
      }
      process.stdout.write((flags.json ? JSON.stringify(report) : formatScrubSummary(report)) + '\n');
    });
}
