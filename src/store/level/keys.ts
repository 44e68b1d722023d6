/**
 * Key layout of the LevelDB store. One flat keyspace with one-byte prefixes rather than
 * abstract-level sublevels: bulk imports write tens of millions of keys, and the sublevel
 * prefixing and transcoding cost per key is measurable at that rate.
 *
 * ```
 * e<scope>\0<h><key>          entry: value = <jobId>, <jobId>\0<address> when the address differs from the key,
 *                             <jobId>\0[<address>]\0<reason> when the entry has its own reason
 * f<generation padded>     filter log: the filter hashes of the entries that generation added (binary)
 * h<scope>\0<h><key>\0<jobId> a job also holds a key that an earlier job had already stored
 * j<jobId padded>          job record (JSON), including its checkpoint
 * k<id>                    API key record (JSON): its public fields and the SHA-256 of the key
 * g<jobId>                a followed job's metadata (JSON), in an API replica's view (see follow.ts)
 * m<name>                  metadata (format version, policy, counters, generation, id sequences)
 * r<kind>\0<id>            a feature's record (JSON): a link key, an inbound endpoint
 * v<eventId>               a delivered event's id, once its suppressions are written (value: empty)
 * s<id padded>             URL sync record (JSON)
 * a..., x...               the audit trail and its index by key (see audit.ts)
 * ```
 *
 * `<h>` is the key's first hash (see filter/hash.ts) as 8 hex digits. Entries of a scope are thus
 * ordered by hash, and an import writes its spool buckets (which split keys by the same hash) in
 * key order: LevelDB then ingests sorted data instead of random keys.
 *
 * Scopes are business unit ids (`[A-Za-z0-9_-]{1,64}`) or `*` for account-wide; neither can
 * contain `\0`, and keys cannot either (the address policy rejects control characters), so `\0`
 * is a safe separator that also sorts before every other character.
 */

import { hashHex, hashKeyTuple } from '../../filter/hash.js';
import type { AuditRecord } from '../audit.js';
import type { SuppressionReason } from '../jobs.js';
import type { StoredEntry } from '../store.js';

export { ACCOUNT_WIDE, UNIT_ID_PATTERN } from '../store.js';

const SEP = '\u0000';

/** The hash part of a key's store keys: its first hash, 8 hex digits, ordered like the number. */
export const hashPart = hashHex;

const HASH_CHARS = 8;

export function entryKey(scope: string, key: string): string {
  return entryKeyOfHash(scope, hashKeyTuple(key)[0], key);
}

/** `entryKey` for a caller that already has the key's first hash. */
export function entryKeyOfHash(scope: string, h1: number, key: string): string {
  return 'e' + scope + SEP + hashPart(h1) + key;
}

/** The range of every entry in one scope, for scans and exports. */
export function entryRange(scope?: string): { gt: string; lt: string } {
  return scope === undefined ? { gt: 'e', lt: 'f' } : { gt: 'e' + scope + SEP, lt: 'e' + scope + '\u0001' };
}

/** Splits an entry key back into its scope and key. */
export function parseEntryKey(dbKey: string): { scope: string; key: string } {
  const sep = dbKey.indexOf(SEP);
  return { scope: dbKey.slice(1, sep), key: dbKey.slice(sep + 1 + HASH_CHARS) };
}

/** Where the key starts in an entry key: after `e<scope>\0` and the 8 hash digits. */
export function entryKeyStart(dbKey: string): number {
  return dbKey.indexOf(SEP) + 1 + HASH_CHARS;
}

/** The scope of an entry key. */
export function entryScopeOf(dbKey: string): string {
  return dbKey.slice(1, dbKey.indexOf(SEP));
}

/** The hold key for the key of an entry key (`e<scope>\0<key>`). */
export function holdKeyOfEntry(entryDbKey: string, jobId: string): string {
  return 'h' + entryDbKey.slice(1) + SEP + jobId;
}

/** What workers put before each key's hash part so that they hand back entry keys of this scope. */
export function entryKeyPrefix(scope: string): string {
  return 'e' + scope + SEP;
}

