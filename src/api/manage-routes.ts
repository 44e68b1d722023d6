/**
 * The routes that manage the list: single suppressions, export, audit, jobs and imports. Every
 * route that changes the list needs an admin key; reads take a check key, and a key bound to a
 * unit reads only that unit (and the account-wide entries that apply to it).
 */
import { createReadStream, existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { createKey, listKeys, revokeKey, type KeyRing, type KeyScope } from '../auth/api-keys.js';
import type { OptoutStore } from '../check/open-store.js';
import { readAudit } from '../manage/audit-log.js';
import { exportText, normalizeExportOptions, type ExportFormat } from '../manage/export.js';
import type { ImportJobs, ImportRequest } from '../manage/import-jobs.js';
import { rollbackJob } from '../manage/rollback.js';
import { addSuppression, lookupSuppressions, removeSuppression } from '../manage/suppressions.js';
import { ACCOUNT_WIDE } from '../store/store.js';
import { jobSummary } from '../store/jobs.js';
import { GenerationClock, entityTag, isNotModified } from './conditional.js';
import { ApiError } from './errors.js';
import { JOB_SCHEMA, OPEN_OBJECT, answers, listOf, textOf } from './schemas.js';

export interface RouteContext {
  guard(scope: KeyScope): onRequestHookHandler;
  keys(): KeyRing;
  assertUnit(request: FastifyRequest, unit: string | undefined): void;
  current(): OptoutStore;
  imports(): ImportJobs;
  /** The body of an upload as it arrives, with the stall limit in place of the whole-body one. */
  uploadBody(request: FastifyRequest, body: Readable): AsyncIterable<Buffer>;
  /** Imports from URLs may reach loopback and private addresses (tests, trusted networks). */
  allowPrivateUrls: boolean;
}

/**
 * Ends a write's answer with `X-Optout-Seq`, the feed position that includes the write, on a
 * store with a feed: a check on any API replica that sends it as `minSeq` sees the write.
 */
export async function sendSeq(store: OptoutStore, reply: FastifyReply): Promise<void> {
  const seq = await store.written();
  if (seq !== undefined) void reply.header('x-optout-seq', String(seq));
}

const MAX_AUDIT = 10_000;
const UPLOAD_TYPES = ['text/csv', 'application/csv', 'application/octet-stream', 'application/gzip', 'application/x-gzip'];
const SUPPRESSION = { type: 'object', additionalProperties: true, properties: { key: { type: 'string' }, scope: { type: 'string' } } } as const;

const EMAIL_PARAM = { type: 'object', required: ['email'], properties: { email: { type: 'string', minLength: 1, maxLength: 1024 } } } as const;
const ID_PARAM = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9]{1,12}$' } } } as const;
const UNIT = { type: 'string', maxLength: 64 } as const;
const REASON = { type: 'string', enum: ['unsubscribed', 'bounced', 'complaint', 'manual'] } as const;

function actorOf(request: FastifyRequest): string {
  return `key:${request.apiKey?.id ?? '?'}`;
}

