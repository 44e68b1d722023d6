import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { OptoutError } from '../errors.js';
import { pickEmailColumn } from '../csv/header.js';
import { createChunkPool, type ChunkPool } from '../normalize/pool.js';
import { normalizeImportOptions, type ImportOptions, type NormalizedImportOptions } from '../options.js';
import { RejectsFile } from '../report/rejects.js';
import type { ImportReport } from '../report/summary.js';
import { splitSource, type HeaderRecord } from '../source/chunks.js';
import { describeSource, openSource, type OpenedSource, type SourceInfo, type SourceSpec } from '../source/open-source.js';
import type { JobFingerprint, JobRecord } from '../store/jobs.js';
import { LevelStore } from '../store/level-store.js';
import { entryKeyPrefix } from '../store/keys.js';
import { analyzePass } from './analyze.js';
import { scanChunks, type ScannedChunk } from './scan.js';
import { countsMismatch, emptyCounts, type ImportCounts } from './stats.js';
import { writePass } from './write-pass.js';

interface OpenedScan {
  source: OpenedSource;
  header: HeaderRecord;
  columnIndex: number;
  scan: AsyncGenerator<ScannedChunk>;
}

/** Opens the source, reads the header, picks the email column and starts the chunk scan. */
async function openScan(spec: SourceSpec, o: NormalizedImportOptions, pool: ChunkPool, resume?: { offset: number; lines: number; rows: number }): Promise<OpenedScan> {
  const source = openSource(spec, o.encoding);
  const { header, chunks } = await splitSource(source.bytes, {
    delimiter: o.delimiter,
    maxRecordBytes: o.maxRecordBytes,
    chunkBytes: o.chunkBytes,
    ...(resume ? { startOffset: resume.offset } : {}),
  });
  const columnIndex = pickEmailColumn(header.names, o.column);
  const start = resume ? { line: resume.lines + 1, row: resume.rows } : { line: header.lines + 1, row: 0 };
  const scan = scanChunks(chunks, pool, {
    delimiter: header.dialect.delimiter.charCodeAt(0),
    eol: header.dialect.eol,
    column: columnIndex,
    maxRecordBytes: o.maxRecordBytes,
    keyPrefix: entryKeyPrefix(o.scope),
  }, start);
  return { source, header, columnIndex, scan: abortable(scan, o.signal) };
}

async function* abortable<T>(it: AsyncGenerator<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  for await (const item of it) {
    if (signal?.aborted) throw new OptoutError('OPTOUT_ERR_ABORTED', 'The import was interrupted', { cause: signal.reason });
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
  for (const job of await store.listJobs()) {
    if (job.state !== 'importing' && job.state !== 'interrupted') continue;
    const same = fp.path !== null && JSON.stringify(job.fingerprint) === JSON.stringify(fp) &&
      job.scope === o.scope && job.reason === o.reason && job.source === label;
    if (same && match === undefined) match = job;
    else if (job.state === 'importing') await store.putJob({ ...job, state: 'interrupted', updatedAt: new Date().toISOString() });
  }
  return match;
}

/** Copies stdin to a temporary file so that it can be read twice (analysis, then import). */
async function spool(spec: SourceSpec & { kind: 'stdin' }): Promise<{ path: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'optout-stdin-'));
  const path = join(dir, 'stdin');
  await pipeline(spec.stream, createWriteStream(path));
  return { path, dir };
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * Imports an opt-out list: analyses it when a confirmation is needed (nothing is written unless
 * the confirmed count matches), then writes it in checkpointed batches. A run with the same
 * file and options as an interrupted job resumes that job from its last checkpoint.
 */