/** Job ids are decimal counters; padded in the key so that jobs list in creation order. */
export function jobKey(jobId: string): string {
  return 'j' + jobId.padStart(12, '0');
}

export const JOB_RANGE = { gt: 'j', lt: 'k' } as const;

/** A job's metadata as an API replica's view keeps it: the view has no job records. */
export function followedJobKey(jobId: string): string {
  return 'g' + jobId;
}

const GENERATION_DIGITS = 15;

/** The filter log record of a store generation; padded so that records sort by generation. */
export function filterLogKey(generation: number): string {
  return 'f' + String(generation).padStart(GENERATION_DIGITS, '0');
}

/** The generation a {@link filterLogKey} names, or NaN for any other key. */
export function filterLogGeneration(dbKey: string): number {
  return dbKey.length === 1 + GENERATION_DIGITS && dbKey[0] === 'f' && /^\d+$/.test(dbKey.slice(1)) ? Number(dbKey.slice(1)) : Number.NaN;
}

export function metaKey(name: string): string {
  return 'm' + name;
}

export function countKey(scope: string): string {
  return metaKey('count' + SEP + scope);
}

export const COUNT_RANGE = { gt: metaKey('count' + SEP), lt: metaKey('count' + '\u0001') } as const;

export function encodeEntryValue(jobId: string, address: string | undefined, reason?: SuppressionReason): string {
  if (reason !== undefined) return jobId + SEP + (address ?? '') + SEP + reason;
  return address === undefined ? jobId : jobId + SEP + address;
}

export function decodeEntryValue(value: string): StoredEntry {
  const sep = value.indexOf(SEP);
  if (sep < 0) return { jobId: value, address: undefined };
  const second = value.indexOf(SEP, sep + 1);
  if (second < 0) return { jobId: value.slice(0, sep), address: value.slice(sep + 1) };
  const address = value.slice(sep + 1, second);
  return { jobId: value.slice(0, sep), address: address === '' ? undefined : address, reason: value.slice(second + 1) as SuppressionReason };
}

/** The range of every hold on one entry (of any job). */
export function holdRangeOfEntry(entryDbKey: string): { gte: string; lt: string } {
  const prefix = holdKeyOfEntry(entryDbKey, '');
  return { gte: prefix, lt: prefix.slice(0, -1) + '\u0001' };
}

export function apiKeyKey(id: string): string {
  return 'k' + id;
}

export const API_KEY_RANGE = { gt: 'k', lt: 'l' } as const;

export function recordKey(kind: string, id: string): string {
  return 'r' + kind + SEP + id;
}

export function recordRange(kind: string): { gt: string; lt: string } {
  return { gt: 'r' + kind + SEP, lt: 'r' + kind + '\u0001' };
}

/** A delivered event's id, kept so that a retried delivery writes nothing. */
export function seenEventKey(id: string): string {
  return 'v' + id;
}

export function syncKey(id: string): string {
  return 's' + id.padStart(12, '0');
}

export const SYNC_RANGE = { gt: 's', lt: 't' } as const;

/**
 * The audit trail (see audit.ts):
 *
 * ```
 * a<record id>          record (JSON)
 * x<key>\0<record id>   index: the records about one key
 * ```
 */
export const AUDIT_RANGE = { gt: 'a', lt: 'b' } as const;

/** The writes that append a record: the record and, for a record about a key, its index entry. */
export function auditOps(r: AuditRecord): Array<{ key: string; value: string }> {
  const ops = [{ key: 'a' + r.id, value: JSON.stringify(r) }];
  if (r.key !== null) ops.push({ key: 'x' + r.key + SEP + r.id, value: '' });
  return ops;
}

/** Range of the index entries of one key. */
export function auditIndexRange(key: string): { gt: string; lt: string } {
  return { gt: 'x' + key + SEP, lt: 'x' + key + '\u0001' };
}

/** The record id an index entry points to. */
export function auditIdOfIndex(indexKey: string): string {
  return indexKey.slice(indexKey.lastIndexOf(SEP) + 1);
}
