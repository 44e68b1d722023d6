/**
 * Amazon SES notifications through Amazon SNS. An SNS message is signed with an RSA key whose
 * certificate SNS serves at `SigningCertURL`: SignatureVersion 1 signs the canonical string
 * with SHA1withRSA, version 2 with SHA256withRSA. The canonical string is `name\nvalue\n` for
 * each of a fixed list of fields, in byte order of their names, per message type (Subject only
 * when present). The certificate is taken only from `https://sns.<region>.amazonaws.com/...pem`
 * (fetched with the project's URL policy, then cached), or pinned on the endpoint.
 *
 * A Notification's Message is the SES event: `notificationType` (or `eventType`, for events
 * published through a configuration set) Bounce with `bounceType` Permanent suppresses each
 * bounced recipient (reason `bounced`), Complaint each complained recipient (`complaint`).
 */
import { X509Certificate, createVerify } from 'node:crypto';
import { OptoutError, describeValue } from '../errors.js';
import type { InboundEndpoint } from './endpoints.js';
import {
  assertFresh, isObject, malformed, parseBody, text, typeLabel, unauthenticated, type Delivery, type InboundRequest, type MappedEvent,
} from './provider.js';

/** Fetches a small text body (a certificate, a subscription confirmation) from an already checked URL. */
export type FetchText = (url: URL) => Promise<string>;

const SIGNED_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};
const ALGORITHMS: Readonly<Record<string, string>> = { 1: 'RSA-SHA1', 2: 'RSA-SHA256' };
const SNS_HOST = /^sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?$/;

/**
 * An SNS URL: https, the host `sns.<region>.amazonaws.com`, no credentials or port; for a
 * certificate, a path ending in `.pem`.
 * @throws OptoutError OPTOUT_ERR_INBOUND_PAYLOAD otherwise
 */
export function snsUrl(raw: unknown, field: string, pem: boolean): URL {
  let url: URL;
  try {
    url = new URL(typeof raw === 'string' ? raw : '');
  } catch {
    throw malformed(`Expected \`${field}\` to be a URL, got ${describeValue(raw)}`);
  }
  if (url.protocol !== 'https:' || !SNS_HOST.test(url.hostname) || url.port !== '' || url.username !== '' || url.password !== '' ||
    (pem && !url.pathname.endsWith('.pem'))) {
    throw malformed(`\`${field}\` must be an https URL on sns.<region>.amazonaws.com${pem ? ' ending in .pem' : ''}; got ${url.protocol}//${url.host}`);
  }
  return url;
}

/** The string SNS signs for a message of type `message.Type`. */
export function snsStringToSign(message: Record<string, unknown>): string {
  const fields = SIGNED_FIELDS[String(message['Type'])];
  if (fields === undefined) throw malformed(`Unknown SNS message Type ${describeValue(message['Type'])}`);
  let out = '';
  for (const name of fields) {
    const value = message[name];
    if (value === undefined && name === 'Subject') continue;
    if (typeof value !== 'string') throw malformed(`Expected \`${name}\` of the SNS message to be a string, got ${describeValue(value)}`);
    out += `${name}\n${value}\n`;
  }
  return out;
}

/** Certificates fetched from SNS, by URL; a few at most (SNS rotates them rarely). */
export class CertificateCache {
  readonly #certs = new Map<string, Promise<X509Certificate>>();
  readonly #fetch: FetchText;
  readonly #max: number;

  constructor(fetch: FetchText, max = 16) {
    this.#fetch = fetch;
    this.#max = max;
  }

