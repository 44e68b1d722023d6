/**
 * The sealed tokens of unsubscribe links: AES-256-GCM from `node:crypto`, so that a token can be
 * neither read (no address in clear in a URL, and URLs end up in logs) nor changed into another
 * valid one. Pure: keys come in, nothing is read or written here.
 *
 * Layout, then base64url without padding:
 *
 *     version (1) | key id (4) | IV (12) | ciphertext | tag (16)
 *
 * The version and key id are authenticated as associated data, together with a purpose label, so
 * that an undo ticket can never pass for an unsubscribe token or the reverse.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 1;
/** Bytes of a key id; in the store its id is these bytes in hex. */
export const KEY_ID_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES;
/** Longer tokens are refused unread: no payload this module seals comes near it. */
export const MAX_TOKEN_CHARS = 2048;
export const SECRET_BYTES = 32;

export type TokenPurpose = 'unsubscribe' | 'undo';
const PURPOSE_LABEL: Record<TokenPurpose, Buffer> = {
  unsubscribe: Buffer.from('optout/unsubscribe/1'),
  undo: Buffer.from('optout/undo/1'),
};

/** A token taken apart, not yet authenticated. */
export interface TokenParts {
  /** The key id in hex, as the store names the key. */
  keyId: string;
  bytes: Buffer;
}

function aad(purpose: TokenPurpose, header: Buffer): Buffer {
  return Buffer.concat([PURPOSE_LABEL[purpose], header]);
}

export function seal(keyId: string, secret: Buffer, purpose: TokenPurpose, payload: unknown): string {
  const header = Buffer.alloc(HEADER_BYTES);
  header[0] = VERSION;
  header.write(keyId, 1, 'hex');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(aad(purpose, header));
  const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([header, iv, body, cipher.getAuthTag()]).toString('base64url');
}

/**
 * The key id a token names, or undefined for anything that is not a token of this layout. Only
 * the canonical encoding is taken: base64url ignores the low bits of its last character, and a
 * changed character must never decode to the same bytes.
 */
export function tokenParts(token: string): TokenParts | undefined {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  const bytes = Buffer.from(token, 'base64url');
  if (bytes.length < HEADER_BYTES + IV_BYTES + TAG_BYTES + 1 || bytes[0] !== VERSION) return undefined;
  if (bytes.toString('base64url') !== token) return undefined;
  return { keyId: bytes.subarray(1, HEADER_BYTES).toString('hex'), bytes };
}

/**
 * The payload, or undefined when the token was not sealed with this secret for this purpose.
 * The work is the same whatever fails, so that a caller that opens an unknown key's token with a
 * stand-in secret answers in about the same time.
 */
export function open(parts: TokenParts, secret: Buffer, purpose: TokenPurpose): unknown {
  const { bytes } = parts;
  const iv = bytes.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(purpose, bytes.subarray(0, HEADER_BYTES)));
  decipher.setAuthTag(tag);
  const plain = decipher.update(bytes.subarray(HEADER_BYTES + IV_BYTES, bytes.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(plain.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
