/**
 * Every failure optout reports carries a stable `code`. Match on `err.code`, never on the
 * message: messages may be reworded, codes are part of the API.
 *
 * What each code means, everywhere it can surface: the CLI's exit status (2 for usage and input
 * problems the user can fix, 3 for a missing or wrong confirmation, 1 for anything else), the
 * HTTP status the API answers it with, and a description (the README's Errors table). One table,
 * typed so that a code cannot be added without all three.
 */
export const ERROR_TABLE = {
  OPTOUT_ERR_INVALID_OPTION: { exit: 2, http: 400, description: 'an option or argument has an invalid value' },
  OPTOUT_ERR_SOURCE: { exit: 2, http: 400, description: 'the source cannot be opened or read (or is not valid gzip)' },
  OPTOUT_ERR_CSV_PARSE: { exit: 2, http: 400, description: 'broken CSV: an unclosed quote, text after a closing quote; names the line' },
  OPTOUT_ERR_JSON_PARSE: { exit: 2, http: 400, description: 'broken JSON or NDJSON, or JSON that holds no array of records; names the line for NDJSON' },
  OPTOUT_ERR_ZIP_MEMBER: { exit: 2, http: 400, description: 'a ZIP archive holds no list or several (listed), or `--member` names no member' },
  OPTOUT_ERR_RECORD_TOO_LARGE: { exit: 2, http: 400, description: 'a record is larger than `--max-record-bytes`; names the line' },
  OPTOUT_ERR_NO_EMAIL_COLUMN: { exit: 2, http: 400, description: 'no header looks like an email column and no column holds addresses; lists the headers' },
  OPTOUT_ERR_AMBIGUOUS_EMAIL_COLUMN: { exit: 2, http: 400, description: 'several headers look like an email column, or several columns hold addresses; lists them' },
  OPTOUT_ERR_COLUMN_NOT_FOUND: { exit: 2, http: 400, description: '`--column` names no header' },
  OPTOUT_ERR_OUTPUT: { exit: 2, http: 500, description: 'a scrub\'s `--out` or `--removed` file, or a folder for temporary files, cannot be written (no such folder, no space)' },
  OPTOUT_ERR_NOT_CONFIRMED: { exit: 3, http: 409, description: 'the confirmation count did not match, or none was given' },
  OPTOUT_ERR_STORE_LOCKED: { exit: 2, http: 503, description: 'another process holds the store' },
  OPTOUT_ERR_STORE_SERVED: { exit: 2, http: 503, description: 'a running `optout serve` holds the store: use its HTTP API (the message gives its URL)' },
  OPTOUT_ERR_INVALID_EMAIL: { exit: 2, http: 400, description: '`add`, `remove`, `show` or `audit --email` got an address that fails the policy' },
  OPTOUT_ERR_INVALID_ENCODING: { exit: 2, http: 400, description: 'text that is not valid UTF-8: an HTTP query, path or JSON body whose bytes (after percent-decoding) are not UTF-8; a CLI argument that is not, or that holds U+FFFD, which Node\'s decoding makes indistinguishable' },
  OPTOUT_ERR_NOT_SUPPRESSED: { exit: 2, http: 404, description: '`remove` of an address that scope does not suppress' },
  OPTOUT_ERR_JOB_NOT_FOUND: { exit: 2, http: 404, description: 'no job has that id' },
  OPTOUT_ERR_JOB_STATE: { exit: 2, http: 409, description: 'the job\'s state does not allow this, e.g. confirming a job that is not waiting or rolling back a running one' },
  OPTOUT_ERR_HOLDER_LOST: { exit: 2, http: 409, description: 'an import job\'s server was not seen within `--lost-after`, or an operator abandoned the job (`optout jobs abandon`): the job ended without it; its message says what to do' },
  OPTOUT_ERR_STORE_NOT_OPEN: { exit: 1, http: 503, description: 'the store is not open (closed, or not opened yet)' },
  OPTOUT_ERR_STORE_CORRUPT: { exit: 1, http: 503, description: 'the store holds data of another format or address policy' },
  OPTOUT_ERR_STORE: { exit: 1, http: 503, description: 'the store failed to read or write' },
  OPTOUT_ERR_STALE: { exit: 1, http: 503, description: 'an API replica has not proven, within its bound, that its view holds every committed change: it answers no check' },
  OPTOUT_ERR_SCHEMA: { exit: 2, http: 503, description: 'the PostgreSQL database has no optout schema, or one of another version: run `optout migrate --db <url>`' },
  OPTOUT_ERR_WORKER: { exit: 1, http: 500, description: 'a parsing thread failed' },
  OPTOUT_ERR_ABORTED: { exit: 1, http: 503, description: 'the operation was interrupted (Ctrl-C, a server shutting down)' },
  OPTOUT_ERR_INTERNAL: { exit: 1, http: 500, description: 'an unexpected failure (a bug): please report it' },
  OPTOUT_ERR_URL_REFUSED: { exit: 2, http: 400, description: 'a sync URL is not http(s), holds credentials, or names or resolves to a loopback, private, link-local or metadata address' },
  OPTOUT_ERR_FETCH: { exit: 1, http: 502, description: 'fetching a list failed: an error status, a refused connection, too many redirects' },
  OPTOUT_ERR_FETCH_TIMEOUT: { exit: 1, http: 504, description: 'fetching a list took longer than a time limit' },
  OPTOUT_ERR_FETCH_TOO_LARGE: { exit: 2, http: 502, description: 'a fetched list is larger than its size limit' },
  OPTOUT_ERR_UNAUTHORIZED: { exit: 1, http: 401, description: 'HTTP: the API key is missing, unknown, revoked, or an admin key bound to a unit' },
  OPTOUT_ERR_FORBIDDEN: { exit: 1, http: 403, description: 'HTTP: the API key may not do this (scope or unit)' },
  OPTOUT_ERR_RATE_LIMITED: { exit: 1, http: 429, description: 'HTTP: the API key\'s rate limit is exceeded (with `Retry-After`)' },
  OPTOUT_ERR_REQUEST_TIMEOUT: { exit: 1, http: 408, description: 'HTTP: a request body did not arrive in time, or an upload stalled' },
  OPTOUT_ERR_PAYLOAD_TOO_LARGE: { exit: 1, http: 413, description: 'HTTP: the body or the batch is too large' },
  OPTOUT_ERR_PENDING_QUOTA: { exit: 1, http: 507, description: 'HTTP: an upload would take the uploads kept for unfinished import jobs past `--max-pending-bytes`' },
  OPTOUT_ERR_NOT_READY: { exit: 1, http: 503, description: 'HTTP: the store or its key filter is not ready yet' },
  OPTOUT_ERR_INVALID_JSON: { exit: 1, http: 400, description: 'HTTP: the body is not valid JSON' },
  OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE: { exit: 1, http: 415, description: 'HTTP: the body is not of a type the route accepts' },
  OPTOUT_ERR_NOT_FOUND: { exit: 1, http: 404, description: 'HTTP: no such route; also no inbound endpoint with that id (HTTP or `optout inbound remove`)' },
  OPTOUT_ERR_METHOD_NOT_ALLOWED: { exit: 1, http: 405, description: 'HTTP: the route exists but not with this method; `Allow` lists its methods' },
  OPTOUT_ERR_HEADERS_TOO_LARGE: { exit: 1, http: 431, description: 'HTTP: the request\'s headers are larger than the server accepts (16 KiB)' },
  OPTOUT_ERR_INBOUND_UNAUTHENTICATED: { exit: 1, http: 401, description: 'HTTP: an ESP webhook delivery is unsigned, its signature, basic auth or certificate does not verify, or its timestamp is stale' },
  OPTOUT_ERR_INBOUND_PAYLOAD: { exit: 1, http: 400, description: 'HTTP: an ESP webhook body is not what the provider sends (not JSON, a missing event id or field); names the event' },
  OPTOUT_ERR_BAD_REQUEST: { exit: 1, http: 400, description: 'HTTP: a malformed request' },
  OPTOUT_ERR_LINK_INVALID: { exit: 2, http: 404, description: 'an unsubscribe link\'s token is unknown, changed, or made with a retired key: the same answer for each' },
  OPTOUT_ERR_LINK_UNDO: { exit: 2, http: 409, description: 'an unsubscribe can no longer be undone: its window has passed, or the suppression changed since' },
  OPTOUT_ERR_LINKS_NOT_CONFIGURED: { exit: 2, http: 503, description: 'unsubscribe links have no base URL yet: `optout links config --base-url <url>`, or pass one' },
} as const satisfies Record<string, ErrorSpec>;

/** A code's row in {@link ERROR_TABLE}. */
export interface ErrorSpec {
  readonly exit: 1 | 2 | 3;
  readonly http: number;
  readonly description: string;
}

export type OptoutErrorCode = keyof typeof ERROR_TABLE;

/** Every code with its description. */
export const ERROR_CODES: Readonly<Record<OptoutErrorCode, string>> = Object.freeze(Object.fromEntries(
  Object.entries(ERROR_TABLE).map(([code, spec]) => [code, spec.description])) as Record<OptoutErrorCode, string>);

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
  return typeof code === 'string' && Object.hasOwn(ERROR_TABLE, code);
}

/** CLI exit status for an error (see {@link ERROR_TABLE}); 1 for anything that is not an OptoutError. */
export function exitCodeFor(err: unknown): 1 | 2 | 3 {
  return isOptoutError(err) ? ERROR_TABLE[err.code].exit : 1;
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
