/**
 * The audit trail: an append-only log in the store, each record written in the same LevelDB
 * batch as the change it describes, so that no change exists without its record and no record
 * without its change.
 *
 * ```
 * a<ms since epoch, 15 digits><sequence, 6 digits>   record (JSON)
 * x<key>\0<record id>                                 index: the records about one key
 * ```
 */

export type AuditAction =
  | 'import' | 'add' | 'remove' | 'rollback' | 'legal_basis'
  | 'key.create' | 'key.revoke' | 'sync.add' | 'sync.remove';

export interface AuditRecord {
  /** Orders like the time: `<ms, 15 digits><sequence, 6 digits>`. */
  id: string;
  time: string;
  /** An API key id, or `cli`, or `library`. */
  actor: string;
  action: AuditAction;
  /** The address's key, for changes about one address. */
  key: string | null;
  job: string | null;
  /** Business unit; null for account-wide or for records about no scope. */
  unit: string | null;
  details: Record<string, unknown>;
}

const SEP = '\u0000';
export const AUDIT_RANGE = { gt: 'a', lt: 'b' } as const;

export function auditId(timeMs: number, seq: number): string {
  return String(timeMs).padStart(15, '0') + String(seq % 1e6).padStart(6, '0');
}

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

/** First record id at or after a time. */
export function auditIdAt(timeMs: number): string {
  return auditId(timeMs, 0);
}
