import { basename } from 'node:path';
import type { ImportOptions } from '../options.js';
import type { ImportReport, MemberReport } from '../report/summary.js';
import { zipLists } from '../source/zip.js';
import type { SuppressionReason } from '../store/jobs.js';

/**
 * Members of a Mailchimp audience export that list opt-outs. Only an archive whose lists are all
 * such members is imported whole: beside them, the subscribed members are known not to be
 * opt-outs; in any other archive holding several lists, which ones are lists of opt-outs is the
 * user's to say (`member`).
 */
const AUDIENCE_LISTS = /(^|\/)(unsubscribed|cleaned)_members_export[^/]*$/i;

/** The members of an audience export to import, or undefined when the source is anything else (the import then reads it as before). */
export async function audienceMembers(input: ImportOptions): Promise<{ lists: string[]; subscribed: string[] } | undefined> {
  // A member named, or a job reserved (an HTTP import is one job, of one member), reads one member.
  if (input.member !== undefined || input.jobId !== undefined || input.source.kind !== 'file') return undefined;
  let found;
  try {
    found = await zipLists(input.source.path, basename(input.source.path));
  } catch {
    // A missing file or a broken archive: the import of the source says so, with its code.
    return undefined;
  }
  if (found === undefined || found.lists.length < 2 || !found.lists.every((name) => AUDIENCE_LISTS.test(name))) return undefined;
  return found;
}

/** Each member's rejects file: the one asked for, with the member's file name before its extension. */
function rejectsOf(rejects: string | undefined, member: string): string | undefined {
  if (rejects === undefined) return undefined;
  const name = (member.split('/').at(-1) ?? member).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '_');
  const dot = rejects.lastIndexOf('.');
  return dot > rejects.lastIndexOf('/') ? `${rejects.slice(0, dot)}-${name}${rejects.slice(dot)}` : `${rejects}-${name}`;
}

function memberOf(name: string, r: ImportReport, subscribed: boolean): MemberReport {
  return {
    name, format: r.format, reason: subscribed ? null : r.reason, jobId: r.jobId, subscribed,
    rows: r.rows, valid: r.valid, invalid: r.invalid, skipped: subscribed ? r.rows : r.skipped,
    unique: r.unique, duplicates: r.duplicates, added: r.added, alreadySuppressed: r.alreadySuppressed,
  };
}

/** One report for the whole archive: the members' counts added up, and each member's own. */
function combine(input: ImportOptions, lists: ReadonlyArray<[string, ImportReport]>, subscribed: ReadonlyArray<[string, ImportReport]>,
  started: number): ImportReport {
  const first = (lists[0] as [string, ImportReport])[1];
  const members = [...lists.map(([n, r]) => memberOf(n, r, false)), ...subscribed.map(([n, r]) => memberOf(n, r, true))];
  const out: ImportReport = { ...first, members, jobId: null, member: null, format: 'mailchimp-audience' };
  const all = [...lists, ...subscribed];
  for (const k of ['rows', 'bytes', 'invalidUtf8'] as const) out[k] = all.reduce((n, [, r]) => n + r[k], 0);
  for (const k of ['valid', 'invalid', 'unique', 'duplicates', 'added', 'alreadySuppressed'] as const) out[k] = lists.reduce((n, [, r]) => n + r[k], 0);
  // A subscribed member's rows are all skipped: it was read to be counted, not imported.
  out.skipped = members.reduce((n, m) => n + m.skipped, 0);
  const reasons: Partial<Record<SuppressionReason, number>> = {};
  for (const [, r] of lists) {
    for (const [reason, n] of Object.entries(r.reasons) as Array<[SuppressionReason, number]>) reasons[reason] = (reasons[reason] ?? 0) + n;
  }
  out.reasons = reasons;
  out.reason = [...new Set(lists.map(([, r]) => r.reason))].join(', ');
  out.reasonColumn = null;
  out.skipRule = subscribed.length === 0 ? null : `${subscribed.map(([n]) => n).join(', ')} lists subscribed members`;
  out.confirmed = lists.every(([, r]) => r.confirmed);
  out.resumed = lists.some(([, r]) => r.resumed);
  out.rejectsFile = input.rejects ?? null;
  out.peakRssBytes = Math.max(...lists.map(([, r]) => r.peakRssBytes));
  out.error = lists.find(([, r]) => r.error !== null)?.[1].error ?? null;
  out.durationMs = Math.round(performance.now() - started);
  out.rowsPerSecond = out.durationMs > 0 ? Math.round(out.rows / (out.durationMs / 1000)) : 0;
  return out;
}

/**
 * Imports every opt-out list of an audience export, one job per member (each with its own
 * reason, checkpoint and resumption), and counts the subscribed members' rows as skipped. A
 * confirmation covers the archive: every member is analysed first, and the sum of their
 * `unique` is what is confirmed, before any member is written.
 */
export async function importMembers(input: ImportOptions, found: { lists: string[]; subscribed: string[] },
  importOne: (o: ImportOptions) => Promise<ImportReport>): Promise<ImportReport> {
  const started = performance.now();
  const run = async (confirm: ImportOptions['confirm']): Promise<Array<[string, ImportReport]>> => {
    const out: Array<[string, ImportReport]> = [];
    for (const member of found.lists) out.push([member, await importOne({ ...input, member, confirm, rejects: rejectsOf(input.rejects, member) })]);
    return out;
  };
  // Read to be counted, never imported: its first column is taken as it is, and no row is kept.
  const subscribed: Array<[string, ImportReport]> = [];
  for (const member of found.subscribed) {
    subscribed.push([member, await importOne({
      ...input, member, confirm: { mode: 'dry-run' }, column: '1', where: '1=\u0000', allRows: undefined, reasonColumn: undefined, rejects: undefined,
    })]);
  }
  const confirm = input.confirm;
  if (confirm.mode === 'yes' || confirm.mode === 'dry-run') return combine(input, await run(confirm), subscribed, started);
  const analysis = combine(input, await run({ mode: 'dry-run' }), subscribed, started);
  const dryRun = { ...analysis, dryRun: false };
  const answer = confirm.mode === 'count' ? confirm.count : await confirm.ask(dryRun);
  if (answer !== analysis.unique) return { ...dryRun, expectedCount: answer ?? null };
  return combine(input, await run({ mode: 'yes' }), subscribed, started);
}
