/**
 * API keys for the HTTP API, kept in the ledger: id, SHA-256 of the whole key, unit, scope, rate
 * limit, dates; every creation and revocation with its audit record.
 *
 * A key reads `oo_<id>_<secret>`: the id (hex, no `_`) finds the record without scanning, and
 * only the secret's hash is stored, so a copy of the store does not leak usable keys. The whole
 * presented key is hashed and compared in constant time, so a wrong secret for a known id takes
 * as long to reject as a right one takes to accept.
 */
import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { OptoutError, describeValue } from '../errors.js';
import { UNIT_ID_PATTERN, type CheckView, type Ledger, type StoredApiKey } from '../store/store.js';

export type KeyScope = 'check' | 'admin';
export const KEY_SCOPES: readonly KeyScope[] = ['check', 'admin'];

/** A key as listed: everything but its secret and hash. */
export interface KeyRecord {
  id: string;
  /** The only unit the key may ask about; null for every unit. */
  unit: string | null;
  scope: KeyScope;
  /** Requests per second; null for no limit. */
  rateLimit: number | null;
  createdAt: string;
  revokedAt: string | null;
}

type StoredKey = StoredApiKey;

/** Where keys are kept: the ledger (a LevelStore, or `openStore(...).store`). */
export type KeyStore = Pick<Ledger, 'audit' | 'putApiKey' | 'getApiKey' | 'listApiKeys'>;

export interface CreateKeyOptions {
  unit?: string | undefined;
  scope: KeyScope;
  rateLimit?: number | undefined;
  /** Who creates it, for the audit trail. @default 'cli' */
  actor?: string | undefined;
}

const PREFIX = 'oo_';
const ID_PATTERN = /^[0-9a-f]{16}$/;

function hashOf(presented: string): string {
  return createHash('sha256').update(presented, 'utf8').digest('hex');
}

function publicRecord(s: StoredKey): KeyRecord {
  return { id: s.id, unit: s.unit, scope: s.scope, rateLimit: s.rateLimit, createdAt: s.createdAt, revokedAt: s.revokedAt };
}

/** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
export async function createKey(store: KeyStore, options: CreateKeyOptions): Promise<{ id: string; key: string; record: KeyRecord }> {
  if (!KEY_SCOPES.includes(options.scope)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`scope\` to be one of ${KEY_SCOPES.join(', ')}, got ${describeValue(options.scope)}`);
  }
  if (options.unit !== undefined && (typeof options.unit !== 'string' || !UNIT_ID_PATTERN.test(options.unit))) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`unit\` to match [A-Za-z0-9_-]{1,64}, got ${describeValue(options.unit)}`);
  }
  if (options.scope === 'admin' && options.unit !== undefined) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`unit\` to be left out for an admin key (admin keys are account-wide; a unit binds check keys only), got ${describeValue(options.unit)}`);
  }
  if (options.rateLimit !== undefined && !(typeof options.rateLimit === 'number' && Number.isFinite(options.rateLimit) && options.rateLimit > 0)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`rateLimit\` to be a positive number of requests per second, got ${describeValue(options.rateLimit)}`);
  }
  const id = randomBytes(8).toString('hex');
  const key = `${PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  const stored: StoredKey = {
    id, hash: hashOf(key), unit: options.unit ?? null, scope: options.scope, rateLimit: options.rateLimit ?? null,
    createdAt: new Date().toISOString(), revokedAt: null,
  };
  const record = publicRecord(stored);
  await store.putApiKey(stored, store.audit({ actor: options.actor ?? 'cli', action: 'key.create', key: null, job: null, unit: record.unit, details: { ...record } }));
  return { id, key, record };
}

/** Every key, revoked ones included, in id order; no secrets or hashes. */
export async function listKeys(store: KeyStore): Promise<KeyRecord[]> {
  return (await store.listApiKeys()).map(publicRecord);
}

/** Marks a key revoked (revoking twice keeps the first date). Unknown ids are an error. */
export async function revokeKey(store: KeyStore, id: string, actor = 'cli'): Promise<KeyRecord> {
  const stored = ID_PATTERN.test(id) ? await store.getApiKey(id) : undefined;
  if (stored === undefined) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `No API key has the id ${describeValue(id)}`);
  if (stored.revokedAt === null) {
    stored.revokedAt = new Date().toISOString();
    await store.putApiKey(stored, store.audit({ actor, action: 'key.revoke', key: null, job: null, unit: stored.unit, details: { id } }));
  }
  return publicRecord(stored);
}

