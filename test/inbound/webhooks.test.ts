/**
 * ESP webhooks over HTTP (`app.inject()`), on a real LevelDB store: deliveries signed the way
 * each provider documents, accepted; a changed byte, a wrong key and a stale timestamp refused;
 * reasons, scopes, audit records, idempotence, metrics, and a 1,000-event SendGrid batch in
 * one write.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey, openStore, type OptoutStore } from '../../src/index.js';
import { addEndpoint } from '../../src/inbound/endpoints.js';
import { MAX_AGE_MS } from '../../src/inbound/provider.js';
import type { AuditRecord } from '../../src/store/audit.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { basicAuth, mailgunBody, sendgridHeaders, sendgridKeys, sesBounce, sesComplaint, snsMessage, testCertificate } from './signing.js';

let store: OptoutStore;
let app: OptoutServer;
let admin = '';
const sns = { id: '', cert: testCertificate() };
const sg = { id: '', keys: sendgridKeys() };
const mg = { id: '', key: 'key-3ax6xnjp29jd6fds4gc373sgvjxteol0' };
const pm = { id: '', user: 'postmark', password: 'correct horse battery staple' };

beforeAll(async () => {
  const dir = await tempDir('optout-inbound-');
  store = await openStore(join(dir, 'db'));
  admin = (await createKey(store.store, { scope: 'admin' })).key;
  sns.id = (await addEndpoint(store.store, { provider: 'sns', snsCert: sns.cert.pem })).endpoint.id;
  sg.id = (await addEndpoint(store.store, { provider: 'sendgrid', unit: 'emea', publicKey: sg.keys.publicKey })).endpoint.id;
  mg.id = (await addEndpoint(store.store, { provider: 'mailgun', signingKey: mg.key })).endpoint.id;
  pm.id = (await addEndpoint(store.store, { provider: 'postmark', basicAuth: `${pm.user}:${pm.password}` })).endpoint.id;
  app = createServer({ store, syncs: false });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await removeTempDirs();
});

async function post(id: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/v1/inbound/${id}`, payload: body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.statusCode, json: res.json() as Record<string, unknown> };
}

async function scopesOf(email: string): Promise<Array<{ scope: string; reason: string; source: string }>> {
  const res = await app.inject({ method: 'GET', url: `/v1/suppressions/${encodeURIComponent(email)}`, headers: { authorization: `Bearer ${admin}` } });
  return (res.json() as { suppressions: Array<{ scope: string; reason: string; source: string }> }).suppressions
    .map(({ scope, reason, source }) => ({ scope, reason, source }));
}

async function auditOf(email: string): Promise<AuditRecord[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/audit?email=${encodeURIComponent(email)}`, headers: { authorization: `Bearer ${admin}` } });
  return (res.json() as { records: AuditRecord[] }).records;
}

async function metric(provider: string, type: string, outcome: string): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${admin}` } });
  const line = res.body.split('\n').find((l) => l.startsWith(`optout_inbound_events_total{provider="${provider}",type="${type}",outcome="${outcome}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** A copy of `body` with one byte changed inside a JSON string, so that it still parses. */
function flipByte(body: string, near: string): string {
  const at = body.indexOf(near);
  return body.slice(0, at) + String.fromCharCode(body.charCodeAt(at) ^ 1) + body.slice(at + 1);
}

