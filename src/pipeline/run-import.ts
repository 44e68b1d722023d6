import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { OptoutError, throwIfAborted } from '../errors.js';
import { pickEmailColumn } from '../csv/header.js';
import { createChunkPool, type ChunkPool } from '../normalize/pool.js';
import { normalizeImportOptions, type ImportOptions, type NormalizedImportOptions } from '../options.js';
import { RejectsFile } from '../report/rejects.js';
import type { ImportReport } from '../report/summary.js';
import { splitSource, type Chunk, type HeaderRecord } from '../source/chunks.js';
import { describeSource, openSource, type OpenedSource, type SourceInfo, type SourceSpec } from '../source/open-source.js';
import { errorOfJob, jobErrorOf, type JobError, type JobFingerprint, type JobRecord } from '../store/jobs.js';
import { LevelStore } from '../store/level-store.js';
import { ACCOUNT_WIDE, entryKeyPrefix } from '../store/keys.js';
import type { KeyFilter } from '../dedup/bloom.js';
import { countPass, writeMergePass, type MergeOptions } from './merge-pass.js';
import { scanChunks, type ScannedChunk } from './scan.js';
import { BucketSpool, bucketBitsFor } from './spool.js';
import { spoolPass, type SpoolState } from './spool-pass.js';
import { countsMismatch, emptyCounts, type ImportCounts } from './stats.js';

interface OpenedScan {
  source: OpenedSource;
  header: HeaderRecord;
  columnIndex: number;
  scan: AsyncGenerator<ScannedChunk>;
}

/** Opens the source, reads the header, picks the email column and starts the chunk scan. */
async function openScan(spec: SourceSpec, o: NormalizedImportOptions, pool: ChunkPool, bucketBits: number,
  resume?: { offset: number; lines: number; rows: number }): Promise<OpenedScan> {
  const source = openSource(spec, o.encoding);
  let header: HeaderRecord;
  let chunks: AsyncGenerator<Chunk>;
  let columnIndex: number;
  try {
    ({ header, chunks } = await splitSource(source.bytes, {
      delimiter: o.delimiter,
      maxRecordBytes: o.maxRecordBytes,
      chunkBytes: o.chunkBytes,
      ...(resume ? { startOffset: resume.offset } : {}),
    }));
    columnIndex = pickEmailColumn(header.names, o.column);
  } catch (err) {
    source.close();
    throw err;
  }
  const start = resume ? { line: resume.lines + 1, row: resume.rows } : { line: header.lines + 1, row: 0 };
  const scan = scanChunks(chunks, pool, {
    delimiter: header.dialect.delimiter.charCodeAt(0),
    column: columnIndex,
    maxRecordBytes: o.maxRecordBytes,
    bucketBits,
  }, start);
  return { source, header, columnIndex, scan: abortable(scan, o.signal) };
}

async function* abortable<T>(it: AsyncGenerator<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  for await (const item of it) {
    throwIfAborted(signal);
    yield item;
  }
}

function fingerprintOf(info: SourceInfo, o: NormalizedImportOptions): JobFingerprint {
  return {
    path: info.path,
    size: info.size,
    mtimeMs: info.mtimeMs,
    column: o.column ?? null,
    delimiter: o.delimiter ?? null,
    encoding: o.encoding,
    rejects: o.rejects ?? null,
  };
}

/**
 * A job left in `importing` was cut off (one process owns the store, and it is us). The one
 * with the same file, content and options is resumed; the others are marked interrupted.
 */
async function findResumable(store: LevelStore, fp: JobFingerprint, o: NormalizedImportOptions, label: string): Promise<JobRecord | undefined> {
  let match: JobRecord | undefined;
  for (const job of await store.listImports()) {
    if (job.state !== 'importing' && job.state !== 'interrupted') continue;
    const same = fp.path !== null && JSON.stringify(job.fingerprint) === JSON.stringify(fp) &&
      job.scope === o.scope && job.reason === o.reason && job.source === label;
    if (same && match === undefined) match = job;
    else if (job.state === 'importing') await store.putJob({ ...job, state: 'interrupted', updatedAt: new Date().toISOString() });
  }
  return match;
}

