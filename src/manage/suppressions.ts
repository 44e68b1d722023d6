/**
 * One address at a time: add, look up, remove. The ledger writes every change atomically with
 * its audit record, built here. A removal is the only way a suppression ever ends.
 */
import { hashKeyTuple } from '../filter/hash.js';
import { OptoutError, describeValue } from '../errors.js';
import { normalizeReason, normalizeUnit } from '../options.js';
import { normalizeEmail } from '../policy/email.js';
import { entryMetaOf, JobMetas } from '../store/jobs.js';
import type { SuppressionReason } from '../store/jobs.js';
import { ACCOUNT_WIDE, type Ledger } from '../store/store.js';

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
  /** More to keep in the audit record (a link's campaign, say). @default none */
  details?: Record<string, unknown> | undefined;
}

export interface RemoveOptions {
  email: string;
  unit?: string | undefined;
  /** Why the address may be emailed again (a resubscription, a mistake): required, audited. */
  why: string;
  actor?: string | undefined;
  /** More to keep in the audit record. @default none */
  details?: Record<string, unknown> | undefined;
  /**
   * Remove only the suppression this job stored, and only while no other job holds it (an undo
   * must not end what an import or another add also asked for); otherwise nothing changes and
   * OPTOUT_ERR_LINK_UNDO. @default any suppression of the address in the scope
   */
  onlyJob?: string | undefined;
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
export async function addSuppression(store: Ledger, o: AddOptions): Promise<AddResult> {
  const hashed = normalizedKey(o.email);
  const scope = normalizeUnit(o.unit);
  const reason: SuppressionReason = normalizeReason(o.reason ?? 'manual');
  const actor = o.actor ?? 'library';
  if (o.source !== undefined && (typeof o.source !== 'string' || o.source.length === 0 || o.source.length > MAX_SOURCE)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`source\` to be a label of 1 to ${MAX_SOURCE} characters, got ${describeValue(o.source)}`);
  }
  const source = o.source ?? actor;
  const { added, job } = await store.addSuppression({ ...hashed, scope, reason, source, actor }, (outcome) => store.audit({
    actor, action: 'add', key: hashed.key, job: outcome.job, unit: unitOf(scope),
    details: { ...o.details, reason, source, alreadySuppressed: !outcome.added },
  }));
  return { address: hashed.address, key: hashed.key, scope, added, job };
}

/** Every scope that suppresses the address, account-wide first. */
export async function lookupSuppressions(store: Pick<Ledger, 'entriesOf' | 'getJob'>, email: string): Promise<Suppression[]> {
  const hashed = normalizedKey(email);
  const metas = new JobMetas(store);
  const out: Suppression[] = [];
  for (const { scope, entry } of await store.entriesOf(hashed)) {
    const meta = entryMetaOf(entry, await metas.get(entry.jobId));
    out.push({ address: entry.address ?? hashed.key, key: hashed.key, scope, reason: meta.reason, source: meta.source, job: entry.jobId, addedAt: meta.addedAt });
  }
  return out;
}

/**
 * Ends the suppression of an address in one scope: the entry and every job's hold on it go,
 * with the audit record that says who and why.
 */
export async function removeSuppression(store: Ledger, o: RemoveOptions): Promise<RemoveResult> {
  const hashed = normalizedKey(o.email);
  const scope = normalizeUnit(o.unit);
  if (typeof o.why !== 'string' || o.why.trim() === '' || o.why.length > MAX_WHY) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`why\` to be a text of 1 to ${MAX_WHY} characters, got ${describeValue(o.why)}`);
  }
  const actor = o.actor ?? 'library';
  const { entry, meta: jobMeta } = await store.removeSuppression(scope, hashed, ({ entry: e, meta: jobOf, heldBy }) => {
    const m = entryMetaOf(e, jobOf);
    // Thrown before the ledger writes anything: the removal does not happen.
    if (o.onlyJob !== undefined && (e.jobId !== o.onlyJob || heldBy.length > 0)) {
      throw new OptoutError('OPTOUT_ERR_LINK_UNDO', `The suppression of ${hashed.key} changed since job ${o.onlyJob}: it stays`);
    }
    return store.audit({
      actor, action: 'remove', key: hashed.key, job: e.jobId, unit: unitOf(scope),
      details: { ...o.details, why: o.why, reason: m.reason, source: m.source, addedAt: m.addedAt, heldBy },
    });
  });
  const meta = entryMetaOf(entry, jobMeta);
  const removed: Suppression = {
    address: entry.address ?? hashed.key, key: hashed.key, scope, reason: meta.reason, source: meta.source, job: entry.jobId, addedAt: meta.addedAt,
  };
  return { key: hashed.key, scope, removed };
}