describe('Amazon SES through SNS', () => {
  const notification = (message: string, o: Parameters<typeof snsMessage>[3] = {}) =>
    JSON.stringify(snsMessage(sns.cert.key, 'Notification', { Message: message }, o));

  it.each(['1', '2'] as const)('SignatureVersion %s: a permanent bounce suppresses each recipient, reason bounced', async (version) => {
    const a = `bounce-v${version}-a@example.org`;
    const b = `bounce-v${version}-b@example.org`;
    const res = await post(sns.id, notification(sesBounce('Permanent', a, b), { version, subject: 'Amazon SES Email Event Notification' }), { 'content-type': 'text/plain; charset=UTF-8' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ events: 1, suppressed: 1, duplicates: 0 });
    expect(await scopesOf(a)).toEqual([{ scope: '*', reason: 'bounced', source: 'sns-webhook' }]);
    expect(await scopesOf(b)).toEqual([{ scope: '*', reason: 'bounced', source: 'sns-webhook' }]);
  });

  it('a complaint suppresses with reason complaint; a transient bounce and other types suppress nothing and are counted', async () => {
    expect((await post(sns.id, notification(sesComplaint('angry@example.org')))).json).toMatchObject({ suppressed: 1 });
    expect(await scopesOf('angry@example.org')).toEqual([{ scope: '*', reason: 'complaint', source: 'sns-webhook' }]);
    const before = await metric('sns', 'Bounce.Transient', 'ignored');
    const soft = await post(sns.id, notification(sesBounce('Transient', 'full-mailbox@example.org')));
    expect(soft.json).toMatchObject({ events: 1, suppressed: 0, ignored: 1 });
    expect(await scopesOf('full-mailbox@example.org')).toEqual([]);
    expect(await metric('sns', 'Bounce.Transient', 'ignored')).toBe(before + 1);
    const delivery = await post(sns.id, notification(JSON.stringify({ notificationType: 'Delivery', delivery: {} })));
    expect(delivery.json).toMatchObject({ ignored: 1 });
    expect(await metric('sns', 'Delivery', 'ignored')).toBe(1);
  });

  it('refuses a changed byte, another key, an unsigned message and a stale or future timestamp (401), and writes nothing', async () => {
    const good = notification(sesBounce('Permanent', 'tamper@example.org'));
    const changed = flipByte(good, 'tamper@');
    expect((await post(sns.id, changed)).status).toBe(401);
    const other = testCertificate();
    expect((await post(sns.id, JSON.stringify(snsMessage(other.key, 'Notification', { Message: sesBounce('Permanent', 'tamper@example.org') })))).json)
      .toMatchObject({ code: 'OPTOUT_ERR_INBOUND_UNAUTHENTICATED' });
    const unsigned = JSON.parse(good) as Record<string, string>;
    delete unsigned['Signature'];
    expect((await post(sns.id, JSON.stringify(unsigned))).status).toBe(401);
    const stale = notification(sesBounce('Permanent', 'tamper@example.org'), { timestamp: new Date(Date.now() - MAX_AGE_MS - 60_000) });
    expect((await post(sns.id, stale)).status).toBe(401);
    const future = notification(sesBounce('Permanent', 'tamper@example.org'), { timestamp: new Date(Date.now() + 6 * 60_000) });
    expect((await post(sns.id, future)).status).toBe(401);
    expect(await scopesOf('tamper@example.org')).toEqual([]);
    // The untouched message still passes: the refusals were about the changes.
    expect((await post(sns.id, good)).status).toBe(200);
  });

  it('takes a retry signed hours ago (SNS keeps the original timestamp), and a replay of it adds nothing', async () => {
    const late = notification(sesBounce('Permanent', 'late-retry@example.org'), { timestamp: new Date(Date.now() - 6 * 3600_000) });
    expect((await post(sns.id, late)).json).toMatchObject({ events: 1, suppressed: 1, duplicates: 0 });
    expect(await scopesOf('late-retry@example.org')).toEqual([{ scope: '*', reason: 'bounced', source: 'sns-webhook' }]);
    expect((await post(sns.id, late)).json).toMatchObject({ events: 1, suppressed: 0, duplicates: 1 });
  });

  it('answers 400 with { code, message } for a body that is not an SNS message', async () => {
    const res = await post(sns.id, '{"Type": "Notification"');
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ code: 'OPTOUT_ERR_INBOUND_PAYLOAD' });
    expect(typeof res.json['message']).toBe('string');
  });

  it('refuses to confirm a subscription whose SubscribeURL is not on sns.<region>.amazonaws.com', async () => {
    const msg = snsMessage(sns.cert.key, 'SubscriptionConfirmation', {
      Message: 'You have chosen to subscribe', Token: 'tok', SubscribeURL: 'https://attacker.example/confirm?x=1',
    });
    const res = await post(sns.id, JSON.stringify(msg));
    expect(res.status).toBe(400);
    expect(res.json['code']).toBe('OPTOUT_ERR_INBOUND_PAYLOAD');
  });
});

