/**
 * Who holds an import job, and what becomes of it when that server is lost for good.
 *
 * On a ledger several servers share, an upload and its spool live in the folder of the server
 * that received it, and only that server can run the job. Each such server has a stable id,
 * kept in its folder (so a restart with the same folder is the same holder), which the jobs it
 * starts record; and it writes a liveness record (`server`, by that id) every few seconds. A
 * job whose holder has not been seen for a bound is ended by whichever live server gets there
 * first: the state table, enforced by the ledger on every job write, lets one of them do it, and
 * refuses whatever the holder writes for that job if it ever comes back.
 *
 * The embedded store has one process per folder: no holders, no liveness records.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { OptoutError } from '../errors.js';
import { UNENDED, moveJob } from '../store/job-states.js';
import type { JobRecord } from '../store/jobs.js';
import { ACCOUNT_WIDE, RECORD_ID_PATTERN, type Ledger } from '../store/store.js';

/** The file in a server's folder that names it as a holder of jobs. */
export const HOLDER_FILE = 'server-id';

/** A server's liveness record, rewritten every heartbeat. */
export interface HolderRecord {
  seenAt: string;
  startedAt: string;
  host: string;
  pid: number;
}

/** Where a job's holder stands, as job lists show it. */
export interface Holding {
  /** The holder's id; null when none is recorded (a command-line import, a job from before holders). */
  id: string | null;
  /** When its server last wrote its liveness record; null when it never did. */
  seenAt: string | null;
  /** Not seen within the bound: the job is ended by the next live server (or may be abandoned). */
  lost: boolean;
}

/** The id of the server whose folder is `dir`: read from it, or made and kept there the first time. */
export function holderIdOf(dir: string): string {
  const path = join(dir, HOLDER_FILE);
  try {
    const id = readFileSync(path, 'utf8').trim();
    if (RECORD_ID_PATTERN.test(id)) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dir, { recursive: true });
  const id = randomUUID();
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
  return id;
}

/** Writes the liveness record of server `id`. */
export async function beat(ledger: Ledger, id: string, startedAt: string): Promise<void> {
  const record: HolderRecord = { seenAt: new Date().toISOString(), startedAt, host: hostname(), pid: process.pid };
  await ledger.putRecord('server', id, record, undefined);
}

/** When each server was last seen (epoch ms), by id. */
export async function lastSeen(ledger: Ledger): Promise<Map<string, number>> {
  const records = await ledger.listRecords<HolderRecord>('server');
  return new Map(records.map((r) => [r.id, Date.parse(r.value.seenAt)]));
}

/** Where `job`'s holder stands at `now`; undefined for a job that has ended. */
export function holdingOf(job: JobRecord, seen: ReadonlyMap<string, number>, lostAfterMs: number, now = Date.now()): Holding | undefined {
  if (!UNENDED.has(job.state)) return undefined;
  const id = job.holder ?? null;
  const at = id === null ? undefined : seen.get(id);
  // A holder whose first liveness record failed (it retries every heartbeat): the job's age stands in.
  const since = at ?? Date.parse(job.createdAt);
  return { id, seenAt: at === undefined ? null : new Date(at).toISOString(), lost: id !== null && now - since > lostAfterMs };
}

/** Why a job ends without its holder: who decided, and on what grounds. */
export interface Ending {
  /** `server:<id>` for a server that found the holder lost, `cli` or `key:<id>` for an operator. */
  actor: string;
  holding: Holding;
  lostAfterMs: number;
  /** An operator who did not wait for the bound. */
  forced: boolean;
}

/**
 * Ends a job whose holder is gone: a waiting job `expired`, any other `failed`, with an error
 * that says what happened and what to do, and an audit record. Resolves the record stored, or
 * undefined when another process ended or moved the job first (the ledger refused the move).
 */
