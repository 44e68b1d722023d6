/**
 * Webhook deliveries signed as SendGrid and Mailgun sign them, for the inbound bench and the
 * tests (test/inbound/signing.ts adds SNS and Postmark).
 */
import { createHmac, createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';

/** A SendGrid signing key pair; the public key as SendGrid shows it (base64 DER). */
export function sendgridKeys(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
}

/** The two headers of a signed SendGrid delivery of `body`: ECDSA over the timestamp's text and the body. */
export function sendgridHeaders(privateKey: KeyObject, body: string | Buffer, at = new Date()): Record<string, string> {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const signature = createSign('sha256').update(Buffer.concat([Buffer.from(timestamp), Buffer.from(body)])).sign(privateKey, 'base64');
  return {
    'x-twilio-email-event-webhook-signature': signature,
    'x-twilio-email-event-webhook-timestamp': timestamp,
    'content-type': 'application/json',
  };
}

/** A Mailgun webhook body, signed with `signingKey`: HMAC-SHA256 of timestamp and token. */
export function mailgunBody(signingKey: string, eventData: Record<string, unknown>, at = new Date()): Record<string, unknown> {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const token = randomUUID().replace(/-/g, '');
  const signature = createHmac('sha256', signingKey).update(timestamp + token).digest('hex');
  return { signature: { timestamp, token, signature }, 'event-data': eventData };
}