describe('SendGrid', () => {
  const event = (over: Record<string, unknown>) => ({ email: 'x@example.org', timestamp: Math.floor(Date.now() / 1000), sg_event_id: randomUUID(), sg_message_id: 'm1', ...over });

  it('maps each event type, suppresses in the endpoint\'s unit, and answers 200 for the rest', async () => {
    const body = JSON.stringify([
      event({ event: 'bounce', type: 'bounce', email: 'sg-bounce@example.org' }),
      event({ event: 'bounce', type: 'blocked', email: 'sg-blocked@example.org' }),
      event({ event: 'dropped', reason: 'Bounced Address', email: 'sg-dropped-bounce@example.org' }),
      event({ event: 'dropped', reason: 'Unsubscribed Address', email: 'sg-dropped-unsub@example.org' }),
      event({ event: 'dropped', reason: 'Invalid SMTPAPI header', email: 'sg-dropped-other@example.org' }),
      event({ event: 'spamreport', email: 'sg-spam@example.org' }),
      event({ event: 'unsubscribe', email: 'sg-unsub@example.org' }),
      event({ event: 'group_unsubscribe', email: 'sg-group@example.org', asm_group_id: 1 }),
      event({ event: 'delivered', email: 'sg-delivered@example.org' }),
      event({ event: 'open', email: 'sg-open@example.org' }),
    ]);
    const res = await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ events: 10, suppressed: 6, ignored: 4 });
    const expected: Record<string, string | null> = {
      'sg-bounce': 'bounced', 'sg-blocked': null, 'sg-dropped-bounce': 'bounced', 'sg-dropped-unsub': 'unsubscribed', 'sg-dropped-other': null,
      'sg-spam': 'complaint', 'sg-unsub': 'unsubscribed', 'sg-group': 'unsubscribed', 'sg-delivered': null, 'sg-open': null,
    };
    for (const [local, reason] of Object.entries(expected)) {
      expect(await scopesOf(`${local}@example.org`), local).toEqual(reason === null ? [] : [{ scope: 'emea', reason, source: 'sendgrid-webhook' }]);
    }
    expect(await metric('sendgrid', 'blocked', 'ignored')).toBe(1);
    expect(await metric('sendgrid', 'delivered', 'ignored')).toBe(1);
    expect(await metric('sendgrid', 'spamreport', 'suppressed')).toBe(1);
  });

  it('a retried delivery adds nothing and writes no second audit record', async () => {
    const body = JSON.stringify([event({ event: 'bounce', email: 'sg-retry@example.org' })]);
    const first = await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body));
    expect(first.json).toMatchObject({ suppressed: 1, duplicates: 0 });
    const generation = store.store.generation;
    const again = await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body));
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ suppressed: 0, duplicates: 1 });
    expect(store.store.generation).toBe(generation);
    const audit = await auditOf('sg-retry@example.org');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'add', unit: 'emea', actor: `inbound:${sg.id}`, details: { reason: 'bounced', source: 'sendgrid-webhook' } });
    expect(await metric('sendgrid', 'bounce', 'duplicate')).toBe(1);
  });

  it('refuses a changed byte, a wrong key, a missing signature and a stale timestamp (401)', async () => {
    const body = JSON.stringify([event({ event: 'bounce', email: 'sg-refused@example.org' })]);
    const headers = sendgridHeaders(sg.keys.privateKey, body);
    expect((await post(sg.id, flipByte(body, 'sg-refused'), headers)).status).toBe(401);
    expect((await post(sg.id, body, sendgridHeaders(sendgridKeys().privateKey, body))).status).toBe(401);
    expect((await post(sg.id, body)).json['code']).toBe('OPTOUT_ERR_INBOUND_UNAUTHENTICATED');
    // The timestamp is signed with the body: changing it alone breaks the signature ...
    expect((await post(sg.id, body, { ...headers, 'x-twilio-email-event-webhook-timestamp': String(Number(headers['x-twilio-email-event-webhook-timestamp']) - 1) })).status).toBe(401);
    // ... and a correctly signed old delivery is stale.
    expect((await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body, new Date(Date.now() - MAX_AGE_MS - 60_000)))).status).toBe(401);
    expect(await scopesOf('sg-refused@example.org')).toEqual([]);
  });

  it('answers 400 for a signed body that is not an array of events with ids', async () => {
    const notArray = JSON.stringify({ event: 'bounce' });
    expect((await post(sg.id, notArray, sendgridHeaders(sg.keys.privateKey, notArray))).json['code']).toBe('OPTOUT_ERR_INBOUND_PAYLOAD');
    const noId = JSON.stringify([{ event: 'bounce', email: 'a@example.org' }]);
    expect((await post(sg.id, noId, sendgridHeaders(sg.keys.privateKey, noId))).status).toBe(400);
  });

  it('writes a batch of 1,000 events in one write: every entry, every audit record, one generation', async () => {
    const events = Array.from({ length: 1000 }, (_, i) => event({ event: i % 2 === 0 ? 'bounce' : 'spamreport', email: `batch${i}@example.org` }));
    const body = JSON.stringify(events);
    const generation = store.store.generation;
    const entries = store.store.totalEntries();
    const since = store.store.audit({ actor: 'test', action: 'add', key: null, job: null, unit: null, details: {} }).id;
    const res = await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body));
    expect(res.json).toMatchObject({ events: 1000, suppressed: 1000 });
    expect(store.store.generation).toBe(generation + 1);
    expect(store.store.totalEntries()).toBe(entries + 1000);
    const written: AuditRecord[] = [];
    for await (const r of store.store.auditRecords({ fromId: since })) written.push(r);
    expect(written).toHaveLength(1000);
    expect(new Set(written.map((r) => r.key)).size).toBe(1000);
    expect(written.every((r) => r.action === 'add' && r.unit === 'emea' && r.actor === `inbound:${sg.id}`)).toBe(true);
    expect(await scopesOf('batch7@example.org')).toEqual([{ scope: 'emea', reason: 'complaint', source: 'sendgrid-webhook' }]);
    expect(await auditOf('batch998@example.org')).toHaveLength(1);
    const again = await post(sg.id, body, sendgridHeaders(sg.keys.privateKey, body));
    expect(again.json).toMatchObject({ suppressed: 0, duplicates: 1000 });
    expect(store.store.generation).toBe(generation + 1);
  });
});

