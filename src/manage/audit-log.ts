import { OptoutError, describeValue } from '../errors.js';
import { normalizeEmail } from '../policy/email.js';
import { auditIdAt, type AuditRecord } from '../store/audit.js';
import type { Ledger } from '../store/store.js';

export interface AuditQuery {
  /** Only the records about this address (any spelling that normalizes to its key). */
  email?: string | undefined;
  /** Only records at or after this time (ISO 8601, or a Date). */
  since?: string | Date | undefined;
  /** @default no limit */
  limit?: number | undefined;
}

function sinceMs(since: string | Date | undefined): number {
  if (since === undefined) return 0;
  const ms = since instanceof Date ? since.getTime() : Date.parse(since);
  if (!Number.isFinite(ms)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`since\` to be an ISO 8601 date or time, got ${describeValue(since)}`);
  }
  return ms;
}

/** Audit records in time order, read as they are consumed (never all in memory). */
export async function* readAudit(store: Pick<Ledger, 'auditRecords'>, q: AuditQuery = {}): AsyncGenerator<AuditRecord> {
  const fromId = auditIdAt(sinceMs(q.since));
  const limit = q.limit ?? Infinity;
  let key: string | undefined;
  if (q.email !== undefined) {
    const norm = normalizeEmail(q.email);
    if (!norm.valid) throw new OptoutError('OPTOUT_ERR_INVALID_EMAIL', `${describeValue(q.email)} is not a valid address (${norm.reason})`);
    key = norm.key;
  }
  let n = 0;
  for await (const record of store.auditRecords({ fromId, key })) {
    if (n++ >= limit) return;
    yield record;
  }
}
