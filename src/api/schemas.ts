/**
 * Response schemas of the routes, for the OpenAPI document (`GET /openapi.json`). They describe
 * the answers; they do not shape them: the server serializes with `JSON.stringify` (see
 * server.ts), so that a field missing from a schema can never be dropped from a decision.
 */
import { JOB_STATES } from '../store/job-states.js';
import { SUPPRESSION_REASONS } from '../store/jobs.js';

/** Every non-2xx answer. */
export const ERROR_SCHEMA = {
  type: 'object', required: ['code', 'message'],
  properties: { code: { type: 'string', description: 'a stable OPTOUT_ERR_* code (README: Errors)' }, message: { type: 'string' } },
} as const;

const OPEN_OBJECT = { type: 'object', additionalProperties: true } as const;

export const DECISION_SCHEMA = {
  type: 'object', required: ['address', 'key', 'eligible', 'reason'], additionalProperties: true,
  properties: {
    address: { type: ['string', 'null'] },
    key: { type: ['string', 'null'] },
    eligible: { type: 'boolean' },
    reason: { type: 'string', enum: ['not_suppressed', 'suppressed', 'legal_basis', 'invalid_address', 'unavailable'] },
    invalidReason: { type: 'string' },
    suppression: OPEN_OBJECT,
  },
} as const;

/** A decision of a batch asked with `compact: true`: the address is the one at the same position. */
export const COMPACT_DECISION_SCHEMA = {
  type: 'object', required: ['eligible', 'reason'], additionalProperties: false,
  properties: {
    eligible: DECISION_SCHEMA.properties.eligible,
    reason: DECISION_SCHEMA.properties.reason,
    invalidReason: DECISION_SCHEMA.properties.invalidReason,
  },
} as const;

export const JOB_SCHEMA = {
  type: 'object', required: ['id', 'state'], additionalProperties: true,
  properties: {
    id: { type: 'string' }, state: { type: 'string', enum: JOB_STATES }, counts: OPEN_OBJECT,
    reasons: {
      type: 'object', additionalProperties: false,
      description: 'valid rows per reason: each row\'s own (a reason column), else the job\'s; they add up to `counts.valid`',
      properties: Object.fromEntries(SUPPRESSION_REASONS.map((r) => [r, { type: 'integer', minimum: 1 }])),
    },
    error: { type: ['object', 'null'], additionalProperties: true },
    holder: {
      type: ['object', 'null'], additionalProperties: false,
      description: 'on a PostgreSQL database, for a job not ended: the API replica that holds it (the id kept in its folder), when it was last seen, and whether it is taken as lost (not seen within --lost-after)',
      properties: { id: { type: ['string', 'null'] }, seenAt: { type: ['string', 'null'] }, lost: { type: 'boolean' } },
    },
  },
} as const;

/** `{ <name>: [ ...items ] }`. */
export function listOf(name: string, items: object = OPEN_OBJECT): object {
  return { type: 'object', required: [name], properties: { [name]: { type: 'array', items } } };
}

/** A text answer of one of these media types (CSV, NDJSON, Prometheus text). */
export function textOf(...mediaTypes: string[]): object {
  return { content: Object.fromEntries(mediaTypes.map((t) => [t, { schema: { type: 'string' } }])) };
}

/** The route's success answers, and `{ code, message }` for every error. */
export function answers(success: Record<number, object>): Record<string, object> {
  return { ...success, '4xx': ERROR_SCHEMA, '5xx': ERROR_SCHEMA };
}

export { OPEN_OBJECT };
