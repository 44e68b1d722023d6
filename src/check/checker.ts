import type { KeyFilter } from '../dedup/bloom.js';
import { hashKey } from '../dedup/hash.js';
import { OptoutError, describeValue } from '../errors.js';
import { normalizeEmail } from '../policy/email.js';
import { ACCOUNT_WIDE, UNIT_ID_PATTERN, decodeEntryValue, entryKeyOfHash } from '../store/keys.js';
import { JobMetaCache } from '../store/job-meta.js';
import type { AuditRecord } from '../store/audit.js';
import type { LevelStore } from '../store/level-store.js';
import { SEND_TYPES, decide, type Decision, type SendType, type SuppressionInfo } from './rules.js';

export interface CheckRequest {
  email: string;
  /** Business unit; without it only account-wide suppressions apply. */
  unit?: string | undefined;
  /** @default 'marketing' */
  type?: SendType | undefined;
  /** Why a one-to-one send to a suppressed address is lawful; recorded when it is used. */
  legalBasis?: string | undefined;
  /** Who asked (an API key id, or `cli`), for the legal-basis record. */
  caller?: string | undefined;
}

const MAX_LEGAL_BASIS = 500;

/** Validates a request's options; the email itself is judged by the address policy. */
export function normalizeCheckRequest(req: CheckRequest): Required<Pick<CheckRequest, 'email'>> & { unit: string | undefined; type: SendType; legalBasis: string | undefined; caller: string } {
  if (typeof req.email !== 'string') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`email\` to be a string, got ${describeValue(req.email)}`);
  }
  if (req.unit !== undefined && (typeof req.unit !== 'string' || !UNIT_ID_PATTERN.test(req.unit))) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`unit\` to match [A-Za-z0-9_-]{1,64}, got ${describeValue(req.unit)}`);
  }
  const type = req.type ?? 'marketing';
  if (!SEND_TYPES.includes(type)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`type\` to be one of ${SEND_TYPES.join(', ')}, got ${describeValue(req.type)}`);
  }
  if (req.legalBasis !== undefined && (typeof req.legalBasis !== 'string' || req.legalBasis.length > MAX_LEGAL_BASIS)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`legalBasis\` to be a text of at most ${MAX_LEGAL_BASIS} characters, got ${describeValue(req.legalBasis)}`);
  }
  return { email: req.email, unit: req.unit === ACCOUNT_WIDE ? undefined : req.unit, type, legalBasis: req.legalBasis, caller: req.caller ?? 'library' };
}

/**
 * Answers eligibility checks from the store: address policy, key, then the key filter (a miss
 * means "not suppressed" with no I/O), and LevelDB's synchronous get only on a possible hit.
 * Any store error answers "not eligible" (`unavailable`): the checker fails closed.
 */
export class Checker {
  readonly #store: LevelStore;
  readonly #filter: KeyFilter | undefined;
  readonly #jobs: JobMetaCache;
  readonly #hashes = new Uint32Array(3);

  /** @param filter the store's key filter; without it every check reads the store (one-off checks). */
  constructor(store: LevelStore, filter: KeyFilter | undefined) {
    this.#store = store;
    this.#filter = filter;
    this.#jobs = new JobMetaCache(store.db);
  }

  /** The decision, without recording anything (see `record`). Throws only on invalid options. */
  decide(req: CheckRequest): Decision {
    const r = normalizeCheckRequest(req);
    const n = normalizeEmail(r.email);
    if (!n.valid) return { address: null, key: null, eligible: false, reason: 'invalid_address', invalidReason: n.reason };
    let match: SuppressionInfo | undefined;
    try {
      match = this.#match(n.key, r.unit);
    } catch {
      return { address: n.address, key: n.key, eligible: false, reason: 'unavailable' };
    }
    // The common answer, built without spreading: this runs millions of times a second.
    if (match === undefined) return { address: n.address, key: n.key, eligible: true, reason: 'not_suppressed' };
    const d = decide(match, r.type, r.legalBasis);
    return { address: n.address, key: n.key, eligible: d.eligible, reason: d.reason, suppression: match };
  }

  /** The audit record of a decision that used a legal basis; undefined for any other decision. */
  legalBasisRecord(req: CheckRequest, decision: Decision): AuditRecord | undefined {
    if (decision.reason !== 'legal_basis' || decision.key === null) return undefined;
    const r = normalizeCheckRequest(req);
    return this.#store.audit({
      actor: r.caller, action: 'legal_basis', key: decision.key, job: decision.suppression?.jobId ?? null, unit: r.unit ?? null,
      details: { type: r.type, basis: r.legalBasis ?? '', scope: decision.suppression?.scope ?? null },
    });
  }

  /** Appends the audit records of the decisions that used a legal basis. */
  async record(reqs: readonly CheckRequest[], decisions: readonly Decision[]): Promise<void> {
    const records: AuditRecord[] = [];
    reqs.forEach((req, i) => {
      const rec = this.legalBasisRecord(req, decisions[i] as Decision);
      if (rec) records.push(rec);
    });
    await this.#store.appendAudit(records);
  }

  #match(key: string, unit: string | undefined): SuppressionInfo | undefined {
    hashKey(key, this.#hashes, 0);
    const h1 = this.#hashes[0] as number;
    if (this.#filter !== undefined && !this.#filter.mightContain(h1, this.#hashes[1] as number)) return undefined;
    const db = this.#store.db;
    for (const scope of unit === undefined ? [ACCOUNT_WIDE] : [ACCOUNT_WIDE, unit]) {
      const value = db.getSync(entryKeyOfHash(scope, h1, key));
      if (value !== undefined) {
        const jobId = decodeEntryValue(value).jobId;
        return { scope, jobId, ...this.#jobs.get(jobId) };
      }
    }
    return undefined;
  }
}
