/** Inbound endpoints as records: what each provider needs, masked listings, audited changes. */
import { describe, expect, it } from 'vitest';
import { addEndpoint, endpointPath, endpointUrl, getEndpoint, listEndpoints, removeEndpoint } from '../../src/inbound/endpoints.js';
import { setLinkBaseUrl } from '../../src/links/keys.js';
import type { AuditRecord } from '../../src/store/audit.js';
import { MemoryStore } from '../../src/store/memory/memory-store.js';
import { failureCode } from '../helpers.js';
import { sendgridKeys, testCertificate } from './signing.js';

async function audits(store: MemoryStore): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of store.auditRecords({ fromId: '0' })) out.push(r);
  return out;
}

describe('inbound endpoints', () => {
  it('are added with a random id, listed without their secrets, and removed, each change audited', async () => {
    const store = new MemoryStore();
    const signingKey = 'key-0123456789abcdef0123456789abcdef';
    const mg = await addEndpoint(store, { provider: 'mailgun', unit: 'emea', signingKey });
    const pm = await addEndpoint(store, { provider: 'postmark' });
    const sg = await addEndpoint(store, { provider: 'sendgrid', publicKey: sendgridKeys().publicKey });
    const sns = await addEndpoint(store, { provider: 'sns', snsCert: testCertificate().pem });
    expect(mg.endpoint).toMatchObject({ provider: 'mailgun', unit: 'emea', path: endpointPath(mg.endpoint.id) });
    expect(mg.endpoint.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(pm.basicAuth).toMatch(/^optout:[A-Za-z0-9_-]{32}$/);
    const listed = JSON.stringify(await listEndpoints(store));
    expect(listed).not.toContain(signingKey);
    expect(listed).not.toContain((pm.basicAuth as string).split(':')[1]);
    expect((await listEndpoints(store)).map((e) => e.provider).sort()).toEqual(['mailgun', 'postmark', 'sendgrid', 'sns']);
    expect((await getEndpoint(store, pm.endpoint.id))?.basicHash).toMatch(/^[0-9a-f]{64}$/);
    await removeEndpoint(store, sg.endpoint.id);
    expect(await getEndpoint(store, sg.endpoint.id)).toBeUndefined();
    expect(await failureCode(() => removeEndpoint(store, sg.endpoint.id))).toBe('OPTOUT_ERR_NOT_FOUND');
    expect((await audits(store)).map((r) => r.action)).toEqual(['inbound.add', 'inbound.add', 'inbound.add', 'inbound.add', 'inbound.remove']);
    expect(sns.endpoint.credential).toBe('pinned certificate, any topic');
  });

  it('print the URL to paste: the base URL given, else the one links are configured with, else the path', async () => {
    const store = new MemoryStore();
    const { endpoint, basicAuth } = await addEndpoint(store, { provider: 'postmark', basicAuth: 'hooks:a-long-enough-password' });
    expect(await endpointUrl(store, endpoint, undefined, undefined)).toBe(`POST /v1/inbound/${endpoint.id}`);
    await setLinkBaseUrl(store, 'https://mail.example.com/optout/');
    expect(await endpointUrl(store, endpoint, undefined, undefined)).toBe(`https://mail.example.com/optout/v1/inbound/${endpoint.id}`);
    expect(await endpointUrl(store, endpoint, 'https://hooks.example.com', 'hooks:a-long-enough-password'))
      .toBe(`https://hooks:a-long-enough-password@hooks.example.com/v1/inbound/${endpoint.id}`);
    expect(basicAuth).toBeUndefined();
    expect(await failureCode(() => endpointUrl(store, endpoint, 'ftp://x.example.com', undefined))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });

  it.each([
    [{ provider: 'ses' }],
    [{ provider: 'sendgrid' }],
    [{ provider: 'sendgrid', publicKey: 'bm90IGEga2V5' }],
    [{ provider: 'mailgun' }],
    [{ provider: 'mailgun', signingKey: 'key', unit: 'emea' }],
    [{ provider: 'mailgun', signingKey: 'key-0123456789abcdef', unit: 'not a unit' }],
    [{ provider: 'mailgun', signingKey: 'key-0123456789abcdef', publicKey: 'x' }],
    [{ provider: 'postmark', basicAuth: 'nopassword' }],
    [{ provider: 'postmark', basicAuth: 'user:short' }],
    [{ provider: 'sns', snsCert: 'not a certificate' }],
  ])('refuses %j with OPTOUT_ERR_INVALID_OPTION, storing nothing', async (o) => {
    const store = new MemoryStore();
    expect(await failureCode(() => addEndpoint(store, o))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await listEndpoints(store)).toEqual([]);
  });
});
