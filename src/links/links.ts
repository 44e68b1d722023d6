/**
 * One-click unsubscribe links (RFC 8058): making a link for an address, and what a link does
 * when it is used: resolve (never a change), unsubscribe (a suppression with its audit record,
 * idempotent per link) and undo (an audited removal, for the same link, within a few minutes).
 */
import { createHash, randomBytes } from 'node:crypto';
import { OptoutError, describeValue, isOptoutError } from '../errors.js';
import { hashKeyTuple } from '../filter/hash.js';
import { addSuppression, removeSuppression } from '../manage/suppressions.js';
import { normalizeUnit } from '../options.js';
import { normalizeEmail } from '../policy/email.js';
import { auditIdAt } from '../store/audit.js';
import { ACCOUNT_WIDE, RECORD_ID_PATTERN, type Ledger } from '../store/store.js';
import { currentLinkKey, getLinkSettings, keyOf, normalizeBaseUrl, type LinkKey, type StoredLinkKey } from './keys.js';
import { SECRET_BYTES, open, seal, tokenParts, type TokenParts, type TokenPurpose } from './token.js';

/** The actor and source of everything a link does. */
export const ONE_CLICK = 'one-click';
/** @default 5 minutes */
export const DEFAULT_UNDO_WINDOW_MS = 5 * 60_000;
const MAX_CAMPAIGN = 200;

export interface UnsubscribeLinkOptions {
  /** The business unit the link unsubscribes from. @default account-wide */
  unit?: string | undefined;
  /** A label kept in the audit records of the link's use. @default none */
  campaign?: string | undefined;
  /** @default the base URL set with `setLinkBaseUrl` (`optout links config`) */
  baseUrl?: string | undefined;
  /** Who makes the link, should it need the first key. @default 'library' */
  actor?: string | undefined;
}

export interface UnsubscribeLink {
  url: string;
  token: string;
  /** The address, normalized. */
  address: string;
  scope: string;
  campaign: string | null;
  keyId: string;
  /** The two headers to put on the message. */
  headers: { 'List-Unsubscribe': string; 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' };
}

/** What a valid link names. */
export interface LinkTarget {
  address: string;
  key: string;
  scope: string;
  campaign: string | null;
  issuedAt: string;
  keyId: string;
  /** Names the link in audit records without the token, which is a secret. */
  link: string;
}

/** The sealed payload; short names keep URLs short. */
interface Payload { k: string; a: string; u: string | null; c: string | null; t: number }

interface UndoTicket { d: string; j: string; t: number }

function normalizeCampaign(campaign: unknown): string | null {
  if (campaign === undefined) return null;
  if (typeof campaign !== 'string' || campaign.length === 0 || campaign.length > MAX_CAMPAIGN || /[\u0000-\u001f\u007f]/.test(campaign)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`campaign\` to be a label of 1 to ${MAX_CAMPAIGN} characters without control characters, got ${describeValue(campaign)}`);
  }
  return campaign;
}

