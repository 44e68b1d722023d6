/**
 * The HTTP API's error codes (all in src/errors.ts) and their statuses. Clients match on
 * `code`, never on `message`.
 */
import { isOptoutError, type OptoutErrorCode } from '../errors.js';

export const API_ERROR_STATUS = {
  OPTOUT_ERR_INVALID_OPTION: 400,
  OPTOUT_ERR_INVALID_EMAIL: 400,
  OPTOUT_ERR_INVALID_ENCODING: 400,
  OPTOUT_ERR_URL_REFUSED: 400,
  OPTOUT_ERR_NO_EMAIL_COLUMN: 400,
  OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN: 400,
  OPTOUT_ERR_COLUMN_NOT_FOUND: 400,
  OPTOUT_ERR_INVALID_JSON: 400,
  OPTOUT_ERR_BAD_REQUEST: 400,
  OPTOUT_ERR_UNAUTHORIZED: 401,
  OPTOUT_ERR_FORBIDDEN: 403,
  OPTOUT_ERR_NOT_FOUND: 404,
  OPTOUT_ERR_NOT_SUPPRESSED: 404,
  OPTOUT_ERR_JOB_NOT_FOUND: 404,
  OPTOUT_ERR_JOB_STATE: 409,
  OPTOUT_ERR_NOT_CONFIRMED: 409,
  OPTOUT_ERR_REQUEST_TIMEOUT: 408,
  OPTOUT_ERR_PAYLOAD_TOO_LARGE: 413,
  OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  OPTOUT_ERR_RATE_LIMITED: 429,
  OPTOUT_ERR_INTERNAL: 500,
  OPTOUT_ERR_NOT_READY: 503,
  OPTOUT_ERR_STORE: 503,
  OPTOUT_ERR_STORE_NOT_OPEN: 503,
} as const satisfies Partial<Record<OptoutErrorCode, number>>;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/** An error the API answers as `{ code, message }` with the code's status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ApiErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.headers = headers;
  }

  get status(): number {
    return API_ERROR_STATUS[this.code];
  }
}

/** What fastify's own errors carry that we map. */
interface FrameworkError {
  code?: unknown;
  statusCode?: unknown;
  validation?: unknown;
  message?: unknown;
}

/**
 * Turns anything thrown while answering into the API error to send. Unknown failures become a
 * 500 with a generic message: internals (paths, stack) never reach a client.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (isOptoutError(err)) {
    if (err.code in API_ERROR_STATUS && !err.code.startsWith('OPTOUT_ERR_STORE') && err.code !== 'OPTOUT_ERR_INTERNAL') {
      return new ApiError(err.code as ApiErrorCode, err.message);
    }
    if (err.code === 'OPTOUT_ERR_STORE_NOT_OPEN') return new ApiError('OPTOUT_ERR_STORE_NOT_OPEN', 'The store is not open');
    if (err.code.startsWith('OPTOUT_ERR_STORE')) return new ApiError('OPTOUT_ERR_STORE', 'The store could not answer');
    return new ApiError('OPTOUT_ERR_INTERNAL', 'Internal error');
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as FrameworkError;
  const message = typeof e.message === 'string' ? e.message : 'Bad request';
  if (e.validation !== undefined) return new ApiError('OPTOUT_ERR_INVALID_OPTION', message);
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return new ApiError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', 'The request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return new ApiError('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return new ApiError('OPTOUT_ERR_INVALID_JSON', 'The body is not valid JSON');
    default: break;
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  // Fastify reports a JSON body it cannot parse as a SyntaxError with status 400.
  if (err instanceof SyntaxError && status === 400) return new ApiError('OPTOUT_ERR_INVALID_JSON', 'The body is not valid JSON');
  if (status === 413) return new ApiError('OPTOUT_ERR_PAYLOAD_TOO_LARGE', 'The request body is too large');
  if (status >= 400 && status < 500) return new ApiError('OPTOUT_ERR_BAD_REQUEST', message);
  return new ApiError('OPTOUT_ERR_INTERNAL', 'Internal error');
}
