import { OptoutError, describeValue } from '../errors.js';
import { printable } from '../report/printable.js';
import type { SuppressionReason } from '../store/jobs.js';
import { headerKey } from './header.js';

/**
 * Which rows of a file are opt-outs, by one column's value: a provider's opt-out flag, or the
 * user's `--where`. Compared trimmed and lower-cased.
 */
export interface RowFilter {
  /** 0-based column. */
  column: number;
  /** Header name, for the report and the rejects file. */
  name: string;
  values: string[];
  /**
   * `skip`: rows with one of `values` are skipped, any other value is imported (a provider's
   * "still subscribed" values: a value nobody mapped is an opt-out). `keep`: only rows with one
   * of `values` are imported (`--where`).
   */
  mode: 'skip' | 'keep';
}

export { SKIP_REASON } from '../workers/chunk-task.js';

/** An export recognised by its header (a JSON source's by its first record's keys). */
export interface CsvProvider {
  /** The report's `format`. */
  format: string;
  /** Header names that must all be present (compared as header keys: case, spaces, `-`, `_` ignored). */
  signature: string[];
  /** When set, no other columns may be present (a signature that is a subset of another's). */
  exact?: boolean;
  /**
   * Columns whose values say the row is not an opt-out, and those values: a row is skipped
   * when any of them says so.
   */
  optOut?: Array<{ column: string; subscribed: string[] }>;
  /**
   * The column that gives each row's own reason (see csv/reasons.ts); an empty or unknown value
   * keeps the import's reason.
   */
  reasonColumn?: string;
  /** What the rows stand for, for the user. */
  meaning: string;
  /** The import's reason when `--reason` is not given, for an export whose rows all have one. */
  reason?: SuppressionReason;
  /** Where the layout is documented. */
  source: string;
}

/**
 * Exports recognised by their header, most specific first. A flag's "subscribed" values are the
 * ones the provider documents; an empty cell is not among them: a row is skipped only when the
 * export itself says it is not an opt-out.
 */
export const CSV_PROVIDERS: readonly CsvProvider[] = [
  {
    format: 'ses-json', signature: ['EmailAddress', 'Reason', 'LastUpdateTime'], reasonColumn: 'Reason',
    meaning: 'the account-level suppression list (`aws sesv2 list-suppressed-destinations`): BOUNCE or COMPLAINT',
    source: 'https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_ListSuppressedDestinations.html',
  },
  {
    format: 'ses-bulk', signature: ['EmailAddress', 'Reason'], exact: true, reasonColumn: 'Reason',
    meaning: 'a suppression list bulk import (emailAddress, reason: BOUNCE or COMPLAINT)',
    source: 'https://docs.aws.amazon.com/ses/latest/dg/sending-email-suppression-list.html',
  },
  {
    format: 'postmark-json', signature: ['EmailAddress', 'SuppressionReason', 'Origin', 'CreatedAt'], reasonColumn: 'SuppressionReason',
    meaning: 'a message stream\'s suppressions: HardBounce, SpamComplaint or ManualSuppression',
    source: 'https://postmarkapp.com/developer/api/suppressions-api',
  },
  {
    format: 'ses-notifications', signature: ['emailAddress', 'notificationType', 'bounceType', 'bounceSubType', 'timestamp'], exact: true,
    reasonColumn: 'notificationType',
    optOut: [
      // As the webhook endpoint does: only a Permanent bounce suppresses; SES could not say for an Undetermined one.
      { column: 'bounceType', subscribed: ['transient', 'undetermined'] },
      { column: 'notificationType', subscribed: ['delivery', 'send', 'open', 'click', 'deliverydelay', 'reject', 'rendering failure'] },
    ],
    meaning: 'SES event notifications (JSON or NDJSON, as SNS sends them, in its envelope or not): a row per bounced or complained recipient',
    source: 'https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html',
  },
  {
    format: 'klaviyo-suppressions', signature: ['Email', 'Suppression Reason'], reasonColumn: 'Suppression Reason',
    meaning: 'suppressed profiles: Unsubscribed, Bounced, Spam complaint, Manually suppressed (User suppressed), Invalid email',
    source: 'https://help.klaviyo.com/hc/en-us/articles/115005246108',
  },
  {
    format: 'sfmc-bounces', reason: 'bounced', signature: ['EmailAddress', 'EventType', 'BounceCategory'],
    optOut: [
      { column: 'EventType', subscribed: ['softbounce'] },
      { column: 'BounceCategory', subscribed: ['soft', 'soft bounce', 'softbounce'] },
    ],
    meaning: 'a tracking extract\'s bounces; soft bounces are skipped',
    source: 'https://help.salesforce.com/s/articleView?id=mktg.mc_as_bounces.htm&language=en_US&type=5',
  },
  {
    format: 'hubspot-contacts', signature: ['Record ID', 'Email', 'Unsubscribed from all email'],
    optOut: [{ column: 'Unsubscribed from all email', subscribed: ['false', 'no'] }],
    meaning: 'contacts; rows with `Unsubscribed from all email` true are opt-outs',
    source: 'https://knowledge.hubspot.com/contacts/export-contacts',
  },
  {
    format: 'brevo-contacts', signature: ['EMAIL', 'EMAIL_BLACKLISTED'],
    optOut: [{ column: 'EMAIL_BLACKLISTED', subscribed: ['no', 'false', '0'] }],
    meaning: 'contacts; rows with `EMAIL_BLACKLISTED` Yes are opt-outs',
    source: 'https://help.brevo.com/hc/en-us/articles/209499265',
  },
  {
    format: 'activecampaign-contacts', signature: ['Email', 'First Name', 'Last Name', 'Status'], reasonColumn: 'Status',
    optOut: [{ column: 'Status', subscribed: ['active', 'subscribed', 'unconfirmed'] }],
    meaning: 'contacts; rows with `Status` Unsubscribed or Bounced are opt-outs',
    source: 'https://help.activecampaign.com/hc/en-us/articles/221073788',
  },
  {
    format: 'mailchimp-cleaned', reason: 'bounced', signature: ['Email Address', 'CLEAN_TIME'],
    meaning: 'cleaned members (hard bounces)',
    source: 'https://mailchimp.com/help/view-export-contacts/',
  },
  {
    format: 'mailchimp-unsubscribed', signature: ['Email Address', 'UNSUB_TIME'],
    meaning: 'unsubscribed members',
    source: 'https://mailchimp.com/help/view-export-contacts/',
  },
  {
    format: 'mailgun-bounces', reason: 'bounced', signature: ['address', 'code', 'error', 'created_at'],
    meaning: 'bounces', source: 'https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#suppressions',
  },
  {
    format: 'mailgun-unsubscribes', signature: ['address', 'tags', 'created_at'],
    meaning: 'unsubscribes', source: 'https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#suppressions',
  },
  {
    format: 'mailgun-complaints', reason: 'complaint', signature: ['address', 'created_at'], exact: true,
    meaning: 'complaints', source: 'https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#suppressions',
  },
  {
    format: 'sendgrid-spam-reports', reason: 'complaint', signature: ['email', 'ip', 'created'],
    meaning: 'spam reports', source: 'https://www.twilio.com/docs/sendgrid/ui/sending-email/index-suppressions',
  },
  {
    format: 'sendgrid-bounces', reason: 'bounced', signature: ['email', 'reason', 'status', 'created'],
    meaning: 'bounces', source: 'https://www.twilio.com/docs/sendgrid/ui/sending-email/index-suppressions',
  },
];