/**
 * The record of a key that matched, unless it may not be used at all. The admin routes (removals,
 * rollbacks, the audit trail, keys) are account-wide and look at no unit, so a unit on an admin
 * key binds nothing; earlier versions let `keys create --scope admin --unit` through. Such a key
 * is refused outright, with its right secret, rather than trusted beyond its unit.
 */
function usable(stored: StoredKey): KeyRecord {
  if (stored.scope === 'admin' && stored.unit !== null) {
    throw new OptoutError('OPTOUT_ERR_UNAUTHORIZED',
      `API key ${stored.id} is an admin key bound to unit ${stored.unit}, which is not accepted: revoke it, then create an admin key without a unit or a check key with --unit ${stored.unit}`);
  }
  return publicRecord(stored);
}

/** The id part of a presented key, or undefined when it is not shaped like one. */
function idOf(presented: string): string | undefined {
  if (!presented.startsWith(PREFIX)) return undefined;
  const id = presented.slice(PREFIX.length, PREFIX.length + 16);
  return ID_PATTERN.test(id) && presented[PREFIX.length + 16] === '_' ? id : undefined;
}

/** Stored hashes as bytes, decoded once a record: a server compares one on every request. */
const hashBytes = new WeakMap<StoredKey, Buffer>();

function matches(stored: StoredKey, presented: string): boolean {
  // The one-shot hash: a Hash object and a hex round trip cost more than the digest itself.
  const a = hash('sha256', presented, 'buffer');
  let b = hashBytes.get(stored);
  if (b === undefined) hashBytes.set(stored, (b = Buffer.from(stored.hash, 'hex')));
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The record of a valid, unrevoked key; undefined for anything else. Reads the store. Throws
 * `OPTOUT_ERR_UNAUTHORIZED` for a key that matches but may not be used (see `usable`).
 */
export async function verifyKey(store: KeyStore, presented: string): Promise<KeyRecord | undefined> {
  const id = idOf(presented);
  const stored = id === undefined ? undefined : await store.getApiKey(id);
  if (stored === undefined) return undefined;
  return stored.revokedAt === null && matches(stored, presented) ? usable(stored) : undefined;
}

/**
 * The keys of a store cached in memory, for the server: each key record is read once (a
 * synchronous lookup in the check view, so that a server is ready as soon as its store is) and
 * kept until the view says its keys changed (`apiKeysVersion`: a key written by this process, or
 * a revocation an API replica's view received from its database). Unknown ids are not cached,
 * so random ids cannot grow the cache.
 */
/** What a {@link KeyRing} reads: a check view, and, when it has one, the version of its keys. */
export type KeyView = Pick<CheckView, 'apiKeySync'> & { readonly apiKeysVersion?: number };

export class KeyRing {
  readonly #store: KeyView;
  readonly #byId = new Map<string, StoredKey>();
  /**
   * Per id, the last presented key that matched, and its record: the next request with the same
   * key is compared byte for byte, in constant time, instead of hashed (the SHA-256 was ~2.3 µs of
   * a single check's ~62 µs). The secret is kept only in the memory of the process that receives
   * it on every request anyway, and dropped with the rest of the cache.
   */
  readonly #verified = new Map<string, { bytes: Buffer; record: KeyRecord }>();
  #version: number | undefined;

  constructor(store: KeyView) {
    this.#store = store;
    this.#version = store.apiKeysVersion;
  }

  /** As {@link verifyKey}, from the cache. */
  verify(presented: string): KeyRecord | undefined {
    const id = idOf(presented);
    if (id === undefined) return undefined;
    if (this.#store.apiKeysVersion !== this.#version) {
      this.#byId.clear();
      this.#verified.clear();
      this.#version = this.#store.apiKeysVersion;
    }
    const known = this.#verified.get(id);
    if (known !== undefined) {
      const bytes = Buffer.from(presented, 'utf8');
      if (bytes.length === known.bytes.length && timingSafeEqual(bytes, known.bytes)) return known.record;
    }
    let stored = this.#byId.get(id);
    if (stored === undefined) {
      stored = this.#store.apiKeySync(id);
      if (stored === undefined) return undefined;
      this.#byId.set(id, stored);
    }
    if (stored.revokedAt !== null || !matches(stored, presented)) return undefined;
    const record = Object.freeze(usable(stored));
    this.#verified.set(id, { bytes: Buffer.from(presented, 'utf8'), record });
    return record;
  }

  /** Drops a cached key, so that its next use reads the store (after a revocation through the API). */
  forget(id: string): void {
    this.#byId.delete(id);
    this.#verified.delete(id);
  }
}
