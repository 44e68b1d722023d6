/**
 * One address at a time: add, look up, remove. Every change is written in one atomic batch with
 * its audit record, under the store's write lock (so that it cannot interleave with an import
 * running in the same process). A removal is the only way a suppression ever ends.
 */
import { hashKeyTuple } from '../dedup/hash.js';
import { OptoutError, describeValue } from '../errors.js';
import { normalizeReason, normalizeUnit } from '../options.js';
import { normalizeEmail } from '../policy/email.js';
import type { AddRecord, SuppressionReason } from '../store/jobs.js';
import { JobMetaCache } from '../store/job-meta.js';
import {
  ACCOUNT_WIDE, decodeEntryValue, encodeEntryValue, entryKeyOfHash, holdKeyOfEntry, jobKey,
} from '../store/keys.js';
import type { ChangeOp, LevelStore } from '../store/level-store.js';

export interface AddOptions {
  email: string;
  /** @default account-wide */
  unit?: string | undefined;
  /** @default 'manual' */
  reason?: string | undefined;
  /** The label kept as the entry's source. @default the actor */
  source?: string | undefined;
  /** Who asks: an API key id or `cli`. @default 'library' */
  actor?: string | undefined;
}

export interface RemoveOptions {
  email: string;
  unit?: string | undefined;
  /** Why the address may be emailed again (a resubscription, a mistake): required, audited. */
  why: string;
  actor?: string | undefined;
}

/** One scope's suppression of an address. */
export interface Suppression {
  address: string;
  key: string;
  /** Business unit, or `*` for account-wide. */
  scope: string;
  reason: string;
  source: string;
  job: string;
  addedAt: string;
}

export interface AddResult {
  address: string;
  key: string;
  scope: string;
  /** False when the scope already suppressed the address (the add is still recorded). */
  added: boolean;
  job: string;
}

export interface RemoveResult {
  key: string;
  scope: string;
  /** The suppression that was removed. */
  removed: Suppression;
}

const MAX_WHY = 1000;
const MAX_SOURCE = 200;

function normalizedKey(email: unknown): { key: string; address: string; h1: number; h2: number } {
  if (typeof email !== 'string') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`email\` to be a string, got ${describeValue(email)}`);
  }
  const n = normalizeEmail(email);
  if (!n.valid) throw new OptoutError('OPTOUT_ERR_INVALID_EMAIL', `${describeValue(email)} is not a valid address (${n.reason})`);
  const [h1, h2] = hashKeyTuple(n.key);
  return { key: n.key, address: n.address, h1, h2 };
}

function unitOf(scope: string): string | null {
  return scope === ACCOUNT_WIDE ? null : scope;
}

/** Suppresses one address in one scope. */
export async function addSuppression(store: LevelStore, o: AddOptions): Promise<AddResult> {
  const { key, address, h1, h2 } = normalizedKey(o.email);
  const scope = normalizeUnit(o.unit);
  const reason: SuppressionReason = normalizeReason(o.reason ?? 'manual');
  const actor = o.actor ?? 'library';
  if (o.source !== undefined && (typeof o.source !== 'string' || o.source.length === 0 || o.source.length > MAX_SOURCE)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`source\` to be a label of 1 to ${MAX_SOURCE} characters, got ${describeValue(o.source)}`);
  }
  const source = o.source ?? actor;
  const filter = await store.filter();
  return store.withWriteLock(async () => {
    const entry = entryKeyOfHash(scope, h1, key);
    const [existing] = await store.getMany([entry]);
    const { id, op } = await store.nextJobId();
    const now = new Date().toISOString();
    const record: AddRecord = {
      id, kind: 'add', state: 'completed', scope, reason, source, actor, key, createdAt: now, updatedAt: now, finishedAt: now,
    };
    const ops: ChangeOp[] = [op, { type: 'put', key: jobKey(id), value: JSON.stringify(record) }];
    const added = existing === undefined;
    if (added) {
      // In the filter before the write is acknowledged: no check may see the entry as absent.
      filter.add(h1, h2);
      ops.push({ type: 'put', key: entry, value: encodeEntryValue(id, address === key ? undefined : address) });
    } else {
      // Held, as an import holds a key it found: rolling back the entry's owner keeps it.
      ops.push({ type: 'put', key: holdKeyOfEntry(entry, id), value: '' });
    }
    await store.commitChange(ops, new Map([[scope, added ? 1 : 0]]), store.audit({
      actor, action: 'add', key, job: id, unit: unitOf(scope),
      details: { reason, source, alreadySuppressed: !added },
    }));
    return { address, key, scope, added, job: id };
  });
}

/** Every scope that suppresses the address, account-wide first. */
export async function lookupSuppressions(store: LevelStore, email: string): Promise<Suppression[]> {
  const { key, h1 } = normalizedKey(email);
  const scopes = [ACCOUNT_WIDE, ...[...store.counts().keys()].filter((s) => s !== ACCOUNT_WIDE).sort()];
  const values = await store.getMany(scopes.map((s) => entryKeyOfHash(s, h1, key)));
  const jobs = new JobMetaCache(store.db);
  const out: Suppression[] = [];
  values.forEach((value, i) => {
    if (value === undefined) return;
    const { jobId, address: stored } = decodeEntryValue(value);
    const meta = jobs.get(jobId);
    out.push({ address: stored ?? key, key, scope: scopes[i] as string, reason: meta.reason, source: meta.source, job: jobId, addedAt: meta.addedAt });
  });
  return out;
}

/**
 * Ends the suppression of an address in one scope: the entry and every job's hold on it go, in
 * one batch with the audit record that says who and why.
 */
export async function removeSuppression(store: LevelStore, o: RemoveOptions): Promise<RemoveResult> {
  const { key, h1 } = normalizedKey(o.email);
  const scope = normalizeUnit(o.unit);
  if (typeof o.why !== 'string' || o.why.trim() === '' || o.why.length > MAX_WHY) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`why\` to be a text of 1 to ${MAX_WHY} characters, got ${describeValue(o.why)}`);
  }
  const actor = o.actor ?? 'library';
  return store.withWriteLock(async () => {
    const entry = entryKeyOfHash(scope, h1, key);
    const [value] = await store.getMany([entry]);
    if (value === undefined) {
      throw new OptoutError('OPTOUT_ERR_NOT_SUPPRESSED', `${key} is not suppressed ${scope === ACCOUNT_WIDE ? 'account-wide' : `in unit ${scope}`}`);
    }
    const { jobId, address } = decodeEntryValue(value);
    const meta = new JobMetaCache(store.db).get(jobId);
    const holdPrefix = holdKeyOfEntry(entry, '');
    const holds = await store.db.keys({ gte: holdPrefix, lt: holdPrefix.slice(0, -1) + '\u0001' }).all();
    const ops: ChangeOp[] = [{ type: 'del', key: entry }, ...holds.map((k) => ({ type: 'del' as const, key: k }))];
    const removed: Suppression = { address: address ?? key, key, scope, reason: meta.reason, source: meta.source, job: jobId, addedAt: meta.addedAt };
    await store.commitChange(ops, new Map([[scope, -1]]), store.audit({
      actor, action: 'remove', key, job: jobId, unit: unitOf(scope),
      details: { why: o.why, reason: meta.reason, source: meta.source, addedAt: meta.addedAt, heldBy: holds.map((k) => k.slice(holdPrefix.length)) },
    }));
    return { key, scope, removed };
  });
}
