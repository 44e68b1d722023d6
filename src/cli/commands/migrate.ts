import type { Command } from 'commander';
import { migrateDatabase } from '../../store/open.js';
import { redact } from '../../store/pg/url.js';
import { dbOption } from '../args.js';

/** What `optout migrate --json` prints. */
export interface MigrateReport {
  /** The database, without its password. */
  db: string;
  /** The schema version found, 0 for a database without the schema. */
  from: number;
  /** The schema version now. */
  version: number;
}

export function describeMigration(r: MigrateReport): string {
  const what = r.from === r.version ? 'already at' : r.from === 0 ? 'created at' : `upgraded from ${r.from} to`;
  return `schema of ${r.db} ${what} version ${r.version}`;
}

export function registerMigrate(program: Command): void {
  program.command('migrate')
    .description('create or upgrade the schema of a PostgreSQL database (--db postgres://...); idempotent')
    .option('--json', 'print the result as JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const db = dbOption(cmd);
      const r = await migrateDatabase(db);
      const report: MigrateReport = { db: redact(db), from: r.from, version: r.version };
      process.stdout.write((flags.json ? JSON.stringify(report) : describeMigration(report)) + '\n');
    });
}
