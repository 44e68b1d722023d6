/**
 * Managing the list over HTTP: single suppressions, export, audit, jobs, and imports with their
 * confirmation, rejects and rollback. Requests through `app.inject()`, a real store, imports in
 * the inline pool.
 */
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey, openStore, type OptoutStore } from '../../src/index.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { injectCaller } from '../inline.js';

const pool = createInlinePool();
let store: OptoutStore;
let app: OptoutServer;
const keys = { admin: '', check: '', emea: '' };

beforeAll(async () => {
  const dir = await tempDir('optout-api-manage-');
  store = await openStore(join(dir, 'db'));
  keys.admin = (await createKey(store.store, { scope: 'admin' })).key;
  keys.check = (await createKey(store.store, { scope: 'check' })).key;
  keys.emea = (await createKey(store.store, { scope: 'check', unit: 'emea' })).key;
  app = createServer({ store, imports: { pool } });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await pool.destroy();
  await removeTempDirs();
});

const call = injectCaller(() => app);

const eligible = async (email: string, unit?: string): Promise<boolean> => {
  const q = new URLSearchParams({ email, ...(unit ? { unit } : {}) });
  return (await call('GET', `/v1/eligibility?${q.toString()}`, keys.admin)).json['eligible'] as boolean;
};

/** Polls a job until it leaves the given states (bounded). */
async function waitWhile(id: string, states: string[]): Promise<Record<string, unknown>> {
  for (let i = 0; i < 400; i++) {
    const job = (await call('GET', `/v1/imports/${id}`, keys.admin)).json;
    if (!states.includes(job['state'] as string)) return job;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`job ${id} stayed in ${states.join('/')}`);
}

describe('single suppressions over HTTP', () => {
  it('adds, reads and removes one address; removal needs an admin key and a reason', async () => {
    const enc = encodeURIComponent('Pat.Lee@Example.org');
    expect((await call('PUT', `/v1/suppressions/${enc}`, keys.check, { unit: 'emea' })).status).toBe(403);
    const put = await call('PUT', `/v1/suppressions/${enc}`, keys.admin, { unit: 'emea', reason: 'complaint', source: 'support desk' });
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ key: 'pat.lee@example.org', scope: 'emea', added: true });
    expect((await call('PUT', `/v1/suppressions/${enc}`, keys.admin, { unit: 'emea' })).status).toBe(200);
    expect(await eligible('pat.lee@example.org', 'emea')).toBe(false);
    expect(await eligible('pat.lee@example.org', 'apac')).toBe(true);

    const got = await call('GET', `/v1/suppressions/${enc}`, keys.check);
    expect(got.json['suppressions']).toEqual([expect.objectContaining({ scope: 'emea', reason: 'complaint', source: 'support desk' })]);
    expect((await call('GET', '/v1/suppressions/not-an-address', keys.check)).code).toBe('OPTOUT_ERR_INVALID_EMAIL');

    expect((await call('DELETE', `/v1/suppressions/${enc}?unit=emea`, keys.check, { why: 'x' })).status).toBe(403);
    expect((await call('DELETE', `/v1/suppressions/${enc}?unit=emea`, keys.admin)).code).toBe('OPTOUT_ERR_INVALID_OPTION');
    const del = await call('DELETE', `/v1/suppressions/${enc}?unit=emea`, keys.admin, { why: 'resubscribed in the preference centre' });
    expect(del.status).toBe(200);
    expect(await eligible('pat.lee@example.org', 'emea')).toBe(true);
    const again = await call('DELETE', `/v1/suppressions/${enc}?unit=emea&why=again`, keys.admin);
    expect(again.status, again.text).toBe(404);

    const audit = await call('GET', `/v1/audit?email=${enc}`, keys.admin);
    const records = audit.json['records'] as Array<{ action: string; actor: string }>;
    expect(records.map((r) => r.action)).toEqual(['add', 'add', 'remove']);
    expect(records[0]?.actor).toMatch(/^key:[0-9a-f]{16}$/);
    expect((await call('GET', '/v1/audit', keys.check)).status).toBe(403);
  });
});