/** The provider whose signature the header has, if any. */
export function detectCsvProvider(names: string[]): CsvProvider | undefined {
  const keys = names.map(headerKey);
  return CSV_PROVIDERS.find((p) => {
    const wanted = p.signature.map(headerKey);
    return wanted.every((w) => keys.includes(w)) && (!p.exact || keys.every((k) => wanted.includes(k)));
  });
}

/** The index of a provider's column in this header, or -1. */
function providerColumn(name: string, names: string[]): number {
  const wanted = headerKey(name);
  return names.findIndex((n) => headerKey(n) === wanted);
}

/** The provider's opt-out flags as filters over this header. */
export function providerFilters(p: CsvProvider, names: string[]): RowFilter[] {
  const out: RowFilter[] = [];
  for (const flag of p.optOut ?? []) {
    const column = providerColumn(flag.column, names);
    if (column >= 0) out.push({ column, name: names[column] as string, values: flag.subscribed, mode: 'skip' });
  }
  return out;
}

/** The provider's reason column in this header, if it has one. */
export function providerReasonColumn(p: CsvProvider, names: string[]): number | undefined {
  const column = p.reasonColumn === undefined ? -1 : providerColumn(p.reasonColumn, names);
  return column < 0 ? undefined : column;
}

/**
 * `--where <column>=<value>[,<value>]`: only rows whose column holds one of the values are
 * imported. The column is a header name (exact, then case-insensitive) or a 1-based number.
 */
export function parseWhere(where: string, names: string[], hasHeader: boolean): RowFilter {
  const eq = where.indexOf('=');
  if (eq <= 0) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`where\` to be <column>=<value>[,<value>], got ${describeValue(where)}`);
  }
  const column = where.slice(0, eq);
  const values = where.slice(eq + 1).split(',').map((v) => v.trim().toLowerCase());
  const index = namedColumn(column, names, hasHeader, '--where');
  return { column: index, name: hasHeader ? names[index] as string : String(index + 1), values, mode: 'keep' };
}

/**
 * A column named by an option (`--where`, `--reason-column`): a header name (exact, then
 * case-insensitive) or a 1-based number.
 * @throws OptoutError OPTOUT_ERR_COLUMN_NOT_FOUND when the header has no such column.
 */
export function namedColumn(column: string, names: string[], hasHeader: boolean, option: string): number {
  let index = -1;
  if (/^\d+$/.test(column)) index = Number(column) - 1;
  else if (hasHeader) {
    index = names.indexOf(column);
    if (index < 0) index = names.findIndex((n) => n.trim().toLowerCase() === column.trim().toLowerCase());
  }
  if (index < 0 || index >= names.length) {
    throw new OptoutError('OPTOUT_ERR_COLUMN_NOT_FOUND', `${option} names no column \`${printable(column, 64)}\` ` +
      `(${hasHeader ? 'a header name or ' : ''}a number from 1 to ${names.length})`, { location: { line: 1, column } });
  }
  return index;
}
