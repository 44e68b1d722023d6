/**
 * SNS through the library: the signing certificate taken only from sns.<region>.amazonaws.com
 * over https and cached, and subscriptions confirmed only at such a SubscribeURL. The fetches
 * are stand-ins that record what they were asked: nothing here reaches the network.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lookupSuppressions } from '../../src/manage/suppressions.js';
// Through the package's entry point, as an embedder takes webhooks in a server of its own.
import { addEndpoint, receiveInbound } from '../../src/index.js';
import { CertificateCache, snsStringToSign, snsUrl } from '../../src/inbound/sns.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';
import { failureCode } from '../helpers.js';
import { sesBounce, snsMessage, testCertificate } from './signing.js';

const cert = testCertificate();
let store: MemoryStore;
let id: string;
let fetched: string[];
let certs: CertificateCache;

beforeEach(async () => {
  store = new MemoryStore();
  id = (await addEndpoint(store, { provider: 'sns' })).endpoint.id;
  fetched = [];
  certs = new CertificateCache(async (url) => {
    fetched.push(url.href);
    return cert.pem;
  });
});

afterEach(async () => {
  await store.close();
});

const deliver = (message: Record<string, string>, fetchText?: (url: URL) => Promise<string>) =>
  receiveInbound(store, id, { headers: {}, body: Buffer.from(JSON.stringify(message)) }, { certificates: certs, ...(fetchText ? { fetchText } : {}) });

describe('the signing certificate', () => {
  it('is fetched from SigningCertURL once, then served from the cache', async () => {
    const url = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem';
    for (const to of ['one@example.org', 'two@example.org']) {
      const r = await deliver(snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', to) }, { certUrl: url }));
      expect(r.suppressed).toBe(1);
    }
    expect(fetched).toEqual([url]);
  });

  it.each([
    'http://sns.us-east-1.amazonaws.com/cert.pem',
    'https://sns.us-east-1.amazonaws.com.evil.example/cert.pem',
    'https://evil.example/sns.us-east-1.amazonaws.com/cert.pem',
    'https://sns.us-east-1.amazonaws.com:8443/cert.pem',
    'https://sns.us-east-1.amazonaws.com/cert.txt',
    'https://user@sns.us-east-1.amazonaws.com/cert.pem',
  ])('is never fetched from %s', async (url) => {
    const code = await failureCode(() => deliver(snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', 'x@example.org') }, { certUrl: url })));
    expect(code).toBe('OPTOUT_ERR_INBOUND_PAYLOAD');
    expect(fetched).toEqual([]);
  });

  it('that cannot be read refuses the delivery (401)', async () => {
    const failing = new CertificateCache(async () => {
      throw new Error('connection refused');
    });
    const msg = snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', 'x@example.org') });
    const code = await failureCode(() => receiveInbound(store, id, { headers: {}, body: Buffer.from(JSON.stringify(msg)) }, { certificates: failing }));
    expect(code).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
  });

  it('pinned on the endpoint, is used instead of SigningCertURL', async () => {
    const other = testCertificate();
    const pinned = (await addEndpoint(store, { provider: 'sns', snsCert: other.pem })).endpoint.id;
    const msg = snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', 'x@example.org') });
    const body = (m: Record<string, string>) => ({ headers: {}, body: Buffer.from(JSON.stringify(m)) });
    expect(await failureCode(() => receiveInbound(store, pinned, body(msg), { certificates: certs }))).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
    const signed = snsMessage(other.key, 'Notification', { Message: sesBounce('Permanent', 'x@example.org') });
    expect((await receiveInbound(store, pinned, body(signed), { certificates: certs })).suppressed).toBe(1);
    expect(fetched).toEqual([]);
  });

  it('that has expired refuses the delivery', async () => {
    const old = testCertificate(new Date('2020-01-01'), new Date('2021-01-01'));
    const pinned = (await addEndpoint(store, { provider: 'sns', snsCert: old.pem })).endpoint.id;
    const msg = snsMessage(old.key, 'Notification', { Message: sesBounce('Permanent', 'x@example.org') });
    expect(await failureCode(() => receiveInbound(store, pinned, { headers: {}, body: Buffer.from(JSON.stringify(msg)) }))).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
  });
});

describe('the topic', () => {
  it('pinned on the endpoint, refuses messages of any other topic, signed by SNS all the same (401)', async () => {
    const topicArn = 'arn:aws:sns:us-east-1:123456789012:ses-events';
    const pinned = (await addEndpoint(store, { provider: 'sns', topicArn })).endpoint.id;
    const deliverTo = (m: Record<string, string>) => receiveInbound(store, pinned, { headers: {}, body: Buffer.from(JSON.stringify(m)) }, { certificates: certs });
    expect((await deliverTo(snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', 'ours@example.org') }))).suppressed).toBe(1);
    const theirs = snsMessage(cert.key, 'Notification', { Message: sesBounce('Permanent', 'victim@example.org'), TopicArn: 'arn:aws:sns:us-east-1:999999999999:attacker' });
    expect(await failureCode(() => deliverTo(theirs))).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
    expect(await lookupSuppressions(store, 'victim@example.org')).toEqual([]);
    expect(await failureCode(() => addEndpoint(store, { provider: 'sns', topicArn: 'not-an-arn' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failureCode(() => addEndpoint(store, { provider: 'mailgun', signingKey: 'key-0123456789', topicArn }))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('subscriptions', () => {
  const confirmation = (subscribeUrl: string) => snsMessage(cert.key, 'SubscriptionConfirmation', {
    Message: 'You have chosen to subscribe to the topic', Token: '2336412f37fb687f5d51e6e2425', SubscribeURL: subscribeUrl,
  });

  it('are confirmed by fetching an SNS SubscribeURL', async () => {
    const url = 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:ses&Token=2336412f37fb687f5d51e6e2425';
    const confirmed: string[] = [];
    const r = await deliver(confirmation(url), async (u) => {
      confirmed.push(u.href);
      return '<ConfirmSubscriptionResponse/>';
    });
    expect(r).toMatchObject({ confirmed: true, suppressed: 0 });
    expect(confirmed).toEqual([new URL(url).href]);
  });

  it('are not confirmed at any other host, and not when the signature fails', async () => {
    const confirmed: string[] = [];
    const fetchText = async (u: URL) => {
      confirmed.push(u.href);
      return '';
    };
    expect(await failureCode(() => deliver(confirmation('https://sns.us-east-1.amazonaws.com.attacker.example/?Action=ConfirmSubscription'), fetchText)))
      .toBe('OPTOUT_ERR_INBOUND_PAYLOAD');
    const forged = { ...confirmation('https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=1'), Token: 'changed' };
    expect(await failureCode(() => deliver(forged, fetchText))).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
    expect(confirmed).toEqual([]);
  });
});

it('signs the fields AWS lists for each type, in order, Subject only when present', () => {
  const base = { Type: 'Notification', MessageId: 'm', Message: 'hello', Timestamp: 't', TopicArn: 'arn', Signature: 's', SigningCertURL: 'u' };
  expect(snsStringToSign(base)).toBe('Message\nhello\nMessageId\nm\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n');
  expect(snsStringToSign({ ...base, Subject: 'sub' })).toBe('Message\nhello\nMessageId\nm\nSubject\nsub\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n');
  expect(snsStringToSign({ ...base, Type: 'SubscriptionConfirmation', SubscribeURL: 'https://x', Token: 'tok' }))
    .toBe('Message\nhello\nMessageId\nm\nSubscribeURL\nhttps://x\nTimestamp\nt\nToken\ntok\nTopicArn\narn\nType\nSubscriptionConfirmation\n');
  expect(snsUrl('https://sns.us-gov-west-1.amazonaws.com/x.pem', 'SigningCertURL', true).hostname).toBe('sns.us-gov-west-1.amazonaws.com');
  expect(snsUrl('https://sns.cn-north-1.amazonaws.com.cn/x.pem', 'SigningCertURL', true).hostname).toBe('sns.cn-north-1.amazonaws.com.cn');
});