describe('imports over HTTP', () => {
  const csv = 'Name,Email\nA,one@import.test\nB,two@import.test\nC,ONE@import.test\nD,not-an-address\n';

  it('analyses an upload, refuses a wrong count (409, still waiting), imports on the right one', async () => {
    const posted = await call('POST', '/v1/imports?unit=emea&source=crm-export', keys.admin, csv, { 'content-type': 'text/csv' });
    expect(posted.status).toBe(202);
    const id = posted.json['id'] as string;
    expect(posted.headers['location']).toBe(`/v1/imports/${id}`);
    const waiting = await waitWhile(id, ['analyzing']);
    expect(waiting).toMatchObject({ state: 'awaiting_confirmation', counts: { rows: 4, valid: 3, invalid: 1, unique: 2, duplicates: 1 } });
    expect(await eligible('one@import.test', 'emea')).toBe(true);

    const wrong = await call('POST', `/v1/imports/${id}/confirm`, keys.admin, { count: 3 });
    expect(wrong.status).toBe(409);
    expect(wrong.code).toBe('OPTOUT_ERR_NOT_CONFIRMED');
    expect((await call('GET', `/v1/imports/${id}`, keys.admin)).json['state']).toBe('awaiting_confirmation');

    const ok = await call('POST', `/v1/imports/${id}/confirm`, keys.admin, { count: 2 });
    expect(ok.status).toBe(200);
    const done = await waitWhile(id, ['awaiting_confirmation', 'importing']);
    expect(done).toMatchObject({ state: 'completed', counts: { added: 2, unique: 2 }, origin: { via: 'http' }, source: 'crm-export', scope: 'emea' });
    expect(await eligible('one@import.test', 'emea')).toBe(false);
    expect(await eligible('one@import.test')).toBe(true);

    const rejects = await call('GET', `/v1/imports/${id}/rejects`, keys.admin);
    expect(rejects.text).toBe('line,row,value,reason\n5,4,not-an-address,NO_AT_SIGN\n');
    expect((await call('POST', `/v1/imports/${id}/confirm`, keys.admin, { count: 2 })).code).toBe('OPTOUT_ERR_JOB_STATE');
  });

  it('takes reasonColumn: each row\'s entry shows its own reason; an unknown column fails the job with its code', async () => {
    const posted = await call('POST', '/v1/imports?yes=true&reason=manual&reasonColumn=Why', keys.admin,
      'email,why\nrc1@reasons.test,BOUNCE\nrc2@reasons.test,spam\nrc3@reasons.test,\n', { 'content-type': 'text/csv' });
    expect(posted.status).toBe(202);
    expect(await waitWhile(posted.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', reason: 'manual', counts: { added: 3 } });
    const reasons = [];
    for (const email of ['rc1@reasons.test', 'rc2@reasons.test', 'rc3@reasons.test']) {
      reasons.push(((await call('GET', `/v1/suppressions/${email}`, keys.admin)).json['suppressions'] as Array<{ reason: string }>)[0]?.reason);
    }
    expect(reasons).toEqual(['bounced', 'complaint', 'manual']);
    const missing = await call('POST', '/v1/imports?yes=true&reasonColumn=cause', keys.admin, 'email,why\nrc4@reasons.test,bounce\n', { 'content-type': 'text/csv' });
    expect(await waitWhile(missing.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'failed', error: { code: 'OPTOUT_ERR_COLUMN_NOT_FOUND' } });
  });

  it('takes the reading options of the import command: header, where, allRows, format, and keeps them for a resumed job', async () => {
    const headerless = await call('POST', '/v1/imports?yes=true&header=false', keys.admin, 'hl1@opts.test,a\nhl2@opts.test,b\n', { 'content-type': 'text/csv' });
    expect(await waitWhile(headerless.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', counts: { rows: 2, added: 2 } });
    expect(await eligible('hl1@opts.test')).toBe(false);

    const csv = 'email,status\nw1@opts.test,unsubscribed\nw2@opts.test,active\nw3@opts.test,bounced\n';
    const where = await call('POST', `/v1/imports?yes=true&where=${encodeURIComponent('status=unsubscribed,bounced')}`, keys.admin, csv, { 'content-type': 'text/csv' });
    expect(await waitWhile(where.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', counts: { rows: 3, skipped: 1, added: 2 } });
    expect(await eligible('w2@opts.test')).toBe(true);

    // A HubSpot contacts export: its own flag skips the subscribed rows, unless allRows.
    const hubspot = 'Record ID,First Name,Email,Unsubscribed from all email\n1,A,hs1@opts.test,true\n2,B,hs2@opts.test,false\n';
    const flagged = await call('POST', '/v1/imports?yes=true', keys.admin, hubspot, { 'content-type': 'text/csv' });
    expect(await waitWhile(flagged.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ counts: { skipped: 1, added: 1 } });
    const all = await call('POST', '/v1/imports?yes=true&allRows=true', keys.admin, hubspot, { 'content-type': 'text/csv' });
    expect(await waitWhile(all.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ counts: { skipped: 0, added: 1, alreadySuppressed: 1 } });

    const ndjson = await call('POST', '/v1/imports?yes=true&format=ndjson', keys.admin, '{"email":"nd1@opts.test"}\n{"email":"nd2@opts.test"}\n',
      { 'content-type': 'application/octet-stream' });
    expect(await waitWhile(ndjson.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', counts: { added: 2 } });
    const stored = await store.store.getJob(where.json['id'] as string);
    expect(stored?.kind === 'import' ? stored.fingerprint : undefined).toMatchObject({ where: 'status=unsubscribed,bounced' });

    for (const bad of ['header=yes', 'format=xml', 'allRows=1', 'where=x']) {
      expect((await call('POST', `/v1/imports?yes=true&${bad}`, keys.admin, csv, { 'content-type': 'text/csv' })).status).toBe(400);
    }
  });

  it('accepts a gzip body and yes=true; a rollback keeps what another job also holds', async () => {
    const first = await call('POST', '/v1/imports?yes=true', keys.admin, gzipSync('email\nr1@roll.test\nr2@roll.test\n'), { 'content-type': 'application/gzip' });
    expect(first.status).toBe(202);
    expect(await waitWhile(first.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', counts: { added: 2 } });
    // Content-Encoding: gzip on a CSV body: the pipeline recognises gzip by its bytes.
    const second = await call('POST', '/v1/imports?yes=true', keys.admin, gzipSync('email\nr3@roll.test\n'),
      { 'content-type': 'text/csv', 'content-encoding': 'gzip' });
    expect(second.status).toBe(202);
    expect(await waitWhile(second.json['id'] as string, ['analyzing', 'importing'])).toMatchObject({ state: 'completed', counts: { added: 1 } });
    const third = await call('POST', '/v1/imports?yes=true', keys.admin, 'email\nr2@roll.test\n', { 'content-type': 'text/csv' });
    await waitWhile(third.json['id'] as string, ['analyzing', 'importing']);

    const rb = await call('POST', `/v1/imports/${first.json['id'] as string}/rollback`, keys.admin);
    expect(rb.status).toBe(200);
    expect(rb.json).toMatchObject({ removed: 1, kept: 1 });
    expect(await eligible('r1@roll.test')).toBe(true);
    expect(await eligible('r2@roll.test')).toBe(false);
    expect((await call('GET', `/v1/imports/${first.json['id'] as string}`, keys.admin)).json['state']).toBe('rolled_back');
  });

  it('reports a broken CSV imported with yes=true as failed, keeping the rows before it', async () => {
    const broken = 'email\nbefore1@broken.test\nbefore2@broken.test\n"unclosed@broken.test\nafter@broken.test\n';
    const posted = await call('POST', '/v1/imports?yes=true', keys.admin, broken, { 'content-type': 'text/csv' });
    const job = await waitWhile(posted.json['id'] as string, ['analyzing', 'importing']);
    expect(job).toMatchObject({ state: 'failed', error: { code: 'OPTOUT_ERR_CSV_PARSE' } });
    expect(await eligible('before2@broken.test')).toBe(false);
    expect(await eligible('after@broken.test')).toBe(true);
  });

  it('a gzip upload whose record never ends: awaits confirmation of the row before it, then writes it and fails', async () => {
    // A header, one valid row, then 4 MiB of zero bytes: one record past the 1 MiB limit.
    const body = gzipSync(Buffer.concat([Buffer.from('email\nbefore@zeros.test\n'), Buffer.alloc(4 * 1024 * 1024)]));
    const posted = await call('POST', '/v1/imports', keys.admin, body, { 'content-type': 'application/gzip' });
    expect(posted.status).toBe(202);
    const id = posted.json['id'] as string;
    const waiting = await waitWhile(id, ['analyzing']);
    expect(waiting).toMatchObject({
      state: 'awaiting_confirmation', counts: { rows: 1, valid: 1, unique: 1 }, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 3 },
    });
    expect(await eligible('before@zeros.test')).toBe(true);
    expect((await call('POST', `/v1/imports/${id}/confirm`, keys.admin, { count: 1 })).status).toBe(200);
    const done = await waitWhile(id, ['awaiting_confirmation', 'importing']);
    expect(done).toMatchObject({ state: 'failed', counts: { added: 1 }, error: { code: 'OPTOUT_ERR_RECORD_TOO_LARGE', line: 3 } });
    expect(await eligible('before@zeros.test')).toBe(false);
  });

  it('refuses bad requests without creating a job', async () => {
    const before = ((await call('GET', '/v1/imports', keys.admin)).json['imports'] as unknown[]).length;
    expect((await call('POST', '/v1/imports', keys.check, csv, { 'content-type': 'text/csv' })).status).toBe(403);
    expect((await call('POST', '/v1/imports?unit=bad%20unit', keys.admin, csv, { 'content-type': 'text/csv' })).status).toBe(400);
    expect((await call('POST', '/v1/imports?reason=spam', keys.admin, csv, { 'content-type': 'text/csv' })).status).toBe(400);
    expect((await call('POST', '/v1/imports', keys.admin, csv, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await call('GET', '/v1/imports/999', keys.admin)).status).toBe(404);
    expect(((await call('GET', '/v1/imports', keys.admin)).json['imports'] as unknown[]).length).toBe(before);
  });
});

describe('export over HTTP', () => {
  it('streams CSV and NDJSON; a unit key exports only its unit', async () => {
    const all = await call('GET', '/v1/export', keys.check);
    expect(all.status).toBe(200);
    expect(all.headers['content-type']).toMatch(/^text\/csv/);
    const lines = all.text.trim().split('\n');
    expect(lines[0]).toBe('email,key,unit,reason,source,job,added_at');
    expect(lines.some((l) => l.startsWith('one@import.test,one@import.test,emea,unsubscribed,crm-export,'))).toBe(true);
    expect((await call('GET', '/v1/export', keys.emea)).status).toBe(403);
    const emea = await call('GET', '/v1/export?unit=emea&format=ndjson', keys.emea);
    const rows = emea.text.trim().split('\n').map((l) => JSON.parse(l) as { unit: string });
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.unit === 'emea')).toBe(true);
    expect((await call('GET', '/v1/export?format=xml', keys.check)).status).toBe(400);
  });

  it('lists jobs for admin keys only', async () => {
    expect((await call('GET', '/v1/jobs', keys.check)).status).toBe(403);
    const jobs = (await call('GET', '/v1/jobs', keys.admin)).json['jobs'] as Array<{ kind: string }>;
    expect(jobs.some((j) => j.kind === 'add')).toBe(true);
    expect(jobs.some((j) => j.kind === 'import')).toBe(true);
  });
});

describe('API keys over HTTP', () => {
  it('creates, lists and revokes keys while serving; a revoked key stops working at once', async () => {
    expect((await call('POST', '/v1/keys', keys.check, { scope: 'check' })).status).toBe(403);
    const created = await call('POST', '/v1/keys', keys.admin, { scope: 'check', unit: 'apac', rateLimit: 50 });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ scope: 'check', unit: 'apac', rateLimit: 50, revokedAt: null });
    const fresh = created.json['key'] as string;
    const id = created.json['id'] as string;
    expect((await call('GET', '/v1/eligibility?email=a@b.org&unit=apac', fresh)).status).toBe(200);
    const listed = (await call('GET', '/v1/keys', keys.admin)).json['keys'] as Array<{ id: string }>;
    expect(listed.map((k) => k.id)).toContain(id);
    expect(JSON.stringify(listed)).not.toContain('oo_');

    const revoked = await call('DELETE', `/v1/keys/${id}`, keys.admin);
    expect(revoked.status).toBe(200);
    expect(revoked.json['revokedAt']).toEqual(expect.any(String));
    expect((await call('GET', '/v1/eligibility?email=a@b.org&unit=apac', fresh)).status).toBe(401);
    expect((await call('DELETE', '/v1/keys/0123456789abcdef', keys.admin)).status).toBe(404);
    expect((await call('POST', '/v1/keys', keys.admin, { scope: 'root' })).status).toBe(400);

    const audit = ((await call('GET', '/v1/audit', keys.admin)).json['records'] as Array<{ action: string; details: { id?: string } }>)
      .filter((r) => r.action.startsWith('key.') && r.details.id === id);
    expect(audit.map((r) => r.action)).toEqual(['key.create', 'key.revoke']);
  });
});

/** Polls as fast as the event loop turns (bounded), so that no moment after the end is skipped. */
async function untilEnded(id: string): Promise<string> {
  for (let i = 0; i < 20_000; i++) {
    const state = (await call('GET', `/v1/imports/${id}`, keys.admin)).json['state'] as string;
    if (state === 'completed' || state === 'failed') return state;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`job ${id} did not end`);
}

describe('rollback right after a job is shown ended', () => {
  it('succeeds every time, for completed and failed jobs', async () => {
    for (let i = 0; i < 12; i++) {
      // Every third list breaks after its first row: a failed job holds that row, and is rolled back the same.
      const csv = i % 3 === 2 ? `email\nfirst${i}@ended.test\n"unclosed${i}@ended.test\n` : `email\na${i}@ended.test\nb${i}@ended.test\n`;
      const posted = await call('POST', '/v1/imports?yes=true', keys.admin, csv, { 'content-type': 'text/csv' });
      expect(posted.status).toBe(202);
      const id = posted.json['id'] as string;
      expect(await untilEnded(id)).toBe(i % 3 === 2 ? 'failed' : 'completed');
      const rb = await call('POST', `/v1/imports/${id}/rollback`, keys.admin);
      expect(rb.status, `import ${i}: ${rb.text}`).toBe(200);
      expect(rb.json).toMatchObject({ removed: i % 3 === 2 ? 1 : 2 });
    }
  });

  it('still refuses a job that is running', async () => {
    const rows = Array.from({ length: 20_000 }, (_, j) => `r${j}@busy.test`).join('\n');
    const posted = await call('POST', '/v1/imports', keys.admin, `email\n${rows}\n`, { 'content-type': 'text/csv' });
    const id = posted.json['id'] as string;
    const rb = await call('POST', `/v1/imports/${id}/rollback`, keys.admin);
    expect(rb.status).toBe(409);
    expect(rb.code).toBe('OPTOUT_ERR_JOB_STATE');
  });
});