/** A job reserved by the caller (`jobId`) resumes when it was cut off while importing. */
async function reservedJobToResume(store: LevelStore, jobId: string): Promise<JobRecord | undefined> {
  const job = await store.getJob(jobId);
  if (job === undefined || job.kind !== 'import') throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${jobId}`);
  // A reserved record has no spool until the pipeline first writes it.
  return (job.state === 'importing' || job.state === 'interrupted') && job.checkpoint.spool.dir !== '' ? job : undefined;
}

/** Copies stdin to a temporary file so that it can be read twice (analysis, then import). */
async function spoolStdin(spec: SourceSpec & { kind: 'stdin' }): Promise<{ path: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'optout-stdin-'));
  const path = join(dir, 'stdin');
  await pipeline(spec.stream, createWriteStream(path));
  return { path, dir };
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Keys a source of this size may hold, to size the spool and the filter. */
function estimateKeys(size: number | null): number {
  return size === null ? 1 << 25 : Math.ceil(size / 24);
}

/**
 * Spool folders left by runs that cannot be resumed (a crashed analysis, a finished job). Only
 * for a process that runs one import at a time: it would take the analysis of another.
 */
export async function removeOrphanSpools(store: LevelStore): Promise<void> {
  const root = join(store.dir, 'spool');
  if (!existsSync(root)) return;
  const live = new Set((await store.listImports())
    .filter((j) => j.state === 'importing' || j.state === 'interrupted')
    .map((j) => j.checkpoint.spool.dir));
  for (const name of readdirSync(root)) {
    if (!live.has(join(root, name))) rmSync(join(root, name), { recursive: true, force: true });
  }
}

/**
 * Imports an opt-out list in two phases. Reading: workers parse the CSV and spread the valid
 * keys over spool files by hash. Writing: each spool file is deduplicated exactly (every copy
 * of a key is in the same file) and written as one atomic batch. A confirmation runs the same
 * reading and a counting pass first, writing nothing to the store until the count matches.
 * A run with the same file and options as an interrupted job resumes it from its checkpoint.
 *
 * A broken record ends the reading: the rows before it are counted, confirmed and written as
 * any others, then the job fails and the error is thrown. A report returned without writing
 * (a dry run, no confirmation) carries it in `error`.
 */
export async function runImport(input: ImportOptions): Promise<ImportReport> {
  const o = normalizeImportOptions(input);
  const started = performance.now();
  let spec = o.source;
  const info = describeSource(spec);
  const label = o.sourceLabel ?? info.name;
  const store = o.store ?? await LevelStore.open(o.db, { purpose: `optout import ${info.name}` });
  const pool = createChunkPool(o.threads);
  const spoolRoot = join(store.dir, 'spool');
  const bits = bucketBitsFor(estimateKeys(info.size));
  const keyPrefix = entryKeyPrefix(o.scope);
  let stdinDir: string | undefined;
  let rejects: RejectsFile | undefined;
  let analysisSpool: BucketSpool | undefined;
  // Every scan opened, to release its file even when it was not read to the end (a resumed
  // job past its reading phase only needs the header).
  const scans: OpenedScan[] = [];
  const open = async (...args: Parameters<typeof openScan>): Promise<OpenedScan> => {
    const scan = await openScan(...args);
    scans.push(scan);
    return scan;
  };

  const report = (counts: ImportCounts, header: OpenedScan, extra: Partial<ImportReport> & { bytes: number; invalidUtf8: number }): ImportReport => {
    const durationMs = performance.now() - started;
    return {
      ...counts,
      durationMs: Math.round(durationMs),
      rowsPerSecond: durationMs > 0 ? Math.round(counts.rows / (durationMs / 1000)) : 0,
      jobId: null,
      confirmed: false,
      dryRun: false,
      expectedCount: null,
      resumed: false,
      source: label,
      scope: o.scope,
      reason: o.reason,
      column: header.header.names[header.columnIndex] ?? String(header.columnIndex + 1),
      delimiter: header.header.dialect.delimiter,
      rejectsFile: o.rejects ?? null,
      peakRssBytes: peakRss(),
      error: null,
      ...extra,
    };
  };
  const progress = (phase: 'reading' | 'counting' | 'writing', done: number, total: number | null, rows: number): void => {
    o.onProgress({ phase, done, total, rows, elapsedMs: performance.now() - started });
  };
  const mergeOptions = (spool: BucketSpool, filter: KeyFilter, counts: ImportCounts, startBucket: number,
    phase: 'counting' | 'writing'): MergeOptions => ({
    spool, pool, store, filter, keyPrefix, startBucket, counts, signal: o.signal, yieldEvery: o.yieldEvery,
    onBucket: (b, c) => progress(phase, b + 1, spool.buckets, c.unique + c.duplicates),
  });
  const readCounts = (st: SpoolState): ImportCounts => ({ ...emptyCounts(), rows: st.rows, valid: st.valid, invalid: st.invalid });

  try {
    // A store opened by the caller (the server) may have other imports running; it cleans up at start.
    if (o.store === undefined) await removeOrphanSpools(store);
    const fingerprint = fingerprintOf(info, o);
    const filter = await store.filter();
    let expectedUnique: number | undefined;
    let analysed: { state: SpoolState; scan: OpenedScan; error: JobError | undefined } | undefined;

    // Confirmation comes first and writes nothing to the store, not even to resume a job.
    if (o.confirm.mode !== 'yes') {
      if (spec.kind === 'stdin' && o.confirm.mode !== 'dry-run') {
        o.onEvent({ type: 'spooling' });
        const spooled = await spoolStdin(spec);
        stdinDir = spooled.dir;
        spec = { kind: 'file', path: spooled.path };
      }
      o.onEvent({ type: 'phase', phase: 'analyzing' });
      const scan = await open(spec, o, pool, bits);
      analysisSpool = new BucketSpool(join(spoolRoot, `analysis-${process.pid}-${Date.now()}-${randomBytes(4).toString('hex')}`), bits);
      rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects);
      const zero: SpoolState = { offset: 0, lines: 0, rows: 0, valid: 0, invalid: 0, invalidUtf8: 0, rejectsBytes: 0 };
      const { state, error } = await spoolPass(scan.scan, analysisSpool, rejects, zero,
        (st) => progress('reading', scan.source.bytesRead(), scan.source.info.size, st.rows));
      analysisSpool.flush();
      await rejects?.close();
      rejects = undefined;
      const counts = await countPass(mergeOptions(analysisSpool, filter, readCounts(state), 0, 'counting'));
      const result = report(counts, scan, {
        bytes: state.offset, invalidUtf8: state.invalidUtf8, dryRun: o.confirm.mode === 'dry-run', error: error ?? null,
      });
      if (o.confirm.mode === 'dry-run') return result;
      const answer = o.confirm.mode === 'count' ? o.confirm.count : await o.confirm.ask(result);
      if (answer !== counts.unique) return { ...result, expectedCount: answer ?? null, durationMs: Math.round(performance.now() - started) };
      expectedUnique = counts.unique;
      analysed = { state, scan, error };
    }

    let job = o.jobId !== undefined ? await reservedJobToResume(store, o.jobId) : await findResumable(store, fingerprint, o, label);
    const resumed = job !== undefined;
    o.onEvent({ type: 'phase', phase: 'importing' });
    const cp = job?.checkpoint;
    const reading = analysed === undefined && (cp === undefined || cp.phase === 'spool');
    // The header and column are read before a job exists, so that a file with no usable email
    // column leaves no job behind.
    const scan = analysed?.scan ?? await open(spec, o, pool, cp?.spool.bits ?? bits,
      cp && cp.offset > 0 ? { offset: cp.offset, lines: cp.lines, rows: cp.counts.rows } : undefined);
    if (job !== undefined && analysed !== undefined && job.checkpoint.phase === 'spool') {
      // The analysis just read the whole file: its spool replaces the job's unfinished one.
      rmSync(job.checkpoint.spool.dir, { recursive: true, force: true });
      job = { ...job, checkpoint: {
        ...job.checkpoint, phase: 'merge', bucket: 0, ...stoppedBy(analysed.error),
        spool: { ...job.checkpoint.spool, dir: adopt(analysisSpool as BucketSpool, spoolRoot, job.id) },
      } };
      analysisSpool = undefined;
    }
    if (job === undefined) {
      const now = new Date().toISOString();
      const st = analysed?.state;
      job = await store.createJob({
        kind: 'import', origin: o.origin, state: 'importing', scope: o.scope, reason: o.reason, source: label, fingerprint,
        confirmed: o.confirm.mode === 'yes' ? 'yes' : 'count',
        confirmedCount: expectedUnique ?? null,
        createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
        checkpoint: {
          phase: st ? 'merge' : 'spool',
          offset: st?.offset ?? 0,
          lines: st?.lines ?? 0,
          counts: st ? readCounts(st) : emptyCounts(),
          rejectsBytes: st?.rejectsBytes ?? 0,
          invalidUtf8: st?.invalidUtf8 ?? 0,
          spool: { dir: '', bits, lengths: [] },
          bucket: 0,
          ...stoppedBy(analysed?.error),
        },
        error: null,
      }, (j) => {
        // The spool is in place under the job's name before the job record exists: a job in
        // the writing phase always finds its complete spool.
        const dir = analysisSpool ? adopt(analysisSpool, spoolRoot, j.id) : join(spoolRoot, `job-${j.id}`);
        analysisSpool = undefined;
        return { ...j, checkpoint: { ...j.checkpoint, spool: { ...j.checkpoint.spool, dir } } };
      }, o.jobId);
    } else {
      if (analysisSpool) {
        analysisSpool.remove();
        analysisSpool = undefined;
      }
      o.onEvent({ type: 'resumed', jobId: job.id, line: job.checkpoint.lines + 1, row: job.checkpoint.counts.rows + 1 });
      job = { ...job, state: 'importing', resumedCount: job.resumedCount + 1, updatedAt: new Date().toISOString() };
      await store.putJob(job);
    }

    let current = job;
    const spool = new BucketSpool(job.checkpoint.spool.dir, job.checkpoint.spool.bits);
    let failure: unknown;
    try {
      if (reading) {
        const start = current.checkpoint;
        spool.truncateTo(start.spool.lengths);
        rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects, start.offset > 0 ? start.rejectsBytes : undefined);
        const from: SpoolState = {
          offset: start.offset, lines: start.lines, rows: start.counts.rows, valid: start.counts.valid,
          invalid: start.counts.invalid, invalidUtf8: start.invalidUtf8, rejectsBytes: start.rejectsBytes,
        };
        const toCheckpoint = (st: SpoolState, lengths: number[]): JobRecord => ({
          ...current,
          updatedAt: new Date().toISOString(),
          checkpoint: {
            ...current.checkpoint, phase: 'spool', offset: st.offset, lines: st.lines, counts: readCounts(st),
            rejectsBytes: st.rejectsBytes, invalidUtf8: st.invalidUtf8, spool: { ...current.checkpoint.spool, lengths },
          },
        });
        const read = await spoolPass(scan.scan, spool, rejects, from,
          (st) => progress('reading', scan.source.bytesRead(), scan.source.info.size, st.rows),
          async (st, lengths) => {
            current = toCheckpoint(st, lengths);
            await store.putJob(current);
          });
        current = toCheckpoint(read.state, spool.flush());
        current = { ...current, checkpoint: { ...current.checkpoint, phase: 'merge', bucket: 0, ...stoppedBy(read.error) } };
        await store.putJob(current);
      }
      const cpNow = current.checkpoint;
      filter.ensureCapacity(filter.count + cpNow.counts.valid - cpNow.counts.unique);
      current = await writeMergePass(mergeOptions(spool, filter, cpNow.counts, cpNow.bucket, 'writing'), current, (j) => {
        current = j;
      });
    } catch (err) {
      failure = err;
    }
    // Every row before a broken record is written by now: the job fails with it.
    const broke = current.checkpoint.inputError;
    if (failure === undefined && broke !== undefined) failure = errorOfJob(broke);
    if (failure !== undefined) {
      const err = failure as OptoutError;
      await store.putJob({
        ...current,
        state: err.code === 'OPTOUT_ERR_ABORTED' ? 'interrupted' : 'failed',
        updatedAt: new Date().toISOString(),
        error: err.code === undefined ? { code: 'OPTOUT_ERR_STORE', message: err.message } : jobErrorOf(err),
      });
      if (err.code !== 'OPTOUT_ERR_ABORTED') spool.remove();
      throw err;
    }
    const counts = current.checkpoint.counts;
    const broken = countsMismatch(counts);
    if (broken) throw new OptoutError('OPTOUT_ERR_STORE', `Internal count mismatch: ${broken}`);
    const finishedAt = new Date().toISOString();
    const completed: JobRecord = { ...current, state: 'completed', updatedAt: finishedAt, finishedAt };
    await store.putJob(completed, store.audit({
      actor: o.origin.actor, action: 'import', key: null, job: current.id,
      unit: current.scope === ACCOUNT_WIDE ? null : current.scope,
      details: { source: label, reason: current.reason, ...counts },
    }));
    spool.remove();
    return report(counts, scan, {
      bytes: current.checkpoint.offset,
      invalidUtf8: current.checkpoint.invalidUtf8,
      jobId: current.id,
      confirmed: true,
      resumed,
    });
  } finally {
    for (const scan of scans) scan.source.close();
    analysisSpool?.remove();
    await rejects?.close();
    await pool.destroy();
    if (o.store === undefined) await store.close();
    if (stdinDir) await rm(stdinDir, { recursive: true, force: true });
  }
}

/** The checkpoint field that records a broken record which ended the reading, if one did. */
function stoppedBy(error: JobError | undefined): { inputError?: JobError } {
  return error === undefined ? {} : { inputError: error };
}

/** Moves a finished analysis spool under a job's name, so that the job writes from it. */
function adopt(spool: BucketSpool, root: string, jobId: string): string {
  const dir = join(root, `job-${jobId}`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(spool.dir, dir);
  return dir;
}
