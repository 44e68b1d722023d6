import { OptoutError, describeValue } from '../errors.js';
import { normalizeEmail } from '../policy/email.js';
import { AUDIT_RANGE, auditIdAt, auditIdOfIndex, auditIndexRange, type AuditRecord } from '../store/audit.js';
import type { LevelStore } from '../store/level-store.js';

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
export async function* readAudit(store: LevelStore, q: AuditQuery = {}): AsyncGenerator<AuditRecord> {
  const from = auditIdAt(sinceMs(q.since));
  const limit = q.limit ?? Infinity;
  let n = 0;
  if (q.email !== undefined) {
    const norm = normalizeEmail(q.email);
    if (!norm.valid) throw new OptoutError('OPTOUT_ERR_INVALID_EMAIL', `${describeValue(q.email)} is not a valid address (${norm.reason})`);
    const ids: string[] = [];
    for await (const k of store.db.keys(auditIndexRange(norm.key))) {
      const id = auditIdOfIndex(k);
      if (id >= from) ids.push(id);
    }
    for (const raw of await store.getMany(ids.map((id) => 'a' + id))) {
      if (raw === undefined || n++ >= limit) continue;
      yield JSON.parse(raw) as AuditRecord;
    }
    return;
  }
  for await (const raw of store.db.values({ gte: 'a' + from, lt: AUDIT_RANGE.lt })) {
    if (n++ >= limit) return;
    yield JSON.parse(raw) as AuditRecord;
  }
}
