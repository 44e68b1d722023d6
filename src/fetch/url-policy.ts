/**
 * Validation of the URL a sync fetches, before any connection: when a sync is added, before each
 * fetch and for every redirect. Names cannot be judged without resolving them, so the address
 * check happens again at connect time (see fetch-agent.ts); this module refuses what is wrong
 * whatever DNS says: another scheme, credentials, a literal address that is not public, and
 * names that only ever mean a local machine.
 */
import { isIP } from 'node:net';
import { OptoutError, describeValue } from '../errors.js';
import { isPublicAddress } from './address-policy.js';

/** Decides whether a sync may connect to `address` (IPv4, or IPv6 without brackets) on `port`. */
export type AddressPredicate = (address: string, port: number) => boolean;

export interface AddressPolicyOptions {
  /**
   * Allows every host and address: loopback, private networks, local names. For tests and for
   * lists served inside a trusted network.
   * @default false
   */
  allowPrivate?: boolean;
  /**
   * Replaces the address check (not the name check). Called with every address a URL holds
   * literally or its name resolves to, before connecting.
   * @default public unicast addresses only (`isPublicAddress`)
   */
  allowAddress?: AddressPredicate;
}

export interface AddressPolicy {
  readonly allowPrivate: boolean;
  readonly allowAddress: AddressPredicate;
}

const allowAll: AddressPredicate = () => true;
const publicOnly: AddressPredicate = (address) => isPublicAddress(address);

export function normalizeAddressPolicy(o: AddressPolicyOptions = {}): AddressPolicy {
  if (o.allowPrivate !== undefined && typeof o.allowPrivate !== 'boolean') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`allowPrivate\` to be a boolean, got ${describeValue(o.allowPrivate)}`);
  }
  if (o.allowAddress !== undefined && typeof o.allowAddress !== 'function') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`allowAddress\` to be a function, got ${describeValue(o.allowAddress)}`);
  }
  if (o.allowPrivate === true && o.allowAddress !== undefined) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', 'Expected one of `allowPrivate` and `allowAddress`, got both');
  }
  const allowPrivate = o.allowPrivate === true;
  return { allowPrivate, allowAddress: allowPrivate ? allowAll : o.allowAddress ?? publicOnly };
}

/**
 * Names that reach the machine itself, its link or a cloud metadata service, whatever a
 * resolver answers: `.localhost` (RFC 6761), `.local` (mDNS), `.internal` (ICANN's private-use
 * name, home of `metadata.google.internal` and `*.ec2.internal`) and `.home.arpa` (RFC 8375).
 */
const LOCAL_SUFFIXES = ['localhost', 'local', 'internal', 'home.arpa'];

/** Why a host name is refused, or null. `name` is lower case (as URL parsing leaves it). */
function refusedName(name: string): string | null {
  const bare = name.replace(/\.+$/, '');
  for (const suffix of LOCAL_SUFFIXES) {
    if (bare === suffix || bare.endsWith(`.${suffix}`)) return `a local name (.${suffix})`;
  }
  // One label resolves through the machine's search domains, i.e. inside its own network
  // (`metadata`, `instance-data`, `intranet`).
  if (!bare.includes('.')) return 'a single-label name';
  return null;
}

/** The default port of a URL's scheme when it names none. */
export function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** The URL as messages show it: origin and path; the query may hold a token, so it is elided. */
export function redactUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

function refuse(url: URL | string, why: string): OptoutError {
  const shown = typeof url === 'string' ? url : redactUrl(url);
  return new OptoutError('OPTOUT_ERR_URL_REFUSED', `Refused to sync from ${shown}: ${why}`);
}

/**
 * Checks a sync URL and returns it parsed (without its fragment, which is never sent).
 *
 * @throws OptoutError `OPTOUT_ERR_INVALID_OPTION` when `url` is not a URL;
 *   `OPTOUT_ERR_URL_REFUSED` when its scheme is not http or https, it holds a user name or
 *   password, or (unless `allowPrivate`) its host is a refused literal address or a local name.
 */
export function validateSyncUrl(url: string | URL, options: AddressPolicyOptions = {}): URL {
  return checkSyncUrl(url, normalizeAddressPolicy(options));
}

/** {@link validateSyncUrl} with a normalized policy. */
export function checkSyncUrl(url: string | URL, policy: AddressPolicy): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION',
      `Expected \`url\` to be an absolute http or https URL, got ${describeValue(url instanceof URL ? url.href : url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw refuse(`a ${parsed.protocol} URL`, 'only http and https are allowed');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    // Sync records and logs keep the URL: a password in it would be kept too.
    throw refuse(`${parsed.protocol}//…@${parsed.host}`, 'the URL holds credentials');
  }
  parsed.hash = '';
  if (policy.allowPrivate) return parsed;
  const host = parsed.hostname.replace(/^\[(.*)\]$/s, '$1');
  if (isIP(host) !== 0) {
    if (!policy.allowAddress(host, portOf(parsed))) throw refuse(parsed, `${host} is not a public address`);
    return parsed;
  }
  const why = refusedName(host);
  if (why !== null) throw refuse(parsed, `${host} is ${why}`);
  return parsed;
}
