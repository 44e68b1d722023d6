/**
 * `GET /v1/imports/{id}` counts valid rows per reason, as the import command's report does:
 * while the job waits for its confirmation, once it is done, and after the server restarts on
 * the same store (the counts live in the job's record).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type OptoutServer } from '../../src/api/server.js';
import { createKey, openStore, type OptoutStore } from '../../src/index.js';
import { createInlinePool } from '../../src/workers/inline-pool.js';
import { removeTempDirs, tempDir } from '../helpers.js';
import { injectCaller } from '../inline.js';

const pool = createInlinePool();
let store: OptoutStore | undefined;
let app: OptoutServer | undefined;

async function start(db: string): Promise<void> {
  store = await openStore(db);
  app = createServer({ store, imports: { pool } });
  await app.ready();
}

async function stop(): Promise<void> {
  await app?.close();
  await store?.close();
  app = undefined;
  store = undefined;
}

afterAll(async () => {
  await stop();
  await pool.destroy();
  await removeTempDirs();
});

const call = injectCaller(() => app as OptoutServer);

async function waitWhile(key: string, id: string, states: string[]): Promise<Record<string, unknown>> {
  for (let i = 0; i < 400; i++) {
    const job = (await call('GET', `/v1/imports/${id}`, key)).json;
    if (!states.includes(job['state'] as string)) return job;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`job ${id} stayed in ${states.join('/')}`);
}

/** A Klaviyo suppression export: every row gives its own reason; one is not an address. */
const klaviyo = [
  'Email,Suppression Reason,Suppressed At',
  'u@reasons.test,Unsubscribed,2026-01-05', 'b@reasons.test,Bounced,2026-01-05', 's@reasons.test,Spam complaint,2026-01-05',
  'm@reasons.test,Manually suppressed,2026-01-05', 'i@reasons.test,Invalid email,2026-01-05', 'B@Reasons.test,Bounced,2026-01-06',
  'not-an-address,Bounced,2026-01-06',
].join('\n') + '\n';
const klaviyoReasons = { unsubscribed: 1, bounced: 3, complaint: 1, manual: 1 };

describe('per-reason counts of an import over HTTP', () => {
  it('while waiting, once completed, in the list, and after a restart; without a reason column, every valid row under the job\'s', async () => {
    const dir = await tempDir('optout-api-import-reasons-');
    const db = join(dir, 'db');
    await start(db);
    const key = (await createKey((store as OptoutStore).store, { scope: 'admin' })).key;

    const asked = await call('POST', '/v1/imports', key, klaviyo, { 'content-type': 'text/csv' });
    expect(asked.status).toBe(202);
    const askedId = asked.json['id'] as string;
    expect(await waitWhile(key, askedId, ['analyzing'])).toMatchObject({
      state: 'awaiting_confirmation', counts: { rows: 7, valid: 6, invalid: 1, unique: 5 }, reasons: klaviyoReasons,
    });
    expect((await call('POST', `/v1/imports/${askedId}/confirm`, key, { count: 5 })).status).toBe(200);
    const done = await waitWhile(key, askedId, ['awaiting_confirmation', 'importing']);
    expect(done).toMatchObject({ state: 'completed', counts: { valid: 6, added: 5 } });
    expect(done['reasons']).toEqual(klaviyoReasons);

    const plain = await call('POST', '/v1/imports?yes=true&reason=complaint', key, 'email\np1@reasons.test\np2@reasons.test\nbroken\n',
      { 'content-type': 'text/csv' });
    const plainId = plain.json['id'] as string;
    expect((await waitWhile(key, plainId, ['analyzing', 'importing']))['reasons']).toEqual({ complaint: 2 });

    const listed = (await call('GET', '/v1/imports', key)).json['imports'] as Array<Record<string, unknown>>;
    expect(Object.fromEntries(listed.map((j) => [j['id'], j['reasons']]))).toEqual({ [askedId]: klaviyoReasons, [plainId]: { complaint: 2 } });

    await stop();
    await start(db);
    expect((await call('GET', `/v1/imports/${askedId}`, key)).json).toMatchObject({ state: 'completed', reasons: klaviyoReasons });
    expect((await call('GET', `/v1/imports/${plainId}`, key)).json).toMatchObject({ state: 'completed', reasons: { complaint: 2 } });

    const doc = (await call('GET', '/openapi.json', key)).json as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }> }>> };
    const schema = doc.paths['/v1/imports/{id}']?.['get']?.responses['200']?.content?.['application/json']?.schema;
    expect(Object.keys(schema?.properties?.['reasons'] as object)).toContain('properties');
  });
});