export function registerManageRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const store = (): OptoutStore['ledger'] => ctx.current().ledger;
  const exportClock = new GenerationClock();

  app.put<{ Params: { email: string }; Body: { unit?: string; reason?: string; source?: string } | undefined }>('/v1/suppressions/:email', {
    onRequest: ctx.guard('admin'),
    schema: {
      params: EMAIL_PARAM,
      body: { type: ['object', 'null'], additionalProperties: false, properties: { unit: UNIT, reason: REASON, source: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: answers({ 200: SUPPRESSION, 201: SUPPRESSION }),
    },
  }, async (request, reply) => {
    const b = request.body ?? {};
    const r = await addSuppression(store(), { email: request.params.email, unit: b.unit, reason: b.reason, source: b.source, actor: actorOf(request) });
    await sendSeq(ctx.current(), reply);
    void reply.code(r.added ? 201 : 200);
    return r;
  });

  app.get<{ Params: { email: string } }>('/v1/suppressions/:email', {
    onRequest: ctx.guard('check'),
    schema: { params: EMAIL_PARAM, response: answers({ 200: listOf('suppressions') }) },
  }, async (request) => {
    const bound = request.apiKey?.unit ?? null;
    const found = await lookupSuppressions(store(), request.params.email);
    return { suppressions: bound === null ? found : found.filter((s) => s.scope === ACCOUNT_WIDE || s.scope === bound) };
  });

  app.delete<{ Params: { email: string }; Querystring: { unit?: string; why?: string }; Body: { why?: string } | undefined }>('/v1/suppressions/:email', {
    onRequest: ctx.guard('admin'),
    schema: {
      params: EMAIL_PARAM,
      querystring: { type: 'object', additionalProperties: false, properties: { unit: UNIT, why: { type: 'string', maxLength: 1000 } } },
      // The reason may come in the query instead: many clients send no body with DELETE.
      body: { type: ['object', 'null'], additionalProperties: false, properties: { why: { type: 'string', maxLength: 1000 } } },
      response: answers({ 200: SUPPRESSION }),
    },
  }, async (request, reply) => {
    const why = request.body?.why ?? request.query.why;
    if (why === undefined || why.trim() === '') {
      throw new ApiError('OPTOUT_ERR_INVALID_OPTION', 'A removal needs a reason: `why` in the JSON body or the query');
    }
    const removed = await removeSuppression(store(), { email: request.params.email, unit: request.query.unit, why, actor: actorOf(request) });
    await sendSeq(ctx.current(), reply);
    return removed;
  });

  app.get<{ Querystring: { unit?: string; reason?: string; format?: ExportFormat; spreadsheetSafe?: string } }>('/v1/export', {
    onRequest: ctx.guard('check'),
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { unit: { type: 'string', maxLength: 64 }, reason: REASON, format: { type: 'string', enum: ['csv', 'ndjson'] }, spreadsheetSafe: { type: 'string', enum: ['true', 'false'] } },
      },
      response: answers({ 200: textOf('text/csv', 'application/x-ndjson'), 304: { type: 'null' } }),
    },
  }, async (request, reply) => {
    const q = request.query;
    ctx.assertUnit(request, q.unit);
    // Every option is checked before the status is sent: a bad one is a 400, never a cut stream.
    const options = normalizeExportOptions({ unit: q.unit, reason: q.reason, format: q.format, spreadsheetSafe: q.spreadsheetSafe === 'true' });
    const current = ctx.current();
    const ledger = current.ledger;
    // What the export reads changes with each change to the list: a ledger with a feed numbers
    // them, the embedded store counts them.
    const version = ledger.supports.feed ? await ledger.head() : current.store.generation;
    const tag = entityTag(version, options);
    if (isNotModified(request, reply, tag, exportClock.modifiedAt(version))) return reply.code(304).send();
    void reply.type(options.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8');
    // A failure after the first byte destroys the connection (fastify does so for a stream that
    // errors once the headers are out): the chunked body then has no terminating chunk, and a
    // client reading it sees a truncated body, never a complete-looking short export.
    return reply.send(Readable.from(exportText(ledger, options)));
  });

  app.get<{ Querystring: { email?: string; since?: string; limit?: number } }>('/v1/audit', {
    onRequest: ctx.guard('admin'),
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { email: { type: 'string', maxLength: 1024 }, since: { type: 'string', maxLength: 64 }, limit: { type: 'string', pattern: '^[0-9]{1,5}$' } },
      },
      response: answers({ 200: listOf('records') }),
    },
  }, async (request) => {
    const q = request.query;
    const limit = q.limit === undefined ? 1000 : Math.min(MAX_AUDIT, Number(q.limit));
    const records = [];
    for await (const r of readAudit(store(), { email: q.email, since: q.since, limit })) records.push(r);
    return { records };
  });

  app.get('/v1/jobs', { onRequest: ctx.guard('admin'), schema: { response: answers({ 200: listOf('jobs') }) } }, async () => ({ jobs: (await store().listJobs()).map(jobSummary) }));

  app.post<{ Body: { unit?: string; scope?: KeyScope; rateLimit?: number } | undefined }>('/v1/keys', {
    onRequest: ctx.guard('admin'),
    schema: {
      body: {
        type: ['object', 'null'], additionalProperties: false,
        properties: { unit: UNIT, scope: { type: 'string', enum: ['check', 'admin'] }, rateLimit: { type: 'number', exclusiveMinimum: 0 } },
      },
      response: answers({ 201: { type: 'object', required: ['id', 'key'], additionalProperties: true, properties: { id: { type: 'string' }, key: { type: 'string' } } } }),
    },
  }, async (request, reply) => {
    const b = request.body ?? {};
    const created = await createKey(store(), { unit: b.unit, scope: b.scope ?? 'check', rateLimit: b.rateLimit, actor: actorOf(request) });
    await sendSeq(ctx.current(), reply);
    void reply.code(201);
    return { ...created.record, key: created.key };
  });

  app.get('/v1/keys', { onRequest: ctx.guard('admin'), schema: { response: answers({ 200: listOf('keys') }) } }, async () => ({ keys: await listKeys(store()) }));

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', {
    onRequest: ctx.guard('admin'),
    schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } } }, response: answers({ 200: OPEN_OBJECT }) },
  }, async (request, reply) => {
    const known = (await listKeys(store())).some((k) => k.id === request.params.id);
    if (!known) throw new ApiError('OPTOUT_ERR_NOT_FOUND', `No API key has the id ${request.params.id}`);
    const record = await revokeKey(store(), request.params.id, actorOf(request));
    ctx.keys().forget(request.params.id);
    await sendSeq(ctx.current(), reply);
    return record;
  });

  registerImportRoutes(app, ctx);
}