describe('Mailgun', () => {
  const data = (over: Record<string, unknown>) => ({ id: randomUUID(), timestamp: Date.now() / 1000, recipient: 'x@example.org', ...over });

  it('suppresses a permanent failure, a complaint and an unsubscribe; a temporary failure is counted only', async () => {
    const cases: Array<[Record<string, unknown>, string | null]> = [
      [data({ event: 'failed', severity: 'permanent', recipient: 'mg-hard@example.org' }), 'bounced'],
      [data({ event: 'failed', severity: 'temporary', recipient: 'mg-soft@example.org' }), null],
      [data({ event: 'complained', recipient: 'mg-complaint@example.org' }), 'complaint'],
      [data({ event: 'unsubscribed', recipient: 'mg-unsub@example.org' }), 'unsubscribed'],
      [data({ event: 'delivered', recipient: 'mg-delivered@example.org' }), null],
    ];
    for (const [eventData, reason] of cases) {
      const res = await post(mg.id, JSON.stringify(mailgunBody(mg.key, eventData)));
      expect(res.status).toBe(200);
      expect(await scopesOf(eventData['recipient'] as string)).toEqual(reason === null ? [] : [{ scope: '*', reason, source: 'mailgun-webhook' }]);
    }
    expect(await metric('mailgun', 'failed.temporary', 'ignored')).toBe(1);
  });

  it('refuses a wrong signing key, a changed signature field, a missing signature and a stale timestamp (401)', async () => {
    const eventData = data({ event: 'complained', recipient: 'mg-refused@example.org' });
    expect((await post(mg.id, JSON.stringify(mailgunBody('another-signing-key', eventData)))).status).toBe(401);
    const body = mailgunBody(mg.key, eventData);
    const sig = body['signature'] as Record<string, string>;
    expect((await post(mg.id, JSON.stringify({ ...body, signature: { ...sig, token: `${sig['token']}x` } }))).status).toBe(401);
    expect((await post(mg.id, JSON.stringify({ 'event-data': eventData }))).status).toBe(401);
    expect((await post(mg.id, JSON.stringify(mailgunBody(mg.key, eventData, new Date(Date.now() - MAX_AGE_MS - 60_000))))).status).toBe(401);
    expect(await scopesOf('mg-refused@example.org')).toEqual([]);
  });

  it('is idempotent by the event id: a new signature on the same event adds nothing', async () => {
    const eventData = data({ event: 'unsubscribed', recipient: 'mg-twice@example.org' });
    expect((await post(mg.id, JSON.stringify(mailgunBody(mg.key, eventData)))).json).toMatchObject({ suppressed: 1 });
    expect((await post(mg.id, JSON.stringify(mailgunBody(mg.key, eventData)))).json).toMatchObject({ suppressed: 0, duplicates: 1 });
    expect(await auditOf('mg-twice@example.org')).toHaveLength(1);
  });
});

