/**
 * Amazon SES event notifications (bounces, complaints and the rest, as SNS delivers them, an SQS
 * queue keeps them or Firehose writes them) as rows of a list: one row per recipient, under
 * fixed columns (`emailAddress`, `notificationType`, `bounceType`, `bounceSubType`, `timestamp`), so that the CSV pipeline recognises them by header (`ses-notifications`, see
 * csv/providers.ts) and skips what is not an opt-out. A record wrapped in its SNS envelope
 * (`Type: Notification`, the event as the text of `Message`) is unwrapped first.
 */

type Row = Record<string, unknown>;

const isRecord = (v: unknown): v is Row => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The SES event in a record: the record itself, or the event its SNS envelope carries. */
function eventOf(record: Row): Row | undefined {
  let event: unknown = record;
  if (record['Type'] === 'Notification' && typeof record['Message'] === 'string') {
    try {
      event = JSON.parse(record['Message']);
    } catch {
      return undefined;
    }
  }
  if (!isRecord(event)) return undefined;
  const kind = event['notificationType'] ?? event['eventType'];
  return typeof kind === 'string' && isRecord(event['mail']) ? event : undefined;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

function addressesOf(list: unknown, field: string): string[] {
  return Array.isArray(list) ? list.map((r: unknown) => (isRecord(r) ? text(r[field]) : '')) : [];
}

/**
 * The rows of one SES event, or undefined for a record that is not one. A bounce gives a row
 * per bounced recipient (with its `bounceType`: Permanent, Transient or Undetermined), a
 * complaint one per complained recipient; any other event (Delivery, Send, Open...) one per
 * destination of its mail, which the export's skip rule leaves out. An event without
 * recipients gives one row with an empty address: an invalid row, reported, never dropped
 * unseen.
 */
export function sesEventRows(record: Row): Row[] | undefined {
  const event = eventOf(record);
  if (event === undefined) return undefined;
  const kind = text(event['notificationType'] ?? event['eventType']);
  const bounce = isRecord(event['bounce']) ? event['bounce'] : undefined;
  const complaint = isRecord(event['complaint']) ? event['complaint'] : undefined;
  const mail = event['mail'] as Row;
  let emails: string[];
  let timestamp: string;
  if (kind === 'Bounce') {
    emails = addressesOf(bounce?.['bouncedRecipients'], 'emailAddress');
    timestamp = text(bounce?.['timestamp']);
  } else if (kind === 'Complaint') {
    emails = addressesOf(complaint?.['complainedRecipients'], 'emailAddress');
    timestamp = text(complaint?.['timestamp']);
  } else {
    emails = Array.isArray(mail['destination']) ? mail['destination'].map(text) : [];
    timestamp = text(mail['timestamp']);
  }
  if (emails.length === 0) emails = [''];
  return emails.map((emailAddress) => ({
    emailAddress, notificationType: kind, bounceType: text(bounce?.['bounceType']), bounceSubType: text(bounce?.['bounceSubType']), timestamp,
  }));
}

/** Records as rows, SES events spread to a row per recipient; any other record as it is. In batches, as they come. */
export async function* spreadSesEvents(batches: AsyncIterable<Row[]>): AsyncGenerator<Row[]> {
  for await (const records of batches) {
    const out: Row[] = [];
    for (const record of records) {
      const rows = sesEventRows(record);
      if (rows === undefined) out.push(record);
      else for (const r of rows) out.push(r);
    }
    yield out;
  }
}
