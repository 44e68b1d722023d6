/**
 * Unsubscribe links as a library: the sealed token (round trip, every changed character refused,
 * unknown and retired keys), the base URL, and what a link does (unsubscribe, idempotent; undo,
 * for the same link and within its window only). A real LevelDB store in a temp folder.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addSuppression, openStore, readAudit, type OptoutStore } from '../../src/index.js';
import { getLinkSettings, listLinkKeys, rotateLinkKey, setLinkBaseUrl } from '../../src/links/keys.js';
import { resolveLink, undoByLink, undoTicket, unsubscribeByLink, unsubscribeLink, unsubscribeUrl } from '../../src/links/links.js';
import { failureCode, removeTempDirs, tempDir } from '../helpers.js';

let store: OptoutStore;
const BASE = 'https://mail.example.com/optout';
const DAY = 86_400_000;

beforeAll(async () => {
  store = await openStore(join(await tempDir('optout-links-'), 'db'));
  await setLinkBaseUrl(store.store, `${BASE}/`);
});

afterAll(async () => {
  await store?.close();
  await removeTempDirs();
});

const failure = (p: Promise<unknown>): Promise<unknown> => failureCode(() => p);

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

async function audit(email: string): Promise<Array<{ action: string; actor: string; unit: string | null; details: Record<string, unknown> }>> {
  const out = [];
  for await (const r of readAudit(store.store, { email })) out.push(r);
  return out;
}

describe('making a link', () => {
  it('seals the address, scope and campaign into a token that names no address in clear', async () => {
    const link = await unsubscribeLink(store.store, 'Jane.Doe+News@Example.org', { unit: 'emea', campaign: 'spring-sale' });
    expect(link.url).toBe(`${BASE}/u/${link.token}`);
    expect(link.headers).toEqual({ 'List-Unsubscribe': `<${link.url}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' });
    expect(link.token).toMatch(/^[A-Za-z0-9_-]+$/);
    const raw = Buffer.from(link.token, 'base64url').toString('latin1').toLowerCase();
    for (const clear of ['jane', 'example', 'emea', 'spring']) {
      expect(link.token.toLowerCase()).not.toContain(clear);
      expect(raw).not.toContain(clear);
    }
    const target = await resolveLink(store.store, link.token);
    expect(target).toMatchObject({ address: 'jane.doe+news@example.org', key: 'jane.doe@example.org', scope: 'emea', campaign: 'spring-sale', keyId: link.keyId });
    expect(Math.abs(Date.parse(target.issuedAt) - Date.now())).toBeLessThan(60_000);
    expect(await unsubscribeUrl(store.store, 'jane.doe@example.org')).toMatch(new RegExp(`^${BASE}/u/[A-Za-z0-9_-]+$`));
  });

  it('refuses a token with any character changed, at every position', async () => {
    const { token } = await unsubscribeLink(store.store, 'pat@example.org', { campaign: 'c1' });
    expect(token.length).toBeGreaterThan(60);
    for (let i = 0; i < token.length; i++) {
      const c = token[i] as string;
      // Two replacements a position: the next letter, and one that differs only in the low bits.
      for (const repl of [BASE64URL[(BASE64URL.indexOf(c) + 1) % 64], BASE64URL[BASE64URL.indexOf(c) ^ 1]]) {
        const changed = token.slice(0, i) + (repl as string) + token.slice(i + 1);
        expect(await failure(resolveLink(store.store, changed)), `position ${i}`).toBe('OPTOUT_ERR_LINK_INVALID');
      }
    }
    for (const bad of ['', 'x', token.slice(0, -1), `${token}A`, `${token.slice(0, 10)}!${token.slice(11)}`, 'A'.repeat(5000)]) {
      expect(await failure(resolveLink(store.store, bad))).toBe('OPTOUT_ERR_LINK_INVALID');
    }
  });

  it('refuses a token whose key the store does not have', async () => {
    const other = await openStore(join(await tempDir('optout-links-other-'), 'db'));
    try {
      const foreign = await unsubscribeLink(other.store, 'pat@example.org', { baseUrl: 'http://127.0.0.1:8080' });
      expect((await listLinkKeys(store.store)).some((k) => k.id === foreign.keyId)).toBe(false);
      expect(await failure(resolveLink(store.store, foreign.token))).toBe('OPTOUT_ERR_LINK_INVALID');
    } finally {
      await other.close();
    }
  });

  it('keeps tokens of a rotated key valid until it retires, then refuses them', async () => {
    const old = await unsubscribeLink(store.store, 'lee@example.org');
    const rotated = await rotateLinkKey(store.store, { retireAfterDays: 30 });
    expect(rotated.retiring.map((k) => k.id)).toContain(old.keyId);
    const fresh = await unsubscribeLink(store.store, 'lee@example.org');
    expect(fresh.keyId).toBe(rotated.key.id);
    const keys = await listLinkKeys(store.store);
    expect(keys.find((k) => k.current)?.id).toBe(rotated.key.id);
    expect(JSON.stringify(keys)).not.toContain('secret');

    const now = Date.now();
    expect((await resolveLink(store.store, old.token, now + 29 * DAY)).address).toBe('lee@example.org');
    expect(await failure(resolveLink(store.store, old.token, now + 31 * DAY))).toBe('OPTOUT_ERR_LINK_INVALID');
    expect((await resolveLink(store.store, fresh.token, now + 31 * DAY)).address).toBe('lee@example.org');
    // A second rotation does not push back the first one's retirement.
    await rotateLinkKey(store.store, { retireAfterDays: 365 });
    expect(await failure(resolveLink(store.store, old.token, now + 31 * DAY))).toBe('OPTOUT_ERR_LINK_INVALID');
    expect((await resolveLink(store.store, fresh.token, now + 300 * DAY)).address).toBe('lee@example.org');
  });

  it('needs a base URL: https, or http on loopback, without query or credentials', async () => {
    const other = await openStore(join(await tempDir('optout-links-nobase-'), 'db'));
    try {
      expect(await failure(unsubscribeLink(other.store, 'pat@example.org'))).toBe('OPTOUT_ERR_LINKS_NOT_CONFIGURED');
      for (const bad of ['http://mail.example.com', 'https://u:p@mail.example.com', 'https://mail.example.com/?a=1', 'ftp://x.org', 'not a url']) {
        expect(await failure(setLinkBaseUrl(other.store, bad)), bad).toBe('OPTOUT_ERR_INVALID_OPTION');
      }
      expect(await getLinkSettings(other.store)).toBeUndefined();
      expect((await setLinkBaseUrl(other.store, 'http://localhost:8080//')).baseUrl).toBe('http://localhost:8080');
    } finally {
      await other.close();
    }
  });

  it('refuses an invalid address, unit or campaign', async () => {
    expect(await failure(unsubscribeLink(store.store, 'not-an-address'))).toBe('OPTOUT_ERR_INVALID_EMAIL');
    expect(await failure(unsubscribeLink(store.store, 'pat@example.org', { unit: 'a b' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
    expect(await failure(unsubscribeLink(store.store, 'pat@example.org', { campaign: 'a\nb' }))).toBe('OPTOUT_ERR_INVALID_OPTION');
  });
});

describe('using a link', () => {
  it('suppresses in the link\'s scope only, reason unsubscribed, source one-click, audited with the campaign', async () => {
    const { token } = await unsubscribeLink(store.store, 'kim+promo@example.org', { unit: 'emea', campaign: 'autumn' });
    expect((await store.check({ email: 'kim@example.org', unit: 'emea' })).eligible).toBe(true);
    const done = await unsubscribeByLink(store.store, token);
    expect(done).toMatchObject({ written: true, target: { scope: 'emea' } });
    expect(done.job).toBeDefined();
    const d = await store.check({ email: 'kim@example.org', unit: 'emea' });
    expect(d).toMatchObject({ eligible: false, suppression: { scope: 'emea', reason: 'unsubscribed', source: 'one-click' } });
    expect((await store.check({ email: 'kim@example.org', unit: 'apac' })).eligible).toBe(true);
    expect((await store.check({ email: 'kim@example.org' })).eligible).toBe(true);
    const records = await audit('kim@example.org');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ action: 'add', actor: 'one-click', unit: 'emea', details: { campaign: 'autumn', reason: 'unsubscribed', source: 'one-click' } });
  });

  it('is idempotent: a repeat writes nothing, also over an entry an import made', async () => {
    const { token } = await unsubscribeLink(store.store, 'rep@example.org');
    await unsubscribeByLink(store.store, token);
    const jobs = (await store.store.listJobs()).length;
    expect(await Promise.all([unsubscribeByLink(store.store, token), unsubscribeByLink(store.store, token)])).toMatchObject([{ written: false }, { written: false }]);
    expect((await store.store.listJobs()).length).toBe(jobs);
    expect(await audit('rep@example.org')).toHaveLength(1);

    await addSuppression(store.store, { email: 'held@example.org', reason: 'bounced' });
    const held = await unsubscribeLink(store.store, 'held@example.org');
    // The first use holds the entry (a rollback of its owner keeps it), with no undo to offer.
    expect(await unsubscribeByLink(store.store, held.token)).toMatchObject({ written: true, job: undefined });
    expect(await unsubscribeByLink(store.store, held.token)).toMatchObject({ written: false });
    expect(await audit('held@example.org')).toHaveLength(2);
  });

  it('undoes with a ticket of the same link, within the window, once', async () => {
    const link = await unsubscribeLink(store.store, 'undo@example.org', { campaign: 'winter' });
    const other = await unsubscribeLink(store.store, 'undo@example.org');
    const { job } = await unsubscribeByLink(store.store, link.token);
    const ticket = await undoTicket(store.store, link.token, job as string);

    expect(await failure(undoByLink(store.store, other.token, ticket))).toBe('OPTOUT_ERR_LINK_UNDO');
    expect(await failure(undoByLink(store.store, link.token, ticket, { now: Date.now() + 6 * 60_000 }))).toBe('OPTOUT_ERR_LINK_UNDO');
    expect(await failure(undoByLink(store.store, link.token, `${ticket.slice(0, -2)}AA`))).toBe('OPTOUT_ERR_LINK_UNDO');
    // A token is no ticket.
    expect(await failure(undoByLink(store.store, link.token, link.token))).toBe('OPTOUT_ERR_LINK_UNDO');
    expect((await store.check({ email: 'undo@example.org' })).eligible).toBe(false);

    expect(await undoByLink(store.store, link.token, ticket)).toMatchObject({ removed: true });
    expect((await store.check({ email: 'undo@example.org' })).eligible).toBe(true);
    expect(await undoByLink(store.store, link.token, ticket)).toMatchObject({ removed: false });
    const records = await audit('undo@example.org');
    expect(records.map((r) => r.action)).toEqual(['add', 'remove']);
    expect(records[1]).toMatchObject({ actor: 'one-click', details: { why: 'undo', campaign: 'winter' } });

    // Unsubscribed again: the old ticket names the old job, and cannot undo the new entry.
    await unsubscribeByLink(store.store, link.token);
    expect(await failure(undoByLink(store.store, link.token, ticket))).toBe('OPTOUT_ERR_LINK_UNDO');
    expect((await store.check({ email: 'undo@example.org' })).eligible).toBe(false);
  });

  it('does not undo a suppression another job also holds', async () => {
    const link = await unsubscribeLink(store.store, 'both@example.org');
    const { job } = await unsubscribeByLink(store.store, link.token);
    const ticket = await undoTicket(store.store, link.token, job as string);
    await addSuppression(store.store, { email: 'both@example.org', reason: 'complaint' });
    expect(await failure(undoByLink(store.store, link.token, ticket))).toBe('OPTOUT_ERR_LINK_UNDO');
    expect((await store.check({ email: 'both@example.org' })).eligible).toBe(false);
    expect((await audit('both@example.org')).map((r) => r.action)).toEqual(['add', 'add']);
  });
});
