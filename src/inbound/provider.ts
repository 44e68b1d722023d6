/**
 * What the ESP modules share: the request as it arrived (raw bytes, verified byte-exact), the
 * events they map it to, and the two failures a delivery can have (unauthenticated: 401;
 * malformed: 400). Each provider module checks authenticity first, where the signature does
 * not live inside the body, then maps events; it does no I/O except fetching an SNS certificate.
 */
import { OptoutError, describeValue } from '../errors.js';
import type { SuppressionReason } from '../store/jobs.js';

export const PROVIDERS = ['sns', 'sendgrid', 'mailgun', 'postmark'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

/** A delivery as it reached the endpoint. Header names are lower-case (as Node gives them). */
export interface InboundRequest {
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body's bytes exactly as sent: signatures cover them. */
  body: Buffer;
}

/** One provider event, mapped: `reason` is set when it suppresses its addresses. */
export interface MappedEvent {
  /** The provider's id of the event (SNS MessageId, SendGrid sg_event_id, ...). */
  id: string;
  /** The provider's event type, as metrics count it (`bounce`, `Bounce.Transient`, `delivered`...). */
  type: string;
  reason: SuppressionReason | undefined;
  /** The addresses it names, as given (normalized later). */
  emails: string[];
}

/** What a delivery asks of the endpoint. */
export type Delivery =
  | { kind: 'events'; events: MappedEvent[] }
  /** An SNS subscription to confirm by fetching `url` (already checked to be Amazon's). */
  | { kind: 'confirm-subscription'; url: URL; type: string };

/** How far ahead of this machine's clock a signed timestamp may be (clock skew). */
export const MAX_SKEW_MS = 5 * 60_000;
/**
 * How old a signed timestamp may be. Providers retry a delivery for hours or days, SNS with the
 * message's original timestamp: refusing a late retry of a bounce would leave its address
 * eligible. A replay is no danger within the window: an event that suppressed is remembered by
 * its id and adds nothing again, and one that did not suppress writes nothing.
 */
export const MAX_AGE_MS = 7 * 24 * 3600_000;

export function unauthenticated(message: string): OptoutError {
  return new OptoutError('OPTOUT_ERR_INBOUND_UNAUTHENTICATED', message);
}

export function malformed(message: string): OptoutError {
  return new OptoutError('OPTOUT_ERR_INBOUND_PAYLOAD', message);
}

/** One header's value; a repeated one is refused (which of two signatures would count?). */
export function header(req: InboundRequest, name: string): string | undefined {
  const v = req.headers[name];
  if (Array.isArray(v)) throw unauthenticated(`The header ${name} is repeated`);
  return v;
}

/** A signed time, in ms since the epoch, at most {@link MAX_AGE_MS} old and {@link MAX_SKEW_MS} ahead of `now`. */
export function assertFresh(timeMs: number, now: number, what: string): void {
  if (!Number.isFinite(timeMs)) throw unauthenticated(`${what} is not a time`);
  if (timeMs - now > MAX_SKEW_MS) {
    throw unauthenticated(`${what} (${new Date(timeMs).toISOString()}) is more than ${MAX_SKEW_MS / 60_000} minutes ahead of this machine's clock`);
  }
  if (now - timeMs > MAX_AGE_MS) {
    throw unauthenticated(`${what} (${new Date(timeMs).toISOString()}) is more than ${MAX_AGE_MS / 86_400_000} days old: a stale or replayed delivery`);
  }
}

/** Unix seconds as a header or a field gives them (digits only). */
export function unixSeconds(value: unknown, what: string): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^\d{1,12}$/.test(text)) throw unauthenticated(`Expected ${what} to be Unix seconds, got ${describeValue(value)}`);
  return Number(text) * 1000;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as JSON; a body that is not valid UTF-8 JSON is malformed. */
export function parseBody(body: Buffer): unknown {
  try {
    return JSON.parse(utf8.decode(body));
  } catch {
    throw malformed('The body is not valid UTF-8 JSON');
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string field of an event, required. */
export function text(o: Record<string, unknown>, name: string, where: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v.length === 0) throw malformed(`Expected \`${name}\` of ${where} to be a non-empty string, got ${describeValue(v)}`);
  return v;
}

/** An event id as a string: providers send strings, Postmark numbers. */
export function eventId(v: unknown, name: string, where: string): string {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw malformed(`Expected \`${name}\` of ${where} to be an id, got ${describeValue(v)}`);
  return v;
}

/** A type label for metrics: short, plain; anything else counts as `other`. */
export function typeLabel(v: unknown): string {
  return typeof v === 'string' && /^[A-Za-z0-9_.-]{1,40}$/.test(v) ? v : 'other';
}