describe('Postmark', () => {
  const auth = { authorization: basicAuth(pm.user, pm.password) };

  it('suppresses a hard bounce, a spam complaint and a SubscriptionChange that suppresses sending', async () => {
    const cases: Array<[Record<string, unknown>, string, string | null]> = [
      [{ RecordType: 'Bounce', ID: 4323372036854775807, Type: 'HardBounce', Email: 'pm-hard@example.org', MessageID: randomUUID() }, 'pm-hard', 'bounced'],
      [{ RecordType: 'Bounce', ID: 4323372036854775, Type: 'SoftBounce', Email: 'pm-soft@example.org', MessageID: randomUUID() }, 'pm-soft', null],
      [{ RecordType: 'SpamComplaint', ID: 42, Type: 'SpamComplaint', Email: 'pm-spam@example.org', MessageID: randomUUID() }, 'pm-spam', 'complaint'],
      [{ RecordType: 'SubscriptionChange', MessageID: randomUUID(), Recipient: 'pm-change@example.org', SuppressSending: true, SuppressionReason: 'ManualSuppression', ChangedAt: new Date().toISOString() }, 'pm-change', 'unsubscribed'],
      [{ RecordType: 'SubscriptionChange', MessageID: randomUUID(), Recipient: 'pm-react@example.org', SuppressSending: false, ChangedAt: new Date().toISOString() }, 'pm-react', null],
    ];
    for (const [body, local, reason] of cases) {
      expect((await post(pm.id, JSON.stringify(body), auth)).status).toBe(200);
      expect(await scopesOf(`${local}@example.org`), local).toEqual(reason === null ? [] : [{ scope: '*', reason, source: 'postmark-webhook' }]);
    }
  });

  it('takes a body whatever its Content-Type says, or without one: the signature is over the bytes', async () => {
    for (const [i, type] of [['1', undefined], ['2', 'application/octet-stream'], ['3', 'text/plain; charset=utf-8']] as const) {
      const body = JSON.stringify({ RecordType: 'SpamComplaint', ID: 100 + Number(i), Email: `pm-type${i}@example.org`, MessageID: randomUUID() });
      const res = await app.inject({ method: 'POST', url: `/v1/inbound/${pm.id}`, payload: body, headers: { ...auth, ...(type === undefined ? {} : { 'content-type': type }) } });
      expect(res.statusCode, type ?? 'none').toBe(200);
      expect(await scopesOf(`pm-type${i}@example.org`)).toHaveLength(1);
    }
  });

  it('refuses missing or wrong basic auth (401), and a retried event adds nothing', async () => {
    const body = JSON.stringify({ RecordType: 'SpamComplaint', ID: 77, Email: 'pm-once@example.org', MessageID: randomUUID() });
    expect((await post(pm.id, body)).status).toBe(401);
    expect((await post(pm.id, body, { authorization: basicAuth(pm.user, `${pm.password}!`) })).status).toBe(401);
    expect(await scopesOf('pm-once@example.org')).toEqual([]);
    expect((await post(pm.id, body, auth)).json).toMatchObject({ suppressed: 1 });
    expect((await post(pm.id, body, auth)).json).toMatchObject({ duplicates: 1 });
    expect(await auditOf('pm-once@example.org')).toHaveLength(1);
  });
});

