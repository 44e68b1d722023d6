/**
 * One webhook delivery, end to end: find the endpoint, let its provider check authenticity and
 * map the events, then write every suppressing event in ONE ledger write (`addEvents`): its
 * suppressions in the endpoint's scope, with the mapped reason and source `<provider>-webhook`,
 * an audit record each, and the event's id, so that a retried delivery writes nothing.
 *
 * Events that do not suppress (deliveries, opens, soft bounces) are counted and answered 200:
 * a provider that got an error would retry them forever.
 */
import { readFile, rm } from 'node:fs/promises';
import { hashKeyTuple } from '../filter/hash.js';
import { OptoutError } from '../errors.js';
import { fetchSource } from '../fetch/fetch-source.js';
import { normalizeEmail } from '../policy/email.js';
import { ACCOUNT_WIDE, type DeliveredEvent, type Ledger, type NewSuppression } from '../store/store.js';
import { getEndpoint, type InboundEndpoint } from './endpoints.js';
import { receiveMailgun } from './mailgun.js';
import { receivePostmark } from './postmark.js';
import { malformed, type Delivery, type InboundRequest, type MappedEvent, type ProviderName } from './provider.js';
import { receiveSendgrid } from './sendgrid.js';
import { CertificateCache, receiveSns, type FetchText } from './sns.js';

/** Events a delivery may carry: SendGrid batches hold up to about 1,000. */
export const MAX_EVENTS = 5000;
const MAX_FETCHED_BYTES = 64 * 1024;

export type EventOutcomeKind = 'suppressed' | 'duplicate' | 'ignored' | 'invalid_address';

/** What a delivery did. */
export interface InboundResult {
  provider: ProviderName;
  /** Events in the delivery. */
  events: number;
  /** Events whose suppressions were written now. */
  suppressed: number;
  /** Suppressing events written by an earlier delivery: nothing was written again. */
  duplicates: number;
  /** Events that do not suppress. */
  ignored: number;
  /** Addresses that fail the address policy, skipped (nobody can be emailed at them). */
  invalidAddresses: number;
  /** An SNS subscription confirmed by this delivery. */
  confirmed: boolean;
  /** Per event, its type and outcome: what `/metrics` counts. */
  tally: Array<{ type: string; outcome: EventOutcomeKind }>;
}

export interface ReceiveOptions {
  /** @default Date.now() */
  now?: number;
  /** SNS certificates fetched and kept between deliveries. @default one cache per process */
  certificates?: CertificateCache;
  /** How a checked SNS URL (a SubscribeURL) is fetched. @default the project's fetch, public addresses only */
  fetchText?: FetchText;
}

/** GETs a small body with the project's fetch and URL policy (public addresses, size and time limits). */
export const fetchSmallText: FetchText = async (url) => {
  const res = await fetchSource(url, { maxBytes: MAX_FETCHED_BYTES, maxRedirections: 0, timeouts: { connectMs: 5000, headersMs: 10_000, bodyMs: 10_000, totalMs: 20_000 } });
  if (res.status !== 'fetched') throw new OptoutError('OPTOUT_ERR_FETCH', `Unexpected answer from ${url.host}`);
  try {
    return await readFile(res.path, 'utf8');
  } finally {
    await rm(res.path, { force: true });
  }
};

const sharedCertificates = new CertificateCache(fetchSmallText);

async function deliveryOf(endpoint: InboundEndpoint, req: InboundRequest, o: ReceiveOptions, now: number): Promise<Delivery> {
  switch (endpoint.provider) {
    case 'sns': return receiveSns(endpoint, req, o.certificates ?? sharedCertificates, now);
    case 'sendgrid': return receiveSendgrid(endpoint, req, now);
    case 'mailgun': return receiveMailgun(endpoint, req, now);
    case 'postmark': return receivePostmark(endpoint, req);
  }
}

/**
 * Receives one delivery for endpoint `id`.
 * @throws OptoutError OPTOUT_ERR_NOT_FOUND for an unknown endpoint; OPTOUT_ERR_INBOUND_UNAUTHENTICATED
 *   when authenticity is not proven or the delivery is stale; OPTOUT_ERR_INBOUND_PAYLOAD for a
 *   malformed body; OPTOUT_ERR_PAYLOAD_TOO_LARGE beyond {@link MAX_EVENTS}; OPTOUT_ERR_FETCH when
 *   an SNS subscription could not be confirmed.
 */
export async function receiveInbound(store: Ledger, id: string, req: InboundRequest, o: ReceiveOptions = {}): Promise<InboundResult> {
  const endpoint = await getEndpoint(store, id);
  if (endpoint === undefined) throw new OptoutError('OPTOUT_ERR_NOT_FOUND', 'No inbound endpoint has this id');
  const now = o.now ?? Date.now();
  const delivery = await deliveryOf(endpoint, req, o, now);
  const result: InboundResult = {
    provider: endpoint.provider, events: 0, suppressed: 0, duplicates: 0, ignored: 0, invalidAddresses: 0, confirmed: false, tally: [],
  };
  if (delivery.kind === 'confirm-subscription') {
    await (o.fetchText ?? fetchSmallText)(delivery.url);
    result.confirmed = true;
    result.events = 1;
    result.ignored = 1;
    result.tally.push({ type: delivery.type, outcome: 'ignored' });
    return result;
  }
  if (delivery.events.length > MAX_EVENTS) {
    throw new OptoutError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', `At most ${MAX_EVENTS} events a delivery, got ${delivery.events.length}`);
  }
  result.events = delivery.events.length;
  const written: Array<{ event: MappedEvent; delivered: DeliveredEvent }> = [];
  for (const event of delivery.events) {
    if (event.reason === undefined) {
      result.ignored++;
      result.tally.push({ type: event.type, outcome: 'ignored' });
      continue;
    }
    const adds = suppressionsOf(endpoint, event);
    result.invalidAddresses += event.emails.length - adds.length;
    if (adds.length === 0) {
      result.tally.push({ type: event.type, outcome: 'invalid_address' });
      continue;
    }
    written.push({ event, delivered: { id: `${endpoint.id}:${event.id}`, adds } });
  }
  const outcomes = await store.addEvents(written.map((w) => w.delivered), (add, outcome, eventId) => store.audit({
    actor: add.actor, action: 'add', key: add.key, job: outcome.job, unit: add.scope === ACCOUNT_WIDE ? null : add.scope,
    details: { reason: add.reason, source: add.source, event: eventId.slice(endpoint.id.length + 1), alreadySuppressed: !outcome.added },
  }));
  outcomes.forEach((out, i) => {
    const type = (written[i] as { event: MappedEvent }).event.type;
    if (out.duplicate) result.duplicates++;
    else result.suppressed++;
    result.tally.push({ type, outcome: out.duplicate ? 'duplicate' : 'suppressed' });
  });
  return result;
}

/** The event's addresses that pass the address policy, as adds in the endpoint's scope. */
function suppressionsOf(endpoint: InboundEndpoint, event: MappedEvent): NewSuppression[] {
  const adds: NewSuppression[] = [];
  for (const email of event.emails) {
    const n = normalizeEmail(email);
    if (!n.valid) continue;
    const [h1, h2] = hashKeyTuple(n.key);
    adds.push({
      key: n.key, h1, h2, address: n.address, scope: endpoint.unit ?? ACCOUNT_WIDE, reason: event.reason ?? 'bounced',
      source: `${endpoint.provider}-webhook`, actor: `inbound:${endpoint.id}`,
    });
  }
  if (event.emails.length === 0) throw malformed(`Event ${event.id} suppresses but names no address`);
  return adds;
}
