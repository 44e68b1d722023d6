/**
 * Signs webhook deliveries the way each provider documents it, with throwaway keys made here:
 * an RSA key and a self-signed certificate for SNS (a few lines of DER: node:crypto makes keys,
 * not certificates); SendGrid (ECDSA P-256) and Mailgun (HMAC) come from the bench's module.
 */
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { snsStringToSign } from '../../src/inbound/sns.js';

export { mailgunBody, sendgridHeaders, sendgridKeys } from '../../bench/lib/inbound-signing.js';

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const bytes = [40 * a + b];
  for (const v of rest) {
    const chunk = [v & 0x7f];
    for (let x = v >> 7; x > 0; x >>= 7) chunk.unshift((x & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function utcTime(d: Date): Buffer {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return der(0x17, Buffer.from(s, 'ascii'));
}

const SHA256_WITH_RSA = der(0x30, oid('1.2.840.113549.1.1.11'), der(0x05));

/** An RSA key and a self-signed X.509 (v1) certificate of it, PEM, valid from `from` to `to`. */
export function testCertificate(from = new Date(Date.now() - 86_400_000), to = new Date(Date.now() + 10 * 365 * 86_400_000)): { key: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const name = der(0x30, der(0x31, der(0x30, oid('2.5.4.3'), der(0x0c, Buffer.from('sns test', 'utf8')))));
  const tbs = der(0x30,
    der(0x02, Buffer.from([0x01])),
    SHA256_WITH_RSA,
    name,
    der(0x30, utcTime(from), utcTime(to)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }));
  const signature = createSign('sha256').update(tbs).sign(privateKey);
  const cert = der(0x30, tbs, SHA256_WITH_RSA, der(0x03, Buffer.from([0]), signature));
  const lines = cert.toString('base64').match(/.{1,64}/g) ?? [];
  return { key: privateKey, pem: `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n` };
}

export interface SnsOptions {
  version?: '1' | '2';
  timestamp?: Date;
  messageId?: string;
  subject?: string;
  certUrl?: string;
}

/** An SNS message of `type`, signed with `key` as SNS signs it. */
export function snsMessage(key: KeyObject, type: string, fields: Record<string, string>, o: SnsOptions = {}): Record<string, string> {
  const version = o.version ?? '2';
  const message: Record<string, string> = {
    Type: type,
    MessageId: o.messageId ?? randomUUID(),
    TopicArn: 'arn:aws:sns:us-east-1:123456789012:ses-events',
    Timestamp: (o.timestamp ?? new Date()).toISOString(),
    SignatureVersion: version,
    SigningCertURL: o.certUrl ?? 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem',
    ...(o.subject === undefined ? {} : { Subject: o.subject }),
    ...fields,
  };
  message['Signature'] = createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256').update(snsStringToSign(message), 'utf8').sign(key, 'base64');
  return message;
}

/** An SES event as SNS carries it in a Notification's Message. */
export function sesBounce(bounceType: string, ...emails: string[]): string {
  return JSON.stringify({
    notificationType: 'Bounce',
    bounce: { bounceType, bounceSubType: 'General', bouncedRecipients: emails.map((emailAddress) => ({ emailAddress })), timestamp: new Date().toISOString() },
    mail: { messageId: randomUUID(), source: 'news@sender.example' },
  });
}

export function sesComplaint(...emails: string[]): string {
  return JSON.stringify({
    notificationType: 'Complaint',
    complaint: { complainedRecipients: emails.map((emailAddress) => ({ emailAddress })), complaintFeedbackType: 'abuse' },
    mail: { messageId: randomUUID() },
  });
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
