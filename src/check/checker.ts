import type { KeyFilter } from '../filter/bloom.js';
import { hashKey } from '../filter/hash.js';
import { OptoutError, describeValue } from '../errors.js';
import { normalizeEmail } from '../policy/email.js';
import type { AuditRecord } from '../store/audit.js';
import { ACCOUNT_WIDE, UNIT_ID_PATTERN, type CheckView, type Ledger } from '../store/store.js';
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

/** The options of a check, validated: what a decision depends on besides the address. */
export interface CheckOptions {
  /** `undefined` for account-wide suppressions only (`*` is taken as that too). */
  unit: string | undefined;
  type: SendType;
  legalBasis: string | undefined;
  caller: string;
}

/** Validates a request's options; the email itself is judged by the address policy. */
export function normalizeCheckRequest(req: CheckRequest): Required<Pick<CheckRequest, 'email'>> & CheckOptions {
  return { email: emailOf(req.email), ...normalizeCheckOptions(req) };
}

/** A request's address, which must be a string (the address policy judges the rest). */
function emailOf(email: unknown): string {
  if (typeof email !== 'string') throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`email\` to be a string, got ${describeValue(email)}`);
  return email;
}

/** Validates the options of checks that share them (a whole send list, say). */
export function normalizeCheckOptions(req: Omit<CheckRequest, 'email'>): CheckOptions {
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
  return { unit: req.unit === ACCOUNT_WIDE ? undefined : req.unit, type, legalBasis: req.legalBasis, caller: req.caller ?? 'library' };
}

/** A decision on a key: what {@link Decision} says besides the address and the key. */
export type KeyDecision = Pick<Decision, 'eligible' | 'reason' | 'suppression'>;

// The common answers, shared: bulk callers decide millions of keys a second.
const NOT_SUPPRESSED: KeyDecision = Object.freeze({ eligible: true, reason: 'not_suppressed' });
const UNAVAILABLE: KeyDecision = Object.freeze({ eligible: false, reason: 'unavailable' });

/** What a checker reads: a check view's synchronous lookups. */
export type CheckLookups = Pick<CheckView, 'supports' | 'matchSync' | 'jobMetaSync'>;

/** Where the legal-basis decisions a checker records go: the ledger's audit trail. */
export type AuditSink = Pick<Ledger, 'audit' | 'appendAudit'>;

/**
 * Answers eligibility checks from a check view: address policy, key, then the key filter (a
 * miss means "not suppressed" with no I/O), and the view's synchronous lookup only on a
 * possible hit. Any store error answers "not eligible" (`unavailable`): the checker fails closed.
 */
export class Checker {
  readonly #view: CheckLookups;
  readonly #audit: AuditSink;
  readonly #filter: KeyFilter | undefined;
  readonly #hashes = new Uint32Array(3);
  #lastOptions: CheckOptions | undefined;

