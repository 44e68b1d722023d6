/**
 * Mailgun webhooks: a JSON body with `signature` { timestamp, token, signature } and
 * `event-data`. The signature is the HMAC-SHA256 (hex) of timestamp followed by token, keyed
 * with the account's HTTP webhook signing key. The event's `id` names it.
 *
 * Suppress: `failed` with `severity: permanent` (`bounced`), `complained`, `unsubscribed`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { InboundEndpoint } from './endpoints.js';
import {
  assertFresh, eventId, isObject, malformed, parseBody, text, typeLabel, unauthenticated, unixSeconds, type Delivery, type InboundRequest,
} from './provider.js';

export function receiveMailgun(endpoint: InboundEndpoint, req: InboundRequest, now: number): Delivery {
  const body = parseBody(req.body);
  if (!isObject(body)) throw malformed('Expected the Mailgun body to be a JSON object');
  const sig = body['signature'];
  if (!isObject(sig)) throw unauthenticated('The Mailgun delivery is not signed (no `signature` object)');
  const { timestamp, token, signature } = sig;
  if (typeof timestamp !== 'string' || typeof token !== 'string' || typeof signature !== 'string') {
    throw unauthenticated('The Mailgun `signature` object lacks its timestamp, token or signature');
  }
  const expected = createHmac('sha256', endpoint.signingKey ?? '').update(timestamp + token, 'utf8').digest();
  const given = /^[0-9a-f]{64}$/i.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw unauthenticated('The Mailgun signature does not verify');
  assertFresh(unixSeconds(timestamp, 'the Mailgun timestamp'), now, 'The Mailgun timestamp');

  const data = body['event-data'];
  if (!isObject(data)) throw malformed('Expected `event-data` in the Mailgun body');
  const id = eventId(data['id'], 'id', 'event-data');
  const name = text(data, 'event', 'event-data');
  const reason = name === 'failed' ? (data['severity'] === 'permanent' ? 'bounced' : undefined)
    : name === 'complained' ? 'complaint' : name === 'unsubscribed' ? 'unsubscribed' : undefined;
  const type = name === 'failed' ? `failed.${typeLabel(data['severity'])}` : typeLabel(name);
  return { kind: 'events', events: [{ id, type, reason, emails: reason === undefined ? [] : [text(data, 'recipient', 'event-data')] }] };
}