interface UrlImport {
  url: string; column?: string; unit?: string; reason?: string; reasonColumn?: string; source?: string; yes?: boolean;
  header?: boolean; where?: string; allRows?: boolean; format?: string; member?: string;
}

const URL_IMPORT_FIELDS: Record<keyof UrlImport, 'string' | 'boolean'> = {
  url: 'string', column: 'string', unit: 'string', reason: 'string', reasonColumn: 'string', source: 'string', yes: 'boolean',
  header: 'boolean', where: 'string', allRows: 'boolean', format: 'string', member: 'string',
};

const URL_IMPORT_SCHEMA = {
  type: 'object', required: ['url'], additionalProperties: false,
  properties: Object.fromEntries(Object.entries(URL_IMPORT_FIELDS).map(([name, type]) => [name, { type }])),
};
const IMPORT_TYPES = [...UPLOAD_TYPES, 'application/json'];

/** A JSON import request: `url` and the same options as the query, nothing else. */
function isUrlImport(body: unknown): body is UrlImport {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const entries = Object.entries(body as Record<string, unknown>);
  return typeof (body as { url?: unknown }).url === 'string' &&
    entries.every(([k, v]) => k in URL_IMPORT_FIELDS && typeof v === URL_IMPORT_FIELDS[k as keyof UrlImport]);
}

/**
 * The bytes an upload will store, when the client says so up front: its Content-Length, unless
 * the body is chunked or compressed (stored decompressed, of a size known only once read).
 */
function storedLength(request: FastifyRequest): number | undefined {
  const h = request.headers;
  const encoding = h['content-encoding']?.trim().toLowerCase();
  if (h['transfer-encoding'] !== undefined || (encoding !== undefined && encoding !== 'identity' && encoding !== '')) return undefined;
  const length = h['content-length'];
  return length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
}

interface ImportQuery {
  column?: string; delimiter?: string; encoding?: string; unit?: string; reason?: string; reasonColumn?: string; source?: string; yes?: string;
  header?: string; where?: string; allRows?: string; format?: string; member?: string;
}

const BOOLEAN_TEXT = { type: 'string', enum: ['true', 'false'] } as const;
const booleanOf = (text: string | undefined): boolean | undefined => (text === undefined ? undefined : text === 'true');

function registerImportRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const importQuery = {
    type: 'object', additionalProperties: false,
    properties: {
      column: { type: 'string', minLength: 1, maxLength: 200 }, delimiter: { type: 'string', maxLength: 3 },
      encoding: { type: 'string', maxLength: 20 }, unit: UNIT, reason: REASON, reasonColumn: { type: 'string', minLength: 1, maxLength: 200 },
      source: { type: 'string', minLength: 1, maxLength: 200 }, yes: BOOLEAN_TEXT,
      // As the import command's --header / --no-header, --where, --all-rows, --format, --member.
      header: BOOLEAN_TEXT, where: { type: 'string', minLength: 3, maxLength: 1000 }, allRows: BOOLEAN_TEXT,
      format: { type: 'string', enum: ['csv', 'json', 'ndjson', 'zip'] }, member: { type: 'string', minLength: 1, maxLength: 1000 },
    },
  } as const;

  // Upload bodies reach the handler as the raw request stream, never buffered; these parsers
  // exist only inside this plugin, so every other route still takes JSON only.
  void app.register(async (scoped) => {
    scoped.addContentTypeParser(UPLOAD_TYPES, (_request, payload, done) => {
      done(null, payload);
    });

    scoped.post<{ Querystring: ImportQuery; Body: unknown }>('/v1/imports', {
      onRequest: ctx.guard('admin'),
      // Ahead of fastify's own 415, whose message names JSON only.
      preParsing: async (request, _reply, payload) => {
        const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (request.headers['content-type'] !== undefined && !IMPORT_TYPES.includes(type)) {
          throw new ApiError('OPTOUT_ERR_UNSUPPORTED_MEDIA_TYPE', `Send the CSV as ${UPLOAD_TYPES.join(', ')}, or JSON (application/json) naming a url; got ${type || 'an empty Content-Type'}`);
        }
        return payload;
      },
      // For a JSON body (a URL); a CSV body is a stream, limited while it is written to disk.
      bodyLimit: 64 * 1024,
      schema: {
        summary: 'Start an import: the CSV as the body, or JSON naming a URL',
        querystring: importQuery,
        body: { content: { 'application/json': { schema: URL_IMPORT_SCHEMA }, ...Object.fromEntries(UPLOAD_TYPES.map((t) => [t, { schema: {} }])) } },
        response: answers({ 202: JOB_SCHEMA }),
      },
    }, async (request, reply) => {
      const q = request.query;
      const req: ImportRequest = {
        column: q.column, delimiter: q.delimiter, encoding: q.encoding, unit: q.unit, reason: q.reason, reasonColumn: q.reasonColumn, source: q.source,
        yes: q.yes === 'true', header: booleanOf(q.header), where: q.where, allRows: booleanOf(q.allRows), format: q.format, member: q.member,
      };
      const body = request.body;
      const origin = { via: 'http' as const, actor: actorOf(request) };
      let job;
      if (body instanceof Readable) {
        try {
          job = await ctx.imports().createFromUpload(ctx.uploadBody(request, body), req, origin, storedLength(request));
        } catch (err) {
          // Refused before its end (too large, stalled): the rest will not be read, so the
          // connection cannot carry another request.
          if (!request.raw.complete) void reply.header('connection', 'close');
          throw err;
        }
      } else if (isUrlImport(body)) {
        const { url, ...options } = body;
        job = await ctx.imports().createFromUrl(url, { ...req, ...options }, origin, { allowPrivate: ctx.allowPrivateUrls });
      } else {
        throw new ApiError('OPTOUT_ERR_INVALID_OPTION', 'Send the CSV as the body (Content-Type: text/csv), or JSON { "url": "https://...", ... }');
      }
      void reply.code(202).header('location', `/v1/imports/${job.id}`);
      return job;
    });
  });

  app.get('/v1/imports', { onRequest: ctx.guard('admin'), schema: { response: answers({ 200: listOf('imports', JOB_SCHEMA) }) } }, async () => ({ imports: await ctx.imports().list() }));

  app.get<{ Params: { id: string } }>('/v1/imports/:id', { onRequest: ctx.guard('admin'), schema: { params: ID_PARAM, response: answers({ 200: JOB_SCHEMA }) } }, async (request, reply) => {
    const job = await ctx.imports().get(request.params.id);
    if (job === undefined) throw new ApiError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${request.params.id}`);
    // A completed import's entries are in the feed: the position read now includes them.
    if (job.state === 'completed') await sendSeq(ctx.current(), reply);
    return job;
  });

  app.post<{ Params: { id: string }; Body: { count: number } }>('/v1/imports/:id/confirm', {
    onRequest: ctx.guard('admin'),
    schema: {
      summary: 'Confirm a waiting import with its count of unique addresses; answers the job in its new state',
      params: ID_PARAM, body: { type: 'object', required: ['count'], additionalProperties: false, properties: { count: { type: 'integer', minimum: 0 } } },
      response: answers({ 200: JOB_SCHEMA }),
    },
  }, async (request) => ctx.imports().confirm(request.params.id, request.body.count));

  app.get<{ Params: { id: string } }>('/v1/imports/:id/rejects', {
    onRequest: ctx.guard('admin'), schema: { params: ID_PARAM, response: answers({ 200: textOf('text/csv') }) },
  }, async (request, reply) => {
    const jobs = ctx.imports();
    if ((await jobs.get(request.params.id)) === undefined) throw new ApiError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${request.params.id}`);
    const path = jobs.rejectsPath(request.params.id);
    void reply.type('text/csv; charset=utf-8');
    return existsSync(path) ? reply.send(createReadStream(path)) : 'line,row,value,reason\n';
  });

  app.post<{ Params: { id: string }; Body: { force?: boolean } | undefined }>('/v1/imports/:id/abandon', {
    onRequest: ctx.guard('admin'),
    schema: {
      summary: 'End an import job whose server is gone for good (see `optout jobs abandon`): it fails, or expires if it waited for a confirmation; answers the job',
      params: ID_PARAM,
      body: { type: ['object', 'null'], additionalProperties: false, properties: { force: { type: 'boolean', description: 'even if its server was seen within --lost-after, or none is recorded' } } },
      response: answers({ 200: JOB_SCHEMA }),
    },
  }, async (request) => ctx.imports().abandon(request.params.id, actorOf(request), request.body?.force === true));

  app.post<{ Params: { id: string } }>('/v1/imports/:id/rollback', { onRequest: ctx.guard('admin'), schema: { params: ID_PARAM, response: answers({ 200: OPEN_OBJECT }) } }, async (request, reply) => {
    if (await ctx.imports().isRunning(request.params.id)) {
      throw new ApiError('OPTOUT_ERR_JOB_STATE', `Job ${request.params.id} is running; roll it back once it has ended`);
    }
    const result = await rollbackJob(ctx.current().ledger, request.params.id, actorOf(request));
    await sendSeq(ctx.current(), reply);
    return result;
  });
}
