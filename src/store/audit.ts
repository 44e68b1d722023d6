/**
 * The audit trail: an append-only log in the ledger, each record written in the same atomic
 * write as the change it describes, so that no change exists without its record and no record
 * without its change. Record ids order like time: `<ms since epoch, 15 digits><sequence, 6 digits>`.
 */

export type AuditAction =
  | 'import' | 'add' | 'remove' | 'rollback' | 'legal_basis' | 'abandon'
  | 'key.create' | 'key.revoke' | 'sync.add' | 'sync.remove' | 'link-key.create' | 'link-key.retire' | 'settings.set'
  | 'inbound.add' | 'inbound.remove';

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

export function auditId(timeMs: number, seq: number): string {
  return String(timeMs).padStart(15, '0') + String(seq % 1e6).padStart(6, '0');
}

/** First record id at or after a time. */
export function auditIdAt(timeMs: number): string {
  return auditId(timeMs, 0);
}
