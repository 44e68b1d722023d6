/**
 * Inbound endpoints: one per provider account (and unit) that posts bounces and complaints to
 * optout, kept in the ledger as records of kind `inbound` under a random id, the last segment of
 * `POST /v1/inbound/<id>`. Each holds what its provider's authenticity check needs; a listing
 * never shows a secret.
 */
import { X509Certificate, createHash, createPublicKey, randomBytes } from 'node:crypto';
import { OptoutError, describeValue } from '../errors.js';
import { normalizeUnit } from '../options.js';
import { getLinkSettings, normalizeBaseUrl } from '../links/keys.js';
import { ACCOUNT_WIDE, type Ledger } from '../store/store.js';
import { PROVIDERS, type ProviderName } from './provider.js';

/** An endpoint as stored. Only the fields of its provider are set. */
export interface InboundEndpoint {
  id: string;
  provider: ProviderName;
  /** The unit its events suppress in; null for account-wide. */
  unit: string | null;
  createdAt: string;
  createdBy: string;
  /** SendGrid: the verification key, base64 DER (SubjectPublicKeyInfo) as SendGrid shows it. */
  publicKey?: string;
  /** Mailgun: the HTTP webhook signing key. */
  signingKey?: string;
  /** Postmark: the basic-auth user, and the SHA-256 (hex) of `user:password`. */
  basicUser?: string;
  basicHash?: string;
  /** SNS: a pinned signing certificate (PEM); without it, the one at SigningCertURL. */
  snsCert?: string;
  /** SNS: the only topic whose messages are taken; without it, any topic's. */
  topicArn?: string;
}

/** An endpoint as listed: secrets masked. */
export interface EndpointSummary {
  id: string;
  provider: ProviderName;
  unit: string | null;
  path: string;
  createdAt: string;
  /** What authenticates it, masked: `signing key ab…(32 chars)`, `basic auth user`, ... */
  credential: string;
}

export interface AddEndpointOptions {
  provider: string;
  unit?: string | undefined;
  /** SendGrid: base64 DER public key, or a PEM. */
  publicKey?: string | undefined;
  /** Mailgun. */
  signingKey?: string | undefined;
  /** Postmark: `user:password`. @default random credentials, returned once */
  basicAuth?: string | undefined;
  /** SNS: a PEM certificate to pin. */
  snsCert?: string | undefined;
  /** SNS: the only topic to take messages from (anyone can make SNS sign messages of their own topic). */
  topicArn?: string | undefined;
  actor?: string | undefined;
}

export interface AddedEndpoint {
  endpoint: EndpointSummary;
  /** Postmark credentials made up for it, shown once: put them in the webhook URL. */
  basicAuth?: string;
}

/** The API path an endpoint receives deliveries on. */
export function endpointPath(id: string): string {
  return `/v1/inbound/${id}`;
}

/**
 * What to paste into the provider: the server's public base URL (the one given, else the one
 * `optout links config --base-url` stored) and the path, with Postmark's credentials in it when
 * they were made up; `POST <path>` when no base URL is known.
 */
export async function endpointUrl(store: Pick<Ledger, 'getRecord'>, e: EndpointSummary, baseUrl: string | undefined, basicAuth: string | undefined): Promise<string> {
  const base = baseUrl === undefined ? (await getLinkSettings(store))?.baseUrl : normalizeBaseUrl(baseUrl);
  if (base === undefined) return `POST ${e.path}`;
  const url = new URL(base + e.path);
  if (basicAuth !== undefined) {
    const colon = basicAuth.indexOf(':');
    url.username = encodeURIComponent(basicAuth.slice(0, colon));
    url.password = encodeURIComponent(basicAuth.slice(colon + 1));
  }
  return url.href;
}

function invalid(message: string): OptoutError {
  return new OptoutError('OPTOUT_ERR_INVALID_OPTION', message);
}

const CREDENTIALS: Record<ProviderName, keyof AddEndpointOptions> = {
  sns: 'snsCert', sendgrid: 'publicKey', mailgun: 'signingKey', postmark: 'basicAuth',
};
const FLAGS: Record<string, string> = { snsCert: '--sns-cert', publicKey: '--public-key', signingKey: '--signing-key', basicAuth: '--basic-auth', topicArn: '--topic-arn' };