export async function runImport(input: ImportOptions): Promise<ImportReport> {
  const o = normalizeImportOptions(input);
  const started = performance.now();
  let spec = o.source;
  const info = describeSource(spec);
  const label = o.sourceLabel ?? info.name;
  const store = await LevelStore.open(o.db, { purpose: `optout import ${info.name}` });
  const pool = createChunkPool(o.threads);
  let spoolDir: string | undefined;
  let rejects: RejectsFile | undefined;

  const report = (counts: ImportCounts, scan: OpenedScan, extra: Partial<ImportReport> & { bytes: number; invalidUtf8: number }): ImportReport => {
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
      column: scan.header.names[scan.columnIndex] ?? String(scan.columnIndex + 1),
      delimiter: scan.header.dialect.delimiter,
      rejectsFile: o.rejects ?? null,
      peakRssBytes: peakRss(),
      ...extra,
    };
  };

  const progress = (phase: 'analyzing' | 'importing', scan: OpenedScan, rows: number): void => {
    o.onProgress({ phase, bytesRead: scan.source.bytesRead(), totalBytes: scan.source.info.size, rows, elapsedMs: performance.now() - started });
  };

  try {
    const fingerprint = fingerprintOf(info, o);
    const filter = await store.filter();
    let expectedUnique: number | undefined;

    // Confirmation comes first and writes nothing, not even to resume an interrupted job.
    if (o.confirm.mode !== 'yes') {
      if (spec.kind === 'stdin' && o.confirm.mode !== 'dry-run') {
        o.onEvent({ type: 'spooling' });
        const spooled = await spool(spec);
        spoolDir = spooled.dir;
        spec = { kind: 'file', path: spooled.path };
      }
      o.onEvent({ type: 'phase', phase: 'analyzing' });
      const scan = await openScan(spec, o, pool);
      rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects);
      const result = await analyzePass(scan.scan, store, filter, rejects, (c) => progress('analyzing', scan, c.rows));
      await rejects?.close();
      rejects = undefined;
      const analysed = report(result.counts, scan, { bytes: result.bytes, invalidUtf8: result.invalidUtf8, dryRun: o.confirm.mode === 'dry-run' });
      if (o.confirm.mode === 'dry-run') return analysed;
      const answer = o.confirm.mode === 'count' ? o.confirm.count : await o.confirm.ask(analysed);
      if (answer !== result.counts.unique) return { ...analysed, expectedCount: answer ?? null, durationMs: Math.round(performance.now() - started) };
      expectedUnique = result.counts.unique;
    }

    let job = await findResumable(store, fingerprint, o, label);
    const resumed = job !== undefined;
    const cp = job?.checkpoint;
    o.onEvent({ type: 'phase', phase: 'importing' });
    // The header and column are read before a job exists, so that a file with no usable
    // email column leaves no job behind.
    const scan = await openScan(spec, o, pool, cp && cp.offset > 0 ? { offset: cp.offset, lines: cp.lines, rows: cp.counts.rows } : undefined);
    if (job === undefined) {
      const now = new Date().toISOString();
      job = await store.createJob({
        kind: 'import',
        state: 'importing',
        scope: o.scope,
        reason: o.reason,
        source: label,
        fingerprint,
        confirmed: o.confirm.mode === 'yes' ? 'yes' : 'count',
        confirmedCount: expectedUnique ?? null,
        createdAt: now,
        updatedAt: now,
        finishedAt: null,
        resumedCount: 0,
        checkpoint: { offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0 },
        error: null,
      });
    } else {
      o.onEvent({ type: 'resumed', jobId: job.id, line: job.checkpoint.lines + 1, row: job.checkpoint.counts.rows + 1 });
      job = { ...job, state: 'importing', resumedCount: job.resumedCount + 1, updatedAt: new Date().toISOString() };
      await store.putJob(job);
    }
    const start = job.checkpoint;
    filter.ensureCapacity(filter.count + (expectedUnique ?? estimateKeys(scan.source.info.size) - start.counts.unique));
    rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects, start.offset > 0 ? start.rejectsBytes : undefined);
    let current = job;
    try {
      current = await writePass(scan.scan, store, filter, job, rejects, (j) => {
        current = j;
        progress('importing', scan, j.checkpoint.counts.rows);
      });
    } catch (err) {
      const aborted = (err as OptoutError).code === 'OPTOUT_ERR_ABORTED';
      await store.putJob({
        ...current,
        state: aborted ? 'interrupted' : 'failed',
        updatedAt: new Date().toISOString(),
        error: { code: (err as OptoutError).code ?? 'OPTOUT_ERR_STORE', message: (err as Error).message },
      });
      throw err;
    }
    const counts = current.checkpoint.counts;
    const broken = countsMismatch(counts);
    if (broken) throw new OptoutError('OPTOUT_ERR_STORE', `Internal count mismatch: ${broken}`);
    const finishedAt = new Date().toISOString();
    await store.putJob({ ...current, state: 'completed', updatedAt: finishedAt, finishedAt });
    return report(counts, scan, {
      bytes: current.checkpoint.offset,
      invalidUtf8: current.checkpoint.invalidUtf8,
      jobId: current.id,
      confirmed: true,
      resumed,
    });
  } finally {
    await rejects?.close();
    await pool.destroy();
    await store.close();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

/** Keys a file of this size may hold, to size the filter once rather than grow it in layers. */
function estimateKeys(size: number | null): number {
  return size === null ? 1 << 20 : Math.ceil(size / 24);
}
