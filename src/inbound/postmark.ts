/**
 * Postmark webhooks: authenticated by HTTP basic auth on the webhook URL (Postmark signs
 * nothing), compared as SHA-256 digests in constant time. One event per request, by
 * `RecordType`.
 *
 * Suppress: `Bounce` with `Type: HardBounce` (`bounced`), `SpamComplaint` (`complaint`),
 * `SubscriptionChange` with `SuppressSending: true` (its SuppressionReason mapped: HardBounce,
 * SpamComplaint, else `unsubscribed`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SuppressionReason } from '../store/jobs.js';
import type { InboundEndpoint } from './endpoints.js';
import { eventId, header, isObject, malformed, parseBody, text, typeLabel, unauthenticated, type Delivery, type InboundRequest } from './provider.js';

function verifyBasicAuth(endpoint: InboundEndpoint, req: InboundRequest): void {
  const auth = header(req, 'authorization');
  const m = auth === undefined ? null : /^Basic[ ]+([A-Za-z0-9+/=]+)[ ]*$/i.exec(auth);
  if (m?.[1] === undefined) throw unauthenticated('The Postmark delivery has no basic auth: put the credentials in the webhook URL');
  const given = createHash('sha256').update(Buffer.from(m[1], 'base64')).digest();
  const expected = Buffer.from(endpoint.basicHash ?? '', 'hex');
  if (expected.length !== given.length || !timingSafeEqual(given, expected)) throw unauthenticated('The Postmark basic auth is wrong');
}

const CHANGE_REASONS: Readonly<Record<string, SuppressionReason>> = { HardBounce: 'bounced', SpamComplaint: 'complaint' };

/**
 * Postmark's `ID`s exceed JavaScript's safe integers (two would read the same), so an event is
 * named by its message, its address and its kind; a SubscriptionChange also by its time.
 */
function idOf(e: Record<string, unknown>, record: string, address: unknown): string {
  const message = eventId(e['MessageID'] ?? e['ID'], 'MessageID', `the ${typeLabel(record)} event`);
  const at = record === 'SubscriptionChange' ? `:${String(e['ChangedAt'] ?? '')}` : '';
  return `${record}:${message}:${typeof address === 'string' ? address : ''}${at}`;
}

export function receivePostmark(endpoint: InboundEndpoint, req: InboundRequest): Delivery {
  verifyBasicAuth(endpoint, req);
  const e = parseBody(req.body);
  if (!isObject(e)) throw malformed('Expected the Postmark body to be a JSON object');
  const record = text(e, 'RecordType', 'the Postmark event');
  if (record === 'SubscriptionChange') {
    const id = idOf(e, record, e['Recipient']);
    if (e['SuppressSending'] !== true) return { kind: 'events', events: [{ id, type: 'SubscriptionChange.reactivate', reason: undefined, emails: [] }] };
    const reason = CHANGE_REASONS[String(e['SuppressionReason'])] ?? 'unsubscribed';
    return { kind: 'events', events: [{ id, type: 'SubscriptionChange.suppress', reason, emails: [text(e, 'Recipient', 'the SubscriptionChange')] }] };
  }
  const id = idOf(e, record, e['Email']);
  if (record === 'Bounce') {
    const hard = e['Type'] === 'HardBounce';
    return { kind: 'events', events: [{ id, type: `Bounce.${typeLabel(e['Type'])}`, reason: hard ? 'bounced' : undefined, emails: hard ? [text(e, 'Email', 'the Bounce')] : [] }] };
  }
  if (record === 'SpamComplaint') return { kind: 'events', events: [{ id, type: record, reason: 'complaint', emails: [text(e, 'Email', 'the SpamComplaint')] }] };
  return { kind: 'events', events: [{ id, type: typeLabel(record), reason: undefined, emails: [] }] };
}