/** The SendGrid key as SendGrid shows it (base64 DER), or a PEM; must be an EC P-256 public key. */
function sendgridKey(value: string): string {
  let der: Buffer;
  try {
    const key = value.includes('BEGIN PUBLIC KEY') ? createPublicKey(value) : createPublicKey({ key: Buffer.from(value.trim(), 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not P-256');
    der = key.export({ format: 'der', type: 'spki' });
  } catch {
    throw invalid('Expected `--public-key` to be the SendGrid verification key (base64, an ECDSA P-256 public key), got something else');
  }
  return der.toString('base64');
}

function pinnedCertificate(pem: string): string {
  try {
    return new X509Certificate(pem).toString();
  } catch {
    throw invalid('Expected `--sns-cert` to be a PEM certificate');
  }
}

export function basicHash(user: string, password: string): string {
  return createHash('sha256').update(`${user}:${password}`, 'utf8').digest('hex');
}

/** Creates an endpoint for `provider`, with its audit record. */
export async function addEndpoint(store: Pick<Ledger, 'audit' | 'putRecord'>, o: AddEndpointOptions): Promise<AddedEndpoint> {
  const provider = o.provider as ProviderName;
  if (!(PROVIDERS as readonly string[]).includes(provider)) {
    throw invalid(`Expected a provider among ${PROVIDERS.join(', ')}, got ${describeValue(o.provider)}`);
  }
  const scope = normalizeUnit(o.unit);
  const wanted = CREDENTIALS[provider];
  for (const [name, flag] of Object.entries(FLAGS)) {
    const applies = name === wanted || (name === 'topicArn' && provider === 'sns');
    if (!applies && o[name as keyof AddEndpointOptions] !== undefined) throw invalid(`${flag} does not apply to ${provider}`);
  }
  const actor = o.actor ?? 'cli';
  const endpoint: InboundEndpoint = {
    id: randomBytes(16).toString('base64url'), provider, unit: scope === ACCOUNT_WIDE ? null : scope, createdAt: new Date().toISOString(), createdBy: actor,
  };
  let madeUp: string | undefined;
  switch (provider) {
    case 'sendgrid':
      if (o.publicKey === undefined) throw invalid('SendGrid needs `--public-key`: the verification key of its signed Event Webhook');
      endpoint.publicKey = sendgridKey(o.publicKey);
      break;
    case 'mailgun':
      if (o.signingKey === undefined || o.signingKey.trim().length < 8) throw invalid('Mailgun needs `--signing-key`: its HTTP webhook signing key');
      endpoint.signingKey = o.signingKey.trim();
      break;
    case 'postmark': {
      const given = o.basicAuth ?? (madeUp = `optout:${randomBytes(24).toString('base64url')}`);
      const colon = given.indexOf(':');
      const user = given.slice(0, colon);
      const password = given.slice(colon + 1);
      if (colon < 1 || password.length < 12 || /[\s@/]/.test(user)) {
        throw invalid('Expected `--basic-auth` to be user:password, a user without spaces, @ or /, a password of 12 characters or more');
      }
      endpoint.basicUser = user;
      endpoint.basicHash = basicHash(user, password);
      break;
    }
    case 'sns':
      if (o.snsCert !== undefined) endpoint.snsCert = pinnedCertificate(o.snsCert);
      if (o.topicArn !== undefined) {
        if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$/.test(o.topicArn)) {
          throw invalid(`Expected \`--topic-arn\` to be an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>), got ${describeValue(o.topicArn)}`);
        }
        endpoint.topicArn = o.topicArn;
      }
      break;
  }
  await store.putRecord('inbound', endpoint.id, endpoint, store.audit({
    actor, action: 'inbound.add', key: null, job: null, unit: endpoint.unit, details: { id: endpoint.id, provider },
  }));
  return { endpoint: summarize(endpoint), ...(madeUp === undefined ? {} : { basicAuth: madeUp }) };
}

function mask(secret: string): string {
  return `${secret.slice(0, 4)}…(${secret.length} chars)`;
}

export function summarize(e: InboundEndpoint): EndpointSummary {
  let credential: string;
  switch (e.provider) {
    case 'sendgrid': credential = `public key sha256:${createHash('sha256').update(e.publicKey ?? '').digest('hex').slice(0, 16)}`; break;
    case 'mailgun': credential = `signing key ${mask(e.signingKey ?? '')}`; break;
    case 'postmark': credential = `basic auth user ${e.basicUser ?? '?'}`; break;
    case 'sns':
      credential = `${e.snsCert === undefined ? 'certificate from SigningCertURL (sns.<region>.amazonaws.com)' : 'pinned certificate'}, ${e.topicArn ?? 'any topic'}`;
      break;
  }
  return { id: e.id, provider: e.provider, unit: e.unit, path: endpointPath(e.id), createdAt: e.createdAt, credential };
}

export async function listEndpoints(store: Pick<Ledger, 'listRecords'>): Promise<EndpointSummary[]> {
  return (await store.listRecords<InboundEndpoint>('inbound')).map((r) => summarize(r.value));
}

export async function getEndpoint(store: Pick<Ledger, 'getRecord'>, id: string): Promise<InboundEndpoint | undefined> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
  return store.getRecord<InboundEndpoint>('inbound', id);
}

/** Removes an endpoint: its provider's next deliveries get a 404. */
export async function removeEndpoint(store: Pick<Ledger, 'audit' | 'getRecord' | 'deleteRecord'>, id: string, actor = 'cli'): Promise<EndpointSummary> {
  const found = await getEndpoint(store, id);
  if (found === undefined) throw new OptoutError('OPTOUT_ERR_NOT_FOUND', `No inbound endpoint has the id ${describeValue(id)}`);
  await store.deleteRecord('inbound', id, store.audit({
    actor, action: 'inbound.remove', key: null, job: null, unit: found.unit, details: { id, provider: found.provider },
  }));
  return summarize(found);
}
