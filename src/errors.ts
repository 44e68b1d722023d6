/**
 * Every failure optout reports carries a stable `code`. Match on `err.code`, never on the
 * message: messages may be reworded, codes are part of the API.
 */
export const ERROR_CODES = {
  OPTOUT_ERR_INVALID_OPTION: 'An option or argument has an invalid value',
  OPTOUT_ERR_SOURCE: 'The source could not be opened or read',
  OPTOUT_ERR_CSV_PARSE: 'The CSV input is broken (unclosed quote, stray quote)',
  OPTOUT_ERR_RECORD_TOO_LARGE: 'A CSV record is larger than --max-record-bytes',
  OPTOUT_ERR_NO_EMAIL_COLUMN: 'No header matches an email column name',
  OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN: 'Several headers match an email column name',
  OPTOUT_ERR_COLUMN_NOT_FOUND: 'The column given with --column is not in the header',
  OPTOUT_ERR_OUTPUT: 'An output file could not be written',
  OPTOUT_ERR_NOT_CONFIRMED: 'The confirmation count did not match, or none was given',
  OPTOUT_ERR_STORE_LOCKED: 'Another process holds the store',
  OPTOUT_ERR_STORE_SERVED: 'A running `optout serve` holds the store: use its HTTP API',
  OPTOUT_ERR_INVALID_EMAIL: 'The address fails the address policy',
  OPTOUT_ERR_INVALID_ENCODING: 'A parameter, path or body is not valid UTF-8 (after percent-decoding)',
  OPTOUT_ERR_NOT_SUPPRESSED: 'The address is not suppressed in that scope',
  OPTOUT_ERR_JOB_NOT_FOUND: 'No job has that id',
  OPTOUT_ERR_JOB_STATE: 'The job is not in a state that allows this',
  OPTOUT_ERR_STORE_NOT_OPEN: 'The store is not open',
  OPTOUT_ERR_STORE_CORRUPT: 'The store holds data this version cannot read',
  OPTOUT_ERR_STORE: 'The store failed to read or write',
  OPTOUT_ERR_WORKER: 'A parsing worker failed',
  OPTOUT_ERR_ABORTED: 'The operation was aborted',
  OPTOUT_ERR_INTERNAL: 'An unexpected failure (a bug): please report it',
  OPTOUT_ERR_URL_REFUSED: 'A sync URL is refused: not http(s), with credentials, or a local or private address',
  OPTOUT_ERR_FETCH: 'Fetching a URL failed: an error status, a connection failure, too many redirects',
  OPTOUT_ERR_FETCH_TIMEOUT: 'Fetching a URL took longer than a time limit',
  OPTOUT_ERR_FETCH_TOO_LARGE: 'A fetched body is larger than its size limit',
  OPTOUT_ERR_UNAUTHORIZED: 'HTTP: the API key is missing, unknown or revoked',
  OPTOUT_ERR_FORBIDDEN: 'HTTP: the API key may not do this (scope or unit)',
  OPTOUT_ERR_RATE_LIMITED: "HTTP: the API key's rate limit is exceeded",
  OPTOUT_ERR_REQUEST_TIMEOUT: 'HTTP: a request body did not arrive in time, or an upload stalled',
  OPTOUT_ERR_PAYLOAD_TOO_LARGE: 'HTTP: the body or the batch is too large',
  OPTOUT_ERR_NOT_READY: 'HTTP: the store or its key filter is not ready yet',
  OPTOUT_ERR_INVALID_JSON: 'HTTP: the body is not valid JSON',
  OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE: 'HTTP: the body is not application/json',
  OPTOUT_ERR_NOT_FOUND: 'HTTP: no such route',
  OPTOUT_ERR_BAD_REQUEST: 'HTTP: a malformed request',
} as const;

export type OptoutErrorCode = keyof typeof ERROR_CODES;

/** Where in the input an error was found. Lines are 1-based physical lines of the file. */
export interface ErrorLocation {
  line?: number;
  /** 1-based data record (the header is not a record). */
  row?: number;
  /** 1-based column, or the column's header name. */
  column?: number | string;
}

export class OptoutError extends Error {
  override readonly name = 'OptoutError';
  readonly code: OptoutErrorCode;
  readonly location: ErrorLocation | undefined;

  constructor(code: OptoutErrorCode, message: string, options?: { cause?: unknown; location?: ErrorLocation }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.location = options?.location;
  }
}

export function isOptoutError(err: unknown): err is OptoutError {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code in ERROR_CODES;
}

/**
 * CLI exit status for an error: 2 for usage and input problems the user can fix,
 * 3 for a missing or wrong confirmation, 1 for anything else.
 */
export function exitCodeFor(err: unknown): 1 | 2 | 3 {
  if (!isOptoutError(err)) return 1;
  switch (err.code) {
    case 'OPTOUT_ERR_INVALID_OPTION':
    case 'OPTOUT_ERR_SOURCE':
    case 'OPTOUT_ERR_CSV_PARSE':
    case 'OPTOUT_ERR_RECORD_TOO_LARGE':
    case 'OPTOUT_ERR_NO_EMAIL_COLUMN':
    case 'OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN':
    case 'OPTOUT_ERR_COLUMN_NOT_FOUND':
    case 'OPTOUT_ERR_OUTPUT':
    case 'OPTOUT_ERR_STORE_LOCKED':
    case 'OPTOUT_ERR_STORE_SERVED':
    case 'OPTOUT_ERR_INVALID_EMAIL':
    case 'OPTOUT_ERR_INVALID_ENCODING':
    case 'OPTOUT_ERR_NOT_SUPPRESSED':
    case 'OPTOUT_ERR_JOB_NOT_FOUND':
    case 'OPTOUT_ERR_JOB_STATE':
    case 'OPTOUT_ERR_URL_REFUSED':
    case 'OPTOUT_ERR_FETCH_TOO_LARGE':
      return 2;
    case 'OPTOUT_ERR_NOT_CONFIRMED':
      return 3;
    default:
      return 1;
  }
}

/** Stops long work at a safe point once the caller has aborted it. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OptoutError('OPTOUT_ERR_ABORTED', 'The import was interrupted', { cause: signal.reason });
}

/** Renders an option value the way messages quote it: `value` (type). */
export function describeValue(value: unknown): string {
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  let shown: string;
  try {
    shown = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return `\`${shown}\` (${type})`;
}
