import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { OptoutError } from '../../errors.js';
import type { Confirmation } from '../../options.js';
import { errorOfJob } from '../../store/jobs.js';
import { formatSummary, type ImportReport } from '../../report/summary.js';
import { ProgressBar } from '../progress.js';
import { dbOption, parseCount, parseInteger } from '../args.js';

interface ImportFlags {
  column?: string;
  header?: boolean;
  where?: string;
  allRows?: boolean;
  format?: string;
  member?: string;
  delimiter?: string;
  encoding?: string;
  unit?: string;
  reason?: string;
  reasonColumn?: string;
  source?: string;
  maxRecordBytes?: string;
  rejects?: string;
  dryRun?: boolean;
  confirm?: string;
  yes?: boolean;
  json?: boolean;
  threads?: string;
}

async function askCount(analysis: ImportReport): Promise<number | undefined> {
  process.stderr.write(`${formatSummary(analysis)}\n\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    if (analysis.skipped > 0) {
      process.stderr.write(`${analysis.skipped.toLocaleString('en-US')} rows are skipped as not opted out ` +
        `(${analysis.skipRule ?? ''}); they are not counted below.\n`);
    }
    const answer = await rl.question(`${analysis.unique.toLocaleString('en-US')} addresses ` +
      `${analysis.error === null ? '' : 'from the rows before the broken record '}will never be emailed again. ` +
      'Type that number to import them (anything else cancels): ');
    const n = Number(answer.replace(/[\s,._]/g, ''));
    return answer.trim() === '' || !Number.isInteger(n) ? undefined : n;
  } finally {
    rl.close();
  }
}

export function registerImport(program: Command): void {
  program.command('import <source>')
    .description('import an opt-out list: CSV, JSON or NDJSON (a file, a .gz or .zip file, or - for stdin)')
    .option('--column <name|index>', 'email column: header name or 1-based index (default: detected)')
    .option('--header', 'the first line is a header, even when it holds an address')
    .option('--no-header', 'the first line is data: import it too (default: detected)')
    .option('--where <column=values>', 'import only rows whose column holds one of these comma-separated values')
    .option('--all-rows', 'import every row, also those a recognised export marks as still subscribed')
    .option('--format <format>', 'csv, json or ndjson (default: detected from the content)')
    .option('--member <name>', 'the member of a ZIP archive to import (default: its one list)')
    .option('--delimiter <char>', 'field delimiter: , ; | or tab (default: detected)')
    .option('--encoding <name>', 'utf8, latin1, windows-1252, utf16le or utf16be', 'utf8')
    .option('--unit <id>', 'business unit (default: account-wide)')
    // No commander default: a recognised export's own reason (mailchimp-cleaned: bounced) applies unless one is given.
    .option('--reason <reason>', 'unsubscribed, bounced, complaint or manual (default: a recognised export\'s own, else unsubscribed)')
    .option('--reason-column <name>', 'column giving each row\'s own reason (bounce, complaint, unsubscribe, manual...); others keep --reason')
    .option('--source <label>', 'source label stored with the entries (default: file name)')
    .option('--max-record-bytes <n>', 'largest CSV record accepted', '1048576')
    .option('--rejects <file>', 'write invalid rows to this CSV file (line,row,value,reason)')
    .option('--dry-run', 'analyse and report; write nothing')
    .option('--confirm <n>', 'import only if the number of unique addresses equals n')
    .option('--yes', 'import without confirmation')
    .option('--json', 'print one JSON report on stdout')
    .option('--threads <n>', 'parsing threads (default: one per core)')
    .action(async (sourceArg: string, flags: ImportFlags, cmd: Command) => {
      const chosen = [flags.dryRun, flags.confirm !== undefined, flags.yes].filter(Boolean).length;
      if (chosen > 1) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'Use only one of --dry-run, --confirm and --yes');
      const interactive = sourceArg !== '-' && Boolean(process.stdin.isTTY) && Boolean(process.stderr.isTTY);
      const bar = process.stderr.isTTY && !flags.json ? new ProgressBar() : undefined;
      const ask = async (analysis: ImportReport): Promise<number | undefined> => {
        bar?.stop();
        return interactive ? askCount(analysis) : undefined;
      };
      const confirm: Confirmation = flags.dryRun ? { mode: 'dry-run' }
        : flags.yes ? { mode: 'yes' }
        : flags.confirm !== undefined ? { mode: 'count', count: parseCount('confirm', flags.confirm) }
        : { mode: 'ask', ask };
      const controller = new AbortController();
      const onSigint = (): void => {
        if (controller.signal.aborted) process.exit(130);
        controller.abort();
        process.stderr.write('\nStopping after the current batch; run the same command again to resume.\n');
      };
      // SIGTERM (a service manager, `kill`) stops the same way: the job keeps its checkpoint and the temporary files go.
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigint);
      // The pipeline (and its worker pool) is loaded by this command only.
      const { runImport } = await import('../../pipeline/run-import.js');
      let report: ImportReport;
      try {
        report = await runImport({
          source: sourceArg === '-' ? { kind: 'stdin', stream: process.stdin } : { kind: 'file', path: sourceArg },
          db: dbOption(cmd),
          ...(flags.column === undefined ? {} : { column: flags.column }),
          ...(flags.header === undefined ? {} : { header: flags.header }),
          ...(flags.where === undefined ? {} : { where: flags.where }),
          ...(flags.allRows === undefined ? {} : { allRows: flags.allRows }),
          ...(flags.format === undefined ? {} : { format: flags.format }),
          ...(flags.member === undefined ? {} : { member: flags.member }),
          ...(flags.delimiter === undefined ? {} : { delimiter: flags.delimiter }),
          ...(flags.encoding === undefined ? {} : { encoding: flags.encoding }),
          ...(flags.unit === undefined ? {} : { unit: flags.unit }),
          ...(flags.reason === undefined ? {} : { reason: flags.reason }),
          ...(flags.reasonColumn === undefined ? {} : { reasonColumn: flags.reasonColumn }),
          ...(flags.source === undefined ? {} : { sourceLabel: flags.source }),
          ...(flags.rejects === undefined ? {} : { rejects: flags.rejects }),
          maxRecordBytes: parseInteger('max-record-bytes', flags.maxRecordBytes ?? '1048576'),
          ...(flags.threads === undefined ? {} : { threads: parseInteger('threads', flags.threads) }),
          confirm,
          signal: controller.signal,
          onProgress: (p) => bar?.update(p),
          onEvent: (e) => {
            if (e.type === 'resumed') {
              bar?.stop();
              process.stderr.write(`Resuming interrupted job ${e.jobId} at line ${e.line} (row ${e.row}).\n`);
            } else if (e.type === 'repeated') {
              bar?.stop();
              process.stderr.write(`This file was already imported by job ${e.jobId}${e.finishedAt === null ? '' : ` (completed ${e.finishedAt})`} ` +
                'with the same options: its addresses are suppressed already, and this new job holds them too.\n');
            } else if (e.type === 'spooling' && !flags.json) {
              process.stderr.write('Reading stdin into a temporary file so it can be analysed before importing...\n');
            } else if (e.type === 'waiting' && !flags.json) {
              bar?.stop();
              process.stderr.write('Another import into this database is running: waiting for it to finish...\n');
            }
          },
        });
      } finally {
        bar?.stop();
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
      if (flags.json) process.stdout.write(JSON.stringify(report) + '\n');
      else process.stdout.write(formatSummary(report) + '\n');
      // A dry run reports a broken record as an import of the same file would: exit 2 with it.
      if (report.dryRun && report.error !== null) throw errorOfJob(report.error);
      if (!report.confirmed && !report.dryRun) {
        if (!flags.json && report.expectedCount === null) {
          process.stderr.write(`Nothing was written. To import, run again with --confirm ${report.unique} (or --yes in scripts).\n`);
        }
        process.exitCode = 3;
      }
    });
}