  /**
   * @param view synchronous lookups (the embedded store, or a replica's local view)
   * @param filter the view's key filter; without it every check reads the view (one-off checks)
   * @param audit where legal-basis decisions are recorded @default the view, when it is also the ledger
   */
  constructor(view: CheckLookups, filter: KeyFilter | undefined, audit?: AuditSink) {
    if (!view.supports.syncLookups) {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'Checks need a store with synchronous lookups (a local view)');
    }
    this.#view = view;
    this.#filter = filter;
    const sink = audit ?? (view as Partial<AuditSink>);
    if (typeof sink.audit !== 'function' || typeof sink.appendAudit !== 'function') {
      throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'Checks need an audit trail for legal-basis decisions: pass the ledger');
    }
    this.#audit = sink as AuditSink;
  }

  /** The decision, without recording anything (see `record`). Throws only on invalid options. */
  decide(req: CheckRequest): Decision {
    return this.#decideEmail(emailOf(req.email), this.#optionsOf(req));
  }

  /**
   * {@link normalizeCheckOptions}, reusing the last result while requests ask with the same
   * options (a send list's checks usually do): one object less per check.
   */
  #optionsOf(req: Omit<CheckRequest, 'email'>): CheckOptions {
    const last = this.#lastOptions;
    if (last !== undefined && req.unit === last.unit && (req.type ?? 'marketing') === last.type && req.legalBasis === last.legalBasis &&
      (req.caller ?? 'library') === last.caller) return last;
    this.#lastOptions = Object.freeze(normalizeCheckOptions(req));
    return this.#lastOptions;
  }

  /** The decision on an address, with options already validated. */
  #decideEmail(email: string, r: Omit<CheckOptions, 'caller'>): Decision {
    const n = normalizeEmail(email);
    if (!n.valid) return { address: null, key: null, eligible: false, reason: 'invalid_address', invalidReason: n.reason };
    hashKey(n.key, this.#hashes, 0);
    // Built here in one object rather than from decideKey's answer: this runs millions of times a second.
    const match = this.#matchIn(n.key, 0, n.key.length, this.#hashes[0] as number, this.#hashes[1] as number, r.unit);
    if (match === undefined) return { address: n.address, key: n.key, eligible: true, reason: 'not_suppressed' };
    if (match === null) return { address: n.address, key: n.key, eligible: false, reason: 'unavailable' };
    const d = decide(match, r.type, r.legalBasis);
    return { address: n.address, key: n.key, eligible: d.eligible, reason: d.reason, suppression: match };
  }

  /**
   * Decisions for many addresses asked with the same options (a batch of the HTTP API), in input
   * order, each as {@link decide} answers it: the options are validated once for the batch, not
   * once an address. Throws only on invalid options or an address that is not a string.
   */
  decideMany(emails: readonly string[], options: Omit<CheckRequest, 'email'>): Decision[] {
    const r = normalizeCheckOptions(options);
    const out = new Array<Decision>(emails.length);
    for (let i = 0; i < emails.length; i++) {
      out[i] = this.#decideEmail(emailOf(emails[i]), r);
    }
    return out;
  }

  /** Appends the audit records of the decisions of {@link decideMany} that used a legal basis. */
  async recordMany(options: Omit<CheckRequest, 'email'>, decisions: readonly Decision[]): Promise<void> {
    const used = decisions.filter((d) => d.reason === 'legal_basis' && d.key !== null);
    if (used.length === 0) return;
    const r = normalizeCheckOptions(options);
    await this.#audit.appendAudit(used.map((d) => this.#legalBasisAudit(d.key as string, r, d.suppression)));
  }

  /**
   * The decision for a key the address policy already produced, with its first two hashes
   * (filter/hash.ts): for bulk callers whose workers normalized and hashed the addresses. The
   * same rules as {@link decide}, which calls it; a store error answers `unavailable`.
   */
  decideKey(key: string, h1: number, h2: number, options: Omit<CheckOptions, 'caller'>): KeyDecision {
    return this.decideKeyIn(key, 0, key.length, h1, h2, options);
  }

  /**
   * {@link decideKey} for the key `text.slice(start, end)`, for callers that hold many keys in one
   * string: the key is only cut out when the filter cannot rule it out.
   */
  decideKeyIn(text: string, start: number, end: number, h1: number, h2: number, options: Omit<CheckOptions, 'caller'>): KeyDecision {
    const match = this.#matchIn(text, start, end, h1, h2, options.unit);
    if (match === undefined) return NOT_SUPPRESSED;
    if (match === null) return UNAVAILABLE;
    const d = decide(match, options.type, options.legalBasis);
    return { eligible: d.eligible, reason: d.reason, suppression: match };
  }

  /**
   * The suppression in scope for the key `text.slice(start, end)`: the filter first (a miss needs
   * no lookup, and no key cut out), then the view. `null` when the view could not answer.
   */
  #matchIn(text: string, start: number, end: number, h1: number, h2: number, unit: string | undefined): SuppressionInfo | undefined | null {
    if (this.#filter !== undefined && !this.#filter.mightContain(h1, h2)) return undefined;
    try {
      return this.#lookup(start === 0 && end === text.length ? text : text.slice(start, end), h1, h2, unit);
    } catch {
      return null;
    }
  }

  /** The audit record of a decision that used a legal basis; undefined for any other decision. */
  legalBasisRecord(req: CheckRequest, decision: Decision): AuditRecord | undefined {
    if (decision.reason !== 'legal_basis' || decision.key === null) return undefined;
    const r = normalizeCheckRequest(req);
    return this.#legalBasisAudit(decision.key, r, decision.suppression);
  }

  /** Appends the audit records of the decisions that used a legal basis, in one batch. */
  async record(reqs: readonly CheckRequest[], decisions: readonly Decision[]): Promise<void> {
    const records: AuditRecord[] = [];
    reqs.forEach((req, i) => {
      const rec = this.legalBasisRecord(req, decisions[i] as Decision);
      if (rec) records.push(rec);
    });
    // Nearly every check records nothing: on a replica, appending would be a database round trip.
    if (records.length > 0) await this.#audit.appendAudit(records);
  }

  /**
   * Appends the audit records of many `legal_basis` decisions taken with the same options
   * (the rows of one send-list chunk), in one atomic LevelDB batch.
   */
  async recordKeys(options: CheckOptions, keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.#audit.appendAudit(keys.map((key) => this.#legalBasisAudit(key, options, undefined)));
  }

  #legalBasisAudit(key: string, r: CheckOptions, match: SuppressionInfo | undefined): AuditRecord {
    return this.#audit.audit({
      actor: r.caller, action: 'legal_basis', key, job: match?.jobId ?? null, unit: r.unit ?? null,
      details: { type: r.type, basis: r.legalBasis ?? '', scope: match?.scope ?? null },
    });
  }

  /** The suppression in scope for a key the filter did not rule out. */
  #lookup(key: string, h1: number, h2: number, unit: string | undefined): SuppressionInfo | undefined {
    return this.#lookupIn(ACCOUNT_WIDE, key, h1, h2) ?? (unit === undefined ? undefined : this.#lookupIn(unit, key, h1, h2));
  }

  /** The suppression of a key in one scope, built in one object: this runs for every listed check. */
  #lookupIn(scope: string, key: string, h1: number, h2: number): SuppressionInfo | undefined {
    const entry = this.#view.matchSync(scope, key, h1, h2);
    if (entry === undefined) return undefined;
    const job = this.#view.jobMetaSync(entry.jobId);
    return { scope, reason: entry.reason ?? job.reason, source: job.source, addedAt: job.addedAt, jobId: entry.jobId };
  }
}