/** A link for `email`: its URL, its token and the two headers a sender puts on the message. */
export async function unsubscribeLink(store: Ledger, email: string, options: UnsubscribeLinkOptions = {}): Promise<UnsubscribeLink> {
  if (typeof email !== 'string') throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`email\` to be a string, got ${describeValue(email)}`);
  const n = normalizeEmail(email);
  if (!n.valid) throw new OptoutError('OPTOUT_ERR_INVALID_EMAIL', `${describeValue(email)} is not a valid address (${n.reason})`);
  const scope = normalizeUnit(options.unit);
  const campaign = normalizeCampaign(options.campaign);
  const baseUrl = options.baseUrl !== undefined ? normalizeBaseUrl(options.baseUrl) : (await getLinkSettings(store))?.baseUrl;
  if (baseUrl === undefined) {
    throw new OptoutError('OPTOUT_ERR_LINKS_NOT_CONFIGURED', 'Unsubscribe links need a base URL: run `optout links config --base-url https://...`, or pass `baseUrl`');
  }
  const key = await currentLinkKey(store, options.actor ?? 'library');
  const payload: Payload = { k: n.key, a: n.address, u: scope === ACCOUNT_WIDE ? null : scope, c: campaign, t: Date.now() };
  const token = seal(key.id, key.secret, 'unsubscribe', payload);
  const url = `${baseUrl}/u/${token}`;
  return {
    url, token, address: n.address, scope, campaign, keyId: key.id,
    headers: { 'List-Unsubscribe': `<${url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' },
  };
}

/** The URL alone: see {@link unsubscribeLink}. */
export async function unsubscribeUrl(store: Ledger, email: string, options: UnsubscribeLinkOptions = {}): Promise<string> {
  return (await unsubscribeLink(store, email, options)).url;
}

/** Opens tokens of keys the store does not have, so that they take the time real ones take. */
const STAND_IN: LinkKey = { id: '00000000', secret: randomBytes(SECRET_BYTES), retiresAt: null };
const STAND_IN_PARTS: TokenParts = { keyId: STAND_IN.id, bytes: Buffer.alloc(160) };

function invalid(): OptoutError {
  return new OptoutError('OPTOUT_ERR_LINK_INVALID', 'This unsubscribe link is not valid');
}

/**
 * Opens a token of one purpose with the key it names. Every refusal (not a token, an unknown key,
 * a changed byte, a retired key) does the same work, a store read and a decryption, and ends in
 * the same OPTOUT_ERR_LINK_INVALID.
 */
async function openSealed(store: Pick<Ledger, 'getRecord'>, token: string, purpose: TokenPurpose, now: number): Promise<{ payload: unknown; key: LinkKey }> {
  const parts = tokenParts(token);
  const stored = await store.getRecord<StoredLinkKey>('link-key', parts?.keyId ?? STAND_IN.id);
  const key = stored === undefined || parts === undefined ? STAND_IN : keyOf(parts.keyId, stored);
  const payload = open(parts ?? STAND_IN_PARTS, key.secret, purpose);
  if (key === STAND_IN || payload === undefined || (key.retiresAt !== null && now >= key.retiresAt)) throw invalid();
  return { payload, key };
}

function isPayload(p: unknown): p is Payload {
  const o = p as Partial<Payload> | null;
  return typeof o === 'object' && o !== null && typeof o.k === 'string' && typeof o.a === 'string' && typeof o.t === 'number' &&
    (o.u === null || (typeof o.u === 'string' && RECORD_ID_PATTERN.test(o.u))) && (o.c === null || typeof o.c === 'string');
}

function linkId(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}

async function resolveWithKey(store: Pick<Ledger, 'getRecord'>, token: string, now: number): Promise<{ target: LinkTarget; key: LinkKey }> {
  const { payload, key } = await openSealed(store, token, 'unsubscribe', now);
  if (!isPayload(payload)) throw invalid();
  const target: LinkTarget = {
    address: payload.a, key: payload.k, scope: payload.u ?? ACCOUNT_WIDE, campaign: payload.c,
    issuedAt: new Date(payload.t).toISOString(), keyId: key.id, link: linkId(token),
  };
  return { target, key };
}

/** What a token names; OPTOUT_ERR_LINK_INVALID for any token that is not a valid link. Changes nothing. */
export async function resolveLink(store: Pick<Ledger, 'getRecord'>, token: string, now = Date.now()): Promise<LinkTarget> {
  return (await resolveWithKey(store, token, now)).target;
}

export interface UnsubscribeOutcome {
  target: LinkTarget;
  /** False when this link's unsubscribe already stood: nothing was written. */
  written: boolean;
  /** The add job that stored a new entry; undefined when the scope already held the address. */
  job: string | undefined;
}

/**
 * The address the link stores: the one it was made for, or, should the address policy have
 * changed so that it no longer passes, its key (a key is an address too): opt-out wins.
 */
function addressOf(target: LinkTarget): string {
  return normalizeEmail(target.address).valid ? target.address : target.key;
}

const unitOf = (scope: string): string | undefined => (scope === ACCOUNT_WIDE ? undefined : scope);

/**
 * Whether this link's unsubscribe still stands: the scope holds the address, and the last change
 * the audit trail shows there since the link was made is this link's add.
 */
async function stands(store: Ledger, target: LinkTarget): Promise<boolean> {
  const [h1, h2] = hashKeyTuple(target.key);
  const entries = await store.entriesOf({ key: target.key, h1, h2 });
  if (!entries.some((e) => e.scope === target.scope)) return false;
  let standing = false;
  // An hour before the issue time: the clock of the machine that made the link may run ahead.
  const fromId = auditIdAt(Math.max(0, Date.parse(target.issuedAt) - 3_600_000));
  for await (const r of store.auditRecords({ fromId, key: target.key })) {
    if ((r.unit ?? ACCOUNT_WIDE) !== target.scope) continue;
    if (r.action === 'add') standing = standing || r.details['link'] === target.link;
    if (r.action === 'remove' || r.action === 'rollback') standing = false;
  }
  return standing;
}

/** Requests for the same link, one at a time: a retried POST must not race its first try. */
const inFlight = new Map<string, Promise<unknown>>();

async function oneAtATime<T>(id: string, fn: () => Promise<T>): Promise<T> {
  const before = inFlight.get(id) ?? Promise.resolve();
  const run = before.catch(() => undefined).then(fn);
  inFlight.set(id, run);
  try {
    return await run;
  } finally {
    if (inFlight.get(id) === run) inFlight.delete(id);
  }
}

/**
 * Suppresses the link's address in its scope, reason `unsubscribed`, source and actor
 * `one-click`, with the link's campaign in the audit record. A link whose unsubscribe already
 * stands writes nothing.
 */
export async function unsubscribeByLink(store: Ledger, token: string, now = Date.now()): Promise<UnsubscribeOutcome> {
  const target = await resolveLink(store, token, now);
  return oneAtATime(target.link, async () => {
    if (await stands(store, target)) return { target, written: false, job: undefined };
    const r = await addSuppression(store, {
      email: addressOf(target), unit: unitOf(target.scope), reason: 'unsubscribed', source: ONE_CLICK, actor: ONE_CLICK,
      details: { link: target.link, campaign: target.campaign, issuedAt: target.issuedAt },
    });
    return { target, written: true, job: r.added ? r.job : undefined };
  });
}

/**
 * A ticket that lets the same link undo the entry `job` stored, until `windowMs` from now. Handed
 * to the browser that unsubscribed (the page's form), never to a mail provider's one-click POST.
 */
export async function undoTicket(store: Pick<Ledger, 'getRecord'>, token: string, job: string, now = Date.now()): Promise<string> {
  const { target, key } = await resolveWithKey(store, token, now);
  const ticket: UndoTicket = { d: target.link, j: job, t: now };
  return seal(key.id, key.secret, 'undo', ticket);
}

export interface UndoOptions {
  /** @default 5 minutes */
  windowMs?: number | undefined;
  now?: number | undefined;
}

/**
 * Ends the suppression a link's unsubscribe stored: only with a ticket of that same link, within
 * its window, and only while the entry is still the one that job stored, held by no other job.
 * An audited removal, why `undo`. A second undo changes nothing. OPTOUT_ERR_LINK_UNDO otherwise.
 */
export async function undoByLink(store: Ledger, token: string, ticket: string, options: UndoOptions = {}): Promise<{ target: LinkTarget; removed: boolean }> {
  const now = options.now ?? Date.now();
  const windowMs = options.windowMs ?? DEFAULT_UNDO_WINDOW_MS;
  const target = await resolveLink(store, token, now);
  const refused = (): OptoutError => new OptoutError('OPTOUT_ERR_LINK_UNDO', `This unsubscribe can no longer be undone (it can for ${Math.round(windowMs / 60_000)} minutes after it)`);
  let t: UndoTicket;
  try {
    t = (await openSealed(store, ticket, 'undo', now)).payload as UndoTicket;
  } catch (err) {
    if (isOptoutError(err) && err.code === 'OPTOUT_ERR_LINK_INVALID') throw refused();
    throw err;
  }
  if (typeof t !== 'object' || t === null || t.d !== target.link || typeof t.j !== 'string' || typeof t.t !== 'number' || !(now >= t.t && now - t.t <= windowMs)) {
    throw refused();
  }
  return oneAtATime(target.link, async () => {
    try {
      await removeSuppression(store, {
        email: addressOf(target), unit: unitOf(target.scope), why: 'undo', actor: ONE_CLICK, onlyJob: t.j,
        details: { link: target.link, campaign: target.campaign },
      });
      return { target, removed: true };
    } catch (err) {
      if (isOptoutError(err) && err.code === 'OPTOUT_ERR_NOT_SUPPRESSED') return { target, removed: false };
      throw err;
    }
  });
}
