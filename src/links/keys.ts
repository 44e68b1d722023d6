/**
 * The keys of unsubscribe links and their base URL, kept in the store as records: keys of kind
 * `link-key` (id = the key id a token names), the base URL as the `settings` record `links`.
 * Written with their audit records; secrets never appear in an audit record or a listing.
 */
import { randomBytes } from 'node:crypto';
import { OptoutError, describeValue } from '../errors.js';
import type { Ledger } from '../store/store.js';
import { KEY_ID_BYTES, SECRET_BYTES } from './token.js';

/** @default 180 days */
export const DEFAULT_RETIRE_AFTER_DAYS = 180;
const DAY_MS = 86_400_000;

/** A link key as stored. */
export interface StoredLinkKey {
  /** 32 bytes, base64url. */
  secret: string;
  createdAt: string;
  /** From then on, tokens made with this key are refused; null while it is the current key. */
  retiresAt: string | null;
}

/** A link key without its secret. */
export interface LinkKeyInfo {
  id: string;
  createdAt: string;
  retiresAt: string | null;
  /** The key new links are made with. */
  current: boolean;
}

/** A key ready to seal or open tokens. */
export interface LinkKey {
  id: string;
  secret: Buffer;
  retiresAt: number | null;
}

export interface LinkSettings {
  /** Where `optout serve` answers `/u/<token>`, without a trailing slash. */
  baseUrl: string;
}

const SETTINGS_ID = 'links';

export function keyOf(id: string, stored: StoredLinkKey): LinkKey {
  return { id, secret: Buffer.from(stored.secret, 'base64url'), retiresAt: stored.retiresAt === null ? null : Date.parse(stored.retiresAt) };
}

function newest(keys: Array<{ id: string; value: StoredLinkKey }>): { id: string; value: StoredLinkKey } | undefined {
  let best: { id: string; value: StoredLinkKey } | undefined;
  for (const k of keys) {
    if (k.value.retiresAt !== null) continue;
    if (best === undefined || k.value.createdAt > best.value.createdAt || (k.value.createdAt === best.value.createdAt && k.id > best.id)) best = k;
  }
  return best;
}

export async function listLinkKeys(store: Pick<Ledger, 'listRecords'>): Promise<LinkKeyInfo[]> {
  const keys = await store.listRecords<StoredLinkKey>('link-key');
  const current = newest(keys)?.id;
  return keys.map(({ id, value }) => ({ id, createdAt: value.createdAt, retiresAt: value.retiresAt, current: id === current }));
}

export interface RotateOptions {
  /** Days the keys in use now keep opening their tokens. @default 180 */
  retireAfterDays?: number | undefined;
  /** @default 'library' */
  actor?: string | undefined;
}

function retireAfterMs(days: unknown): number {
  if (days === undefined) return DEFAULT_RETIRE_AFTER_DAYS * DAY_MS;
  if (typeof days !== 'number' || !Number.isFinite(days) || days < 0 || days > 3650) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`retireAfterDays\` to be a number of days from 0 to 3650, got ${describeValue(days)}`);
  }
  return days * DAY_MS;
}

/**
 * Adds a key that new links are made with. The keys in use until now retire after
 * `retireAfterDays`; a key already retiring keeps its earlier date. The new key is written first:
 * a failure in between leaves an older key without a retirement date, which the next rotation sets.
 */
export async function rotateLinkKey(store: Ledger, options: RotateOptions = {}): Promise<{ key: LinkKeyInfo; retiring: LinkKeyInfo[] }> {
  const afterMs = retireAfterMs(options.retireAfterDays);
  const actor = options.actor ?? 'library';
  const existing = await store.listRecords<StoredLinkKey>('link-key');
  let id: string;
  do id = randomBytes(KEY_ID_BYTES).toString('hex');
  while (existing.some((k) => k.id === id));
  const now = Date.now();
  const createdAt = new Date(now).toISOString();
  const stored: StoredLinkKey = { secret: randomBytes(SECRET_BYTES).toString('base64url'), createdAt, retiresAt: null };
  await store.putRecord('link-key', id, stored, store.audit({ actor, action: 'link-key.create', key: null, job: null, unit: null, details: { id, createdAt } }));
  const retiresAt = new Date(now + afterMs).toISOString();
  const retiring: LinkKeyInfo[] = [];
  for (const k of existing) {
    if (k.value.retiresAt !== null) continue;
    await store.putRecord('link-key', k.id, { ...k.value, retiresAt }, store.audit({
      actor, action: 'link-key.retire', key: null, job: null, unit: null, details: { id: k.id, retiresAt },
    }));
    retiring.push({ id: k.id, createdAt: k.value.createdAt, retiresAt, current: false });
  }
  return { key: { id, createdAt, retiresAt: null, current: true }, retiring };
}

/** The key new links are made with; the first one is made on first use. */
export async function currentLinkKey(store: Ledger, actor: string): Promise<LinkKey> {
  const found = newest(await store.listRecords<StoredLinkKey>('link-key'));
  if (found !== undefined) return keyOf(found.id, found.value);
  const { key } = await rotateLinkKey(store, { actor });
  const stored = await store.getRecord<StoredLinkKey>('link-key', key.id);
  if (stored === undefined) throw new OptoutError('OPTOUT_ERR_STORE', `The new link key ${key.id} was not found after writing it`);
  return keyOf(key.id, stored);
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * An `https` URL (plain `http` only on loopback, for trials), without credentials, query or
 * fragment; a path is kept (a server behind a prefix), without its trailing slash.
 */
export function normalizeBaseUrl(value: unknown): string {
  const fail = (why: string): never => {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`baseUrl\` to be an https URL such as https://mail.example.com (${why}), got ${describeValue(value)}`);
  };
  if (typeof value !== 'string' || value.length > 500) return fail('a text of at most 500 characters');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail('not a URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) return fail('https, or http on loopback only');
  if (url.username !== '' || url.password !== '') return fail('no credentials');
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) return fail('no query or fragment');
  return url.href.replace(/\/+$/, '');
}

export async function getLinkSettings(store: Pick<Ledger, 'getRecord'>): Promise<LinkSettings | undefined> {
  return store.getRecord<LinkSettings>('settings', SETTINGS_ID);
}

/** Sets the base URL of new links (links made before keep theirs). */
export async function setLinkBaseUrl(store: Ledger, baseUrl: string, actor = 'library'): Promise<LinkSettings> {
  const settings: LinkSettings = { baseUrl: normalizeBaseUrl(baseUrl) };
  await store.putRecord('settings', SETTINGS_ID, settings, store.audit({ actor, action: 'settings.set', key: null, job: null, unit: null, details: { links: settings } }));
  return settings;
}