  get(url: URL): Promise<X509Certificate> {
    let cert = this.#certs.get(url.href);
    if (cert === undefined) {
      if (this.#certs.size >= this.#max) this.#certs.delete(this.#certs.keys().next().value as string);
      cert = this.#fetch(url).then((pem) => new X509Certificate(pem));
      this.#certs.set(url.href, cert);
      // A failed fetch is not cached: the next delivery (SNS retries) tries again.
      cert.catch(() => this.#certs.delete(url.href));
    }
    return cert;
  }
}

async function certificateOf(endpoint: InboundEndpoint, message: Record<string, unknown>, certs: CertificateCache): Promise<X509Certificate> {
  if (endpoint.snsCert !== undefined) return new X509Certificate(endpoint.snsCert);
  const url = snsUrl(message['SigningCertURL'], 'SigningCertURL', true);
  try {
    return await certs.get(url);
  } catch (cause) {
    // A failed fetch is answered as such (5xx: SNS retries); a body that is no certificate proves nothing (401).
    if (cause instanceof OptoutError) throw cause;
    throw unauthenticated(`The signing certificate at ${url.href} could not be read`);
  }
}

async function verifySignature(endpoint: InboundEndpoint, message: Record<string, unknown>, certs: CertificateCache, now: number): Promise<void> {
  const version = message['SignatureVersion'];
  const algorithm = ALGORITHMS[String(version)];
  if (algorithm === undefined || typeof version !== 'string') throw unauthenticated(`Unsupported SNS SignatureVersion ${describeValue(version)}`);
  const signature = message['Signature'];
  if (typeof signature !== 'string' || signature.length === 0) throw unauthenticated('The SNS message is not signed');
  const canonical = snsStringToSign(message);
  const cert = await certificateOf(endpoint, message, certs);
  if (Date.parse(cert.validTo) < now || Date.parse(cert.validFrom) > now) throw unauthenticated('The SNS signing certificate is not valid now');
  const ok = createVerify(algorithm).update(canonical, 'utf8').verify(cert.publicKey, Buffer.from(signature, 'base64'));
  if (!ok) throw unauthenticated('The SNS signature does not verify');
  // SNS signs the messages of every AWS account's topics alike: only the topic says whose it is.
  if (endpoint.topicArn !== undefined && message['TopicArn'] !== endpoint.topicArn) {
    throw unauthenticated(`The SNS message comes from the topic ${describeValue(message['TopicArn'])}, not from the endpoint's ${endpoint.topicArn}`);
  }
  assertFresh(Date.parse(text(message, 'Timestamp', 'the SNS message')), now, 'The SNS Timestamp');
}

function recipients(list: unknown, field: string, messageId: string): string[] {
  if (!Array.isArray(list) || list.length === 0) throw malformed(`Expected \`${field}\` of SNS message ${messageId} to be a non-empty array`);
  return list.map((r: unknown) => {
    if (!isObject(r) || typeof r['emailAddress'] !== 'string') throw malformed(`Expected each of \`${field}\` of SNS message ${messageId} to have an emailAddress`);
    return r['emailAddress'];
  });
}

/** The SES event of a Notification's Message. */
function sesEvent(messageId: string, raw: string): MappedEvent {
  let ses: unknown;
  try {
    ses = JSON.parse(raw);
  } catch {
    throw malformed(`The Message of SNS message ${messageId} is not a JSON SES event`);
  }
  if (!isObject(ses)) throw malformed(`The Message of SNS message ${messageId} is not a JSON SES event`);
  const kind = ses['notificationType'] ?? ses['eventType'];
  if (kind === 'Bounce') {
    const bounce = ses['bounce'];
    if (!isObject(bounce)) throw malformed(`SNS message ${messageId}: a Bounce without \`bounce\``);
    const bounceType = bounce['bounceType'];
    const permanent = bounceType === 'Permanent';
    return {
      id: messageId, type: `Bounce.${typeLabel(bounceType)}`, reason: permanent ? 'bounced' : undefined,
      emails: permanent ? recipients(bounce['bouncedRecipients'], 'bounce.bouncedRecipients', messageId) : [],
    };
  }
  if (kind === 'Complaint') {
    const complaint = ses['complaint'];
    if (!isObject(complaint)) throw malformed(`SNS message ${messageId}: a Complaint without \`complaint\``);
    return { id: messageId, type: 'Complaint', reason: 'complaint', emails: recipients(complaint['complainedRecipients'], 'complaint.complainedRecipients', messageId) };
  }
  return { id: messageId, type: typeLabel(kind), reason: undefined, emails: [] };
}

/** Verifies an SNS delivery and says what it asks for. */
export async function receiveSns(endpoint: InboundEndpoint, req: InboundRequest, certs: CertificateCache, now: number): Promise<Delivery> {
  const message = parseBody(req.body);
  if (!isObject(message)) throw malformed('Expected the SNS message to be a JSON object');
  await verifySignature(endpoint, message, certs, now);
  const type = message['Type'] as string;
  const messageId = text(message, 'MessageId', 'the SNS message');
  if (type === 'SubscriptionConfirmation') return { kind: 'confirm-subscription', url: snsUrl(message['SubscribeURL'], 'SubscribeURL', false), type };
  if (type === 'UnsubscribeConfirmation') return { kind: 'events', events: [{ id: messageId, type, reason: undefined, emails: [] }] };
  return { kind: 'events', events: [sesEvent(messageId, message['Message'] as string)] };
}