describe('endpoints over HTTP (admin key)', () => {
  const as = (key: string | undefined, method: 'POST' | 'GET' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }), headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });

  it('adds one that receives at once, lists it masked, removes it: its deliveries then get a 404', async () => {
    const signingKey = 'key-http-0123456789abcdef0123456789';
    expect((await as(undefined, 'POST', '/v1/inbound', { provider: 'mailgun', signingKey })).statusCode).toBe(401);
    const check = (await createKey(store.store, { scope: 'check' })).key;
    expect((await as(check, 'POST', '/v1/inbound', { provider: 'mailgun', signingKey })).statusCode).toBe(403);
    expect((await as(admin, 'POST', '/v1/inbound', { provider: 'mailgun' })).json()).toMatchObject({ code: 'OPTOUT_ERR_INVALID_OPTION' });
    const created = await as(admin, 'POST', '/v1/inbound', { provider: 'mailgun', unit: 'apac', signingKey });
    expect(created.statusCode).toBe(201);
    const { id, path } = created.json() as { id: string; path: string };
    expect(path).toBe(`/v1/inbound/${id}`);
    const body = JSON.stringify(mailgunBody(signingKey, { id: randomUUID(), event: 'complained', recipient: 'mg-http@example.org' }));
    expect((await post(id, body)).json).toMatchObject({ suppressed: 1 });
    expect(await scopesOf('mg-http@example.org')).toEqual([{ scope: 'apac', reason: 'complaint', source: 'mailgun-webhook' }]);
    const listed = await as(admin, 'GET', '/v1/inbound');
    expect(listed.body).not.toContain(signingKey);
    expect((listed.json() as { endpoints: Array<{ id: string }> }).endpoints.map((e) => e.id)).toContain(id);
    expect((await as(admin, 'DELETE', `/v1/inbound/${id}`)).statusCode).toBe(200);
    expect((await post(id, body)).status).toBe(404);
    expect((await as(admin, 'DELETE', `/v1/inbound/${id}`)).statusCode).toBe(404);
  });

  it('answers Postmark credentials it made up once', async () => {
    const created = (await as(admin, 'POST', '/v1/inbound', { provider: 'postmark' })).json() as { id: string; basicAuth: string };
    const [user, password] = created.basicAuth.split(':') as [string, string];
    const body = JSON.stringify({ RecordType: 'SpamComplaint', ID: 9, Email: 'pm-http@example.org', MessageID: randomUUID() });
    expect((await post(created.id, body, { authorization: basicAuth(user, password) })).json).toMatchObject({ suppressed: 1 });
    expect((await as(admin, 'GET', '/v1/inbound')).body).not.toContain(password);
  });
});

it('answers 404 for an unknown endpoint', async () => {
  const res = await post('AAAAAAAAAAAAAAAAAAAAAA', '[]');
  expect(res.status).toBe(404);
  expect(res.json['code']).toBe('OPTOUT_ERR_NOT_FOUND');
});
