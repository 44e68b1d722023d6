import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { exportText, type ExportFormat } from '../../manage/export.js';
import { writeFileStream } from '../../files/file-stream.js';
import { withStore, writeOut } from '../args.js';

export function registerExport(program: Command): void {
  program.command('export')
    .description('write the list as CSV (email,key,unit,reason,source,job,added_at) or NDJSON')
    .option('--unit <id>', 'one unit\'s entries, or * for the account-wide ones (default: all)')
    .option('--reason <r>', 'only entries of this reason')
    .option('--format <f>', 'csv or ndjson', 'csv')
    .option('--spreadsheet-safe', "prefix cells starting with = + - @ tab or CR with ' (for spreadsheets; not for re-import)")
    .option('--out <file>', 'write to this file (default: stdout)')
    .action(async (flags: { unit?: string; reason?: string; format: string; spreadsheetSafe?: boolean; out?: string }, cmd: Command) => {
      await withStore(cmd, 'optout export', async (store) => {
        const text = exportText(store, { unit: flags.unit, reason: flags.reason, format: flags.format as ExportFormat, spreadsheetSafe: flags.spreadsheetSafe });
        if (flags.out === undefined) {
          for await (const piece of text) await writeOut(piece);
          return;
        }
        // Written beside the target and renamed at the end: a failed export never leaves a
        // partial list under the final name.
        const tmp = `${flags.out}.${process.pid}.tmp`;
        await writeFileStream(tmp, {}, (out) => pipeline(Readable.from(text), out));
        try {
          await rename(tmp, flags.out);
        } catch (err) {
          await rm(tmp, { force: true });
          throw err;
        }
      });
    });
}