export async function endWithoutHolder(ledger: Ledger, job: JobRecord, e: Ending): Promise<JobRecord | undefined> {
  const waiting = job.state === 'awaiting_confirmation';
  const to = waiting ? 'expired' : 'failed';
  const ended = moveJob(job, to, { finishedAt: new Date().toISOString(), error: { code: 'OPTOUT_ERR_HOLDER_LOST', message: endingMessage(job, e) } });
  const audit = ledger.audit({
    actor: e.actor, action: 'abandon', key: null, job: job.id, unit: job.scope === ACCOUNT_WIDE ? null : job.scope,
    details: { from: job.state, to, holder: e.holding.id, seenAt: e.holding.seenAt, lostAfterMs: e.lostAfterMs, forced: e.forced },
  });
  try {
    await ledger.putJob(ended, audit);
    return ended;
  } catch (err) {
    if ((err as OptoutError).code === 'OPTOUT_ERR_JOB_STATE') return undefined;
    throw err;
  }
}

function endingMessage(job: JobRecord, e: Ending): string {
  const h = e.holding;
  const who = h.id === null ? 'No server is recorded as holding this job' : `The server holding this job (folder id ${h.id}) ` +
    (h.seenAt === null ? 'has never been seen' : `was last seen at ${h.seenAt}`);
  const why = e.actor.startsWith('server:') ? `${who}, more than ${formatMs(e.lostAfterMs)} ago: it is taken as lost with the upload ` +
    `and spool kept in its folder, and another server ended the job.` : `${who}; ${e.actor} abandoned the job${e.forced ? ' (forced)' : ''}.`;
  if (job.state === 'analyzing' || job.state === 'awaiting_confirmation') return `${why} Nothing was written: upload the file again.`;
  const written = job.checkpoint.phase === 'merge' && job.checkpoint.bucket > 0;
  return `${why} ${written ? `Its committed chunks (${job.checkpoint.bucket} of them) stay suppressed` : 'It may have committed chunks, which stay suppressed'}: ` +
    `run \`optout rollback ${job.id}\` (or POST /v1/imports/${job.id}/rollback) to take them back, or import the file again to finish it.`;
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

/**
 * `optout jobs abandon`: ends a job whose holder an operator knows is gone, without waiting for
 * the bound. Refused, unless `force`, for a job whose holder was seen within the bound, and for
 * one with no recorded holder (nothing says whether it still runs somewhere).
 */
export async function abandonJob(ledger: Ledger, id: string, o: { actor: string; force: boolean; lostAfterMs: number }): Promise<JobRecord> {
  const job = /^\d{1,12}$/.test(id) ? await ledger.getJob(id) : undefined;
  if (job?.kind !== 'import') throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${id}`);
  const holding = holdingOf(job, await lastSeen(ledger), o.lostAfterMs);
  if (holding === undefined) throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} is ${job.state}: it has ended already`);
  if (!holding.lost && !o.force) {
    const why = holding.id === null
      ? 'no server is recorded as holding it (a command-line import, or a job from before holders were recorded), so nothing says it has stopped'
      : `its server (folder id ${holding.id}) was seen at ${holding.seenAt}, within ${formatMs(o.lostAfterMs)}: it may still run it`;
    throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} is ${job.state} and ${why}. Pass --force (HTTP: "force": true) if you know it is gone.`);
  }
  const ended = await endWithoutHolder(ledger, job, { actor: o.actor, holding, lostAfterMs: o.lostAfterMs, forced: !holding.lost });
  if (ended === undefined) {
    const now = await ledger.getJob(id);
    throw new OptoutError('OPTOUT_ERR_JOB_STATE', `Job ${id} changed meanwhile: it is ${now?.state ?? 'gone'}`);
  }
  return ended;
}

/** The bound after which a server not seen is taken as lost. @default 10 minutes */
export const DEFAULT_LOST_AFTER_MS = 10 * 60_000;
/** How often a server writes its liveness record and looks for jobs of lost ones. @default 5 s */
export const DEFAULT_HEARTBEAT_MS = 5000;
