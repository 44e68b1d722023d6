/**
 * The undici `Agent` every sync fetch goes through. Its connector resolves the host name itself,
 * checks every address against the address policy, and then lets the socket connect only to
 * those checked addresses (a `lookup` that answers from the checked list). The address judged
 * is therefore the address connected to, for every connection, redirects included: a name that
 * resolved to a public address when the sync was added and to 127.0.0.1 now (DNS rebinding) is
 * refused now, before any packet is sent. The socket's peer address is checked once more when
 * the connection is up.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import type { Agent, buildConnector } from 'undici';
import { OptoutError, describeValue } from '../errors.js';
import { loadOnUse } from '../load-on-use.js';
import { normalizeAddressPolicy, type AddressPolicy, type AddressPolicyOptions } from './url-policy.js';

/** Loaded by the first agent: most processes never fetch a URL. */
const loadUndici = loadOnUse<typeof import('undici')>('undici');

export interface ResolvedAddress {
  address: string;
  /** 4 or 6. */
  family: number;
}

/** Resolves a host name to every address it has. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface SyncAgentOptions extends AddressPolicyOptions {
  /**
   * Milliseconds to resolve the host name and open the connection (TCP and TLS) together.
   * @default 10000
   */
  connectTimeoutMs?: number;
  /**
   * Resolves host names (not called for literal addresses).
   * @default `dns.lookup` with `all: true` (the system resolver, /etc/hosts included)
   */
  resolve?: Resolver;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

const defaultResolve: Resolver = (hostname) => dnsLookup(hostname, { all: true });

/** The policy of each agent made here; fetchSource accepts no other dispatcher. */
const policies = new WeakMap<object, AddressPolicy>();

/** The address policy of an agent from {@link createSyncAgent}, or undefined for any other object. */
export function policyOf(dispatcher: unknown): AddressPolicy | undefined {
  return typeof dispatcher === 'object' && dispatcher !== null ? policies.get(dispatcher) : undefined;
}

export function positiveMs(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`${name}\` to be an integer from 1 and up, got ${describeValue(value)}`);
  }
  return value;
}

function refused(hostname: string, address: string, port: number): OptoutError {
  const shown = hostname === address ? address : `${hostname} (${address})`;
  return new OptoutError('OPTOUT_ERR_URL_REFUSED', `Refused to connect to ${shown} port ${port}: not a public address`);
}

/** Every address of `hostname`, all allowed, or a refusal naming the first one that is not. */
async function resolveChecked(hostname: string, port: number, policy: AddressPolicy, resolve: Resolver): Promise<ResolvedAddress[]> {
  const family = isIP(hostname);
  const addresses = family !== 0 ? [{ address: hostname, family }] : await resolve(hostname);
  if (addresses.length === 0) throw new OptoutError('OPTOUT_ERR_FETCH', `${hostname} resolved to no address`);
  // One refused address refuses the name: the socket could pick any of them.
  for (const { address } of addresses) {
    if (!policy.allowAddress(address, port)) throw refused(hostname, address, port);
  }
  return addresses;
}

/** A `lookup` for net/tls.connect that answers with the checked addresses only. */
function answerWith(addresses: ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    if (options.all === true) {
      callback(null, wanted);
      return;
    }
    const first = wanted[0];
    if (first === undefined) callback(Object.assign(new Error('No checked address of the requested family'), { code: 'ENOTFOUND' }), '', 0);
    else callback(null, first.address, first.family);
  };
}

function withDeadline<T>(work: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OptoutError('OPTOUT_ERR_FETCH_TIMEOUT', what())), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function guardedConnector(policy: AddressPolicy, timeoutMs: number, resolve: Resolver): buildConnector.connector {
  return (opts, callback) => {
    const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
    const started = Date.now();
    const checked = resolveChecked(opts.hostname, port, policy, resolve);
    withDeadline(checked, timeoutMs, () => `Resolving ${opts.hostname} took longer than ${timeoutMs} ms`).then((addresses) => {
      const connect = loadUndici().buildConnector({
        timeout: Math.max(1, timeoutMs - (Date.now() - started)),
        lookup: answerWith(addresses),
        autoSelectFamily: true,
      });
      connect(opts, (err, socket) => {
        if (err !== null) {
          callback(err, null);
          return;
        }
        const peer = socket.remoteAddress;
        if (peer === undefined || !policy.allowAddress(peer, port)) {
          socket.destroy();
          callback(refused(opts.hostname, peer ?? 'an unknown address', port), null);
          return;
        }
        callback(null, socket);
      });
    }, (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null));
  };
}

/**
 * An undici `Agent` that connects only to addresses the policy allows (public unicast ones by
 * default), checked at connect time. Pass it to `fetchSource` as `dispatcher` to reuse
 * connections across fetches; close it when done.
 */
export function createSyncAgent(options: SyncAgentOptions = {}): Agent {
  const policy = normalizeAddressPolicy(options);
  const timeoutMs = positiveMs('connectTimeoutMs', options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS);
  if (options.resolve !== undefined && typeof options.resolve !== 'function') {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`resolve\` to be a function, got ${describeValue(options.resolve)}`);
  }
  const agent = new (loadUndici().Agent)({ connect: guardedConnector(policy, timeoutMs, options.resolve ?? defaultResolve) });
  policies.set(agent, policy);
  return agent;
}
