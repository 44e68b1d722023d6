/**
 * The HTTP API's errors: `{ code, message }` with the code's status from src/errors.ts. Clients
 * match on `code`, never on `message`.
 */
import { ERROR_TABLE, isOptoutError, type OptoutErrorCode } from '../errors.js';

/** Every code can be answered; its status is in the one error table. */
export type ApiErrorCode = OptoutErrorCode;

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
    return ERROR_TABLE[this.code].http;
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
    // Store failures and bugs are answered without their messages: paths and internals stay in.
    if (!err.code.startsWith('OPTOUT_ERR_STORE') && err.code !== 'OPTOUT_ERR_INTERNAL' && err.code !== 'OPTOUT_ERR_WORKER' &&
      err.code !== 'OPTOUT_ERR_OUTPUT') {
      return new ApiError(err.code, err.message);
    }
    if (err.code === 'OPTOUT_ERR_STORE_NOT_OPEN') return new ApiError('OPTOUT_ERR_STORE_NOT_OPEN', 'The store is not open');
    if (err.code === 'OPTOUT_ERR_STORE_LOCKED' || err.code === 'OPTOUT_ERR_STORE_SERVED') return new ApiError(err.code, 'The store is held by another process');
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
