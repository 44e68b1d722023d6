/**
 * SendGrid's signed Event Webhook: an ECDSA P-256 signature (SHA-256, DER, base64) over the
 * timestamp header's text followed by the raw body, in `X-Twilio-Email-Event-Webhook-Signature`,
 * with the timestamp (Unix seconds) in `X-Twilio-Email-Event-Webhook-Timestamp`. The body is
 * an array of events, each with its `sg_event_id`.
 *
 * Suppress: `bounce` (but not a block: `type: blocked`), `dropped` of a bounced, unsubscribed
 * or spam-reporting address, `spamreport`, `unsubscribe`, `group_unsubscribe`.
 */
import { createPublicKey, verify } from 'node:crypto';
import type { SuppressionReason } from '../store/jobs.js';
import type { InboundEndpoint } from './endpoints.js';
import {
  assertFresh, eventId, header, isObject, malformed, parseBody, text, typeLabel, unauthenticated, unixSeconds, type Delivery, type InboundRequest,
  type MappedEvent,
} from './provider.js';

export const SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';

const REASONS: Readonly<Record<string, SuppressionReason>> = {
  bounce: 'bounced', spamreport: 'complaint', unsubscribe: 'unsubscribed', group_unsubscribe: 'unsubscribed',
};
/** `dropped` events name why SendGrid would not send; these are opt-outs of their own. */
const DROPPED: Readonly<Record<string, SuppressionReason>> = {
  'Bounced Address': 'bounced', 'Unsubscribed Address': 'unsubscribed', 'Spam Reporting Address': 'complaint',
};

function verifySignature(endpoint: InboundEndpoint, req: InboundRequest, now: number): void {
  const signature = header(req, SIGNATURE_HEADER);
  const timestamp = header(req, TIMESTAMP_HEADER);
  if (signature === undefined || timestamp === undefined) throw unauthenticated('The SendGrid delivery is not signed (no signature or timestamp header)');
  const key = createPublicKey({ key: Buffer.from(endpoint.publicKey ?? '', 'base64'), format: 'der', type: 'spki' });
  const signed = Buffer.concat([Buffer.from(timestamp, 'utf8'), req.body]);
  let ok = false;
  try {
    ok = verify('sha256', signed, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw unauthenticated('The SendGrid signature does not verify');
  assertFresh(unixSeconds(timestamp, 'the SendGrid timestamp'), now, 'The SendGrid timestamp');
}

function mapEvent(e: unknown, i: number): MappedEvent {
  const where = `event ${i}`;
  if (!isObject(e)) throw malformed(`Expected ${where} to be an object`);
  const id = eventId(e['sg_event_id'], 'sg_event_id', where);
  const name = text(e, 'event', where);
  let reason = REASONS[name];
  let type = name;
  if (name === 'bounce' && e['type'] === 'blocked') {
    reason = undefined;
    type = 'blocked';
  }
  if (name === 'dropped') reason = DROPPED[String(e['reason'])];
  return { id, type: typeLabel(type), reason, emails: reason === undefined ? [] : [text(e, 'email', where)] };
}

export function receiveSendgrid(endpoint: InboundEndpoint, req: InboundRequest, now: number): Delivery {
  verifySignature(endpoint, req, now);
  const body = parseBody(req.body);
  if (!Array.isArray(body)) throw malformed('Expected the SendGrid body to be an array of events');
  return { kind: 'events', events: body.map(mapEvent) };
}
