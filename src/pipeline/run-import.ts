import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { OptoutError, throwIfAborted } from '../errors.js';
import { chooseEmailColumn, SAMPLE_CELLS, type EmailColumn } from '../csv/email-column.js';
import { detectCsvProvider, namedColumn, parseWhere, providerFilters, providerReasonColumn, type RowFilter } from '../csv/providers.js';
import { rowsPerReason } from '../csv/reasons.js';
import { createChunkPool, type ChunkPool } from '../workers/pool.js';
import { normalizeImportOptions, type ImportOptions, type NormalizedImportOptions } from '../options.js';
import { RejectsFile } from '../report/rejects.js';
import type { ImportReport } from '../report/summary.js';
import { splitSource, type Chunk, type HeaderRecord, type SplitSource } from '../source/chunks.js';
import { ndjsonAsCsv, openRecords, splitNdjson } from '../source/records.js';
import { describeSource, openSource, type OpenedSource, type SourceInfo, type SourceSpec } from '../source/open-source.js';
import { errorOfJob, jobErrorOf, type Checkpoint, type JobError, type JobFingerprint, type JobRecord } from '../store/jobs.js';
import { moveJob } from '../store/job-states.js';
import type { SuppressionReason } from '../store/jobs.js';
import { LevelStore } from '../store/level/level-store.js';
import { MemoryStore } from '../store/memory/memory-store.js';
import { openLedger } from '../store/open.js';
import { isPgUrl } from '../store/pg/url.js';
import { ScratchDir } from '../files/scratch.js';
import { ACCOUNT_WIDE, checkViewOf, type ChunkKeyCodec, type Ledger } from '../store/store.js';
import type { KeyFilter } from '../filter/bloom.js';
import { countPass, writeMergePass, type MergeOptions } from './merge-pass.js';
import { scanChunks, type ScannedChunk } from './scan.js';
import { BucketSpool, bucketBitsFor } from './spool.js';
import { spoolPass, type SpoolState } from './spool-pass.js';
import { audienceMembers, importMembers } from './zip-members.js';
import { countsMismatch, emptyCounts, type ImportCounts } from '../store/counts.js';

interface OpenedScan {
  source: OpenedSource;
  header: HeaderRecord;
  columnIndex: number;
  /** The first record is a header (else it is data, read with the rest). */
  hasHeader: boolean;
  /** `csv`, or the export recognised by its header. */
  format: string;
  /** The rows that are skipped, if any: a recognised export's flags, or `--where`. */
  filters: RowFilter[];
  /** The column of each row's own reason: `--reason-column`, or a recognised export's. */
  reasonColumn: number | undefined;
  /** The reason every row of a recognised export stands for, if it has one. */
  reason: SuppressionReason | undefined;
  /** NDJSON read line by line in the workers, under these keys; undefined for a source read as CSV text. */
  recordKeys: string[] | undefined;
  scan: AsyncGenerator<ScannedChunk>;
}

/** Where a job's reading resumes: its checkpoint's offset, lines and rows, and what its offset counts. */
interface ResumeAt {
  offset: number;
  lines: number;
  rows: number;
  /** The offset counts an NDJSON source's own bytes (Checkpoint `ndjsonLines`), not those of its CSV text. */
  ndjsonLines: boolean;
}

/** Opens the source, reads the header, picks the email column and starts the chunk scan. */
async function openScan(spec: SourceSpec, o: NormalizedImportOptions, pool: ChunkPool, bucketBits: number,
  resume?: ResumeAt): Promise<OpenedScan> {
  const source = openSource(spec, o.encoding, o.member);
  let header: HeaderRecord;
  let chunks: AsyncGenerator<Chunk>;
  let columnIndex: number;
  let hasHeader: boolean;
  let format: string;
  let filters: RowFilter[] = [];
  let reasonColumn: number | undefined;
  let reason: SuppressionReason | undefined;
  let recordKeys: string[] | undefined;
  try {
    const records = await openRecords(source.bytes, o.format);
    format = records.format;
    const splitOptions = {
      delimiter: o.delimiter,
      maxRecordBytes: o.maxRecordBytes,
      chunkBytes: o.chunkBytes,
      ...(resume ? { startOffset: resume.offset } : {}),
    };
    // NDJSON is read by the workers, line by line; as CSV text (on this thread) when its first
    // record is data or has no keys, and for a job whose checkpoint counted the CSV text's bytes.
    const lines = format === 'ndjson' && (resume === undefined || resume.ndjsonLines) ? await splitNdjson(records.bytes, splitOptions) : undefined;
    let split: SplitSource = lines ?? await splitSource(format === 'ndjson' ? ndjsonAsCsv(records.bytes) : records.bytes, splitOptions);
    const choose = (): Promise<EmailColumn> =>
      chooseEmailColumn(split.header.names, () => split.sample(SAMPLE_CELLS), { column: o.column, header: o.header });
    let choice = lines === undefined || lines.header.names.length > 0 ? await choose() : undefined;
    if (lines !== undefined && choice?.header !== true) {
      split = await splitSource(lines.csv(), splitOptions);
      choice = await choose();
    } else if (lines !== undefined) {
      recordKeys = lines.header.names;
    }
    header = split.header;
    ({ index: columnIndex, header: hasHeader } = choice as EmailColumn);
    chunks = hasHeader ? split.chunks : split.chunksWithHeader;
    const provider = hasHeader ? detectCsvProvider(header.names) : undefined;
    if (provider !== undefined) ({ format, reason } = provider);
    filters = o.where !== undefined ? [parseWhere(o.where, header.names, hasHeader)]
      : provider !== undefined && !o.allRows ? providerFilters(provider, header.names) : [];
    reasonColumn = o.reasonColumn !== undefined ? namedColumn(o.reasonColumn, header.names, hasHeader, '--reason-column')
      : provider !== undefined ? providerReasonColumn(provider, header.names) : undefined;
  } catch (err) {
    source.close();
    throw err;
  }
  const start = resume ? { line: resume.lines + 1, row: resume.rows }
    : { line: (hasHeader ? header.lines : header.skippedLines) + 1, row: 0 };
  const scan = scanChunks(chunks, pool, {
    delimiter: header.dialect.delimiter.charCodeAt(0),
    column: columnIndex,
    maxRecordBytes: o.maxRecordBytes,
    bucketBits,
    substitutes: source.substitutes(),
    filters: filters.map((f) => ({ column: f.column, values: f.values, keep: f.mode === 'keep' })),
    reasonColumn,
    recordKeys,
  }, start);
  return { source, header, columnIndex, hasHeader, format, filters, reasonColumn, reason, recordKeys, scan: abortable(scan, o.signal) };
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
    ...(o.header === undefined ? {} : { header: o.header }),
    ...(o.where === undefined ? {} : { where: o.where }),
    ...(o.allRows ? { allRows: true } : {}),
    ...(o.reasonColumn === undefined ? {} : { reasonColumn: o.reasonColumn }),
    ...(o.format === undefined ? {} : { format: o.format }),
    ...(o.member === undefined ? {} : { member: o.member }),
  };
}

/**
 * A job left in `importing` was cut off (we hold the import lease, so no other import job runs).
 * The one with the same file, content and options is resumed; the others are marked interrupted.
 * On a store that other machines share, a job whose spool is not on this one is not resumed here.
 */
async function findResumable(store: Ledger, fp: JobFingerprint, o: NormalizedImportOptions, label: string): Promise<JobRecord | undefined> {
  let match: JobRecord | undefined;
  for (const job of await store.listImports()) {
    if (job.state !== 'importing' && job.state !== 'interrupted') continue;
    // On a store that other machines share, a job whose spool is not on this one is theirs to resume.
    const here = store.supports.exclusive || existsSync(job.checkpoint.spool.dir);
    if (sameImport(job, fp, o, label) && here && match === undefined) match = job;
    else if (job.state === 'importing') await store.putJob(moveJob(job, 'interrupted'));
  }
  return match;
}

/** Whether a job imported the same file, unchanged, with the same options. */
function sameImport(job: JobRecord, fp: JobFingerprint, o: NormalizedImportOptions, label: string): boolean {
  return fp.path !== null && JSON.stringify(job.fingerprint) === JSON.stringify(fp) &&
    job.scope === o.scope && job.reason === o.reason && job.source === label;
}

/**
 * The last completed job that imported the same file: a run killed after its completion was
 * stored is not resumed but done, and running it again is a new import that adds nothing.
 */
async function completedBefore(store: Ledger, fp: JobFingerprint, o: NormalizedImportOptions, label: string): Promise<JobRecord | undefined> {
  return (await store.listImports()).filter((j) => j.state === 'completed' && sameImport(j, fp, o, label)).at(-1);
}

/** The job reserved by the caller (`jobId`). */
async function reservedJob(store: Ledger, jobId: string): Promise<JobRecord> {
  const job = await store.getJob(jobId);
  if (job === undefined || job.kind !== 'import') throw new OptoutError('OPTOUT_ERR_JOB_NOT_FOUND', `No import job has the id ${jobId}`);
  return job;
}

/** A reserved job resumes when it was cut off while importing: a reserved record has no spool until the pipeline first writes it. */
function resumesReserved(job: JobRecord): boolean {
  return (job.state === 'importing' || job.state === 'interrupted') && job.checkpoint.spool.dir !== '';
}

/** Copies stdin to a temporary file so that it can be read twice (analysis, then import). */
async function spoolStdin(spec: SourceSpec & { kind: 'stdin' }, path: string, signal: AbortSignal | undefined): Promise<void> {
  try {
    await pipeline(spec.stream, createWriteStream(path, { mode: 0o600 }), ...(signal ? [{ signal }] : []));
  } catch (err) {
    // Stopped while stdin was still open (Ctrl-C): the import stops at once, not at the end of the input.
    if (signal?.aborted) throw new OptoutError('OPTOUT_ERR_ABORTED', 'The import was interrupted', { cause: signal.reason });
    throw err;
  }
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Keys a source of this size may hold, to size the spool and the filter. */
function estimateKeys(size: number | null): number {
  return size === null ? 1 << 25 : Math.ceil(size / 24);
}

/**
 * Spool folders left by runs that cannot be resumed (a crashed analysis, a finished job, a job
 * that read stdin in a command-line run: nothing can read the same input again). Only for a
 * process that runs one import at a time: it would take the analysis of another.
 */
export async function removeOrphanSpools(store: Ledger): Promise<void> {
  const root = join(store.workDir, 'spool');
  if (!existsSync(root)) return;
  const readsStdin = (j: JobRecord): boolean => j.fingerprint.path === null && (j.origin?.via ?? 'cli') === 'cli';
  const live = new Set((await store.listImports())
    .filter((j) => (j.state === 'importing' || j.state === 'interrupted') && !readsStdin(j))
    .map((j) => j.checkpoint.spool.dir));
  for (const name of readdirSync(root)) {
    if (!live.has(join(root, name))) rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** What one import holds from start to end, and the helpers its phases share. */
interface ImportRun {
  o: NormalizedImportOptions;
  started: number;
  /** The source; stdin becomes a file when a confirmation must read it twice. */
  spec: SourceSpec;
  info: SourceInfo;
  label: string;
  /**
   * None for a dry run on a folder that holds no store: it must create nothing there, and
   * counts against an empty ledger (nothing is suppressed yet).
   */
  store: Ledger | undefined;
  /** What the analysis counts against and the writing phase writes to: the store, or that empty ledger. */
  ledger: MergeOptions['store'] & { close(): Promise<void> };
  pool: ChunkPool;
  /** The store's key filter; a ledger without one (PostgreSQL) is asked about every key. */
  filter: KeyFilter | undefined;
  bits: number;
  codec: ChunkKeyCodec;
  /** Every scan opened, to release its file even when it was not read to the end. */
  scans: OpenedScan[];
  /** This run's temporary files (the copy of stdin, the analysis spool), made on first use. */
  scratch: ScratchDir | undefined;
  rejects: RejectsFile | undefined;
  /** The analysis spool until a job adopts it. */
  analysisSpool: BucketSpool | undefined;
}

/** A run that writes: it has a store. */
type StoreRun = ImportRun & { store: Ledger };

function hasStore(run: ImportRun): run is StoreRun {
  return run.store !== undefined;
}

/** The run's folder for temporary files: in the store's own, or in the OS's when there is no store. */
function scratchOf(run: ImportRun): ScratchDir {
  // A store that other processes share clears nobody's files: its runs use the OS's, which are
  // cleared once their process is gone.
  run.scratch ??= run.store?.supports.exclusive === true ? ScratchDir.inStore(run.store.workDir) : ScratchDir.inOsTemp();
  return run.scratch;
}

function spoolRootOf(store: Ledger): string {
  return join(store.workDir, 'spool');
}

/** A confirmed analysis: what the job writes without reading the source again. */
interface Analysis {
  state: SpoolState;
  scan: OpenedScan;
  error: JobError | undefined;
  unique: number;
}

async function startRun(input: ImportOptions): Promise<ImportRun> {
  const o = normalizeImportOptions(input);
  const info = describeSource(o.source);
  const storeless = o.store === undefined && o.confirm.mode === 'dry-run' && !isPgUrl(o.db) && !LevelStore.exists(o.db);
  const store = storeless ? undefined : o.store ?? await openLedger(o.db, { purpose: `optout import ${info.name}` });
  const ledger: Ledger = store ?? new MemoryStore();
  let pool: ChunkPool | undefined;
  try {
    // A store opened by the caller (the server) may have other imports running; it cleans up at
    // start. So may a store that other processes write (the spools of their imports).
    if (o.store === undefined && store !== undefined && store.supports.exclusive) await removeOrphanSpools(store);
    pool = o.pool ?? createChunkPool(o.threads);
    return {
      o, started: performance.now(), spec: o.source, info, label: o.sourceLabel ?? info.name, store, ledger, pool,
      filter: await checkViewOf(ledger)?.filter(), bits: bucketBitsFor(estimateKeys(info.size)),
      codec: ledger.chunkKeyCodec(o.scope), scans: [], scratch: undefined, rejects: undefined, analysisSpool: undefined,
    };
  } catch (err) {
    if (o.pool === undefined) await pool?.destroy();
    if (o.store === undefined) await ledger.close();
    throw err;
  }
}

async function closeRun(run: ImportRun): Promise<void> {
  try {
    for (const scan of run.scans) scan.source.close();
    run.analysisSpool?.remove();
    await run.rejects?.close();
    // A pool the caller passed is the caller's to destroy.
    if (run.o.pool === undefined) await run.pool.destroy();
    if (run.o.store === undefined) await run.ledger.close();
  } finally {
    run.scratch?.remove();
  }
}

async function openRunScan(run: ImportRun, bits: number, resume?: ResumeAt): Promise<OpenedScan> {
  const scan = await openScan(run.spec, run.o, run.pool, bits, resume);
  run.scans.push(scan);
  return scan;
}

function reportOf(run: ImportRun, counts: ImportCounts, scan: OpenedScan,
  extra: Partial<ImportReport> & { bytes: number; invalidUtf8: number; ownReasons: number[] | undefined }): ImportReport {
  const { ownReasons, ...rest } = extra;
  const durationMs = performance.now() - run.started;
  return {
    ...counts,
    durationMs: Math.round(durationMs),
    rowsPerSecond: durationMs > 0 ? Math.round(counts.rows / (durationMs / 1000)) : 0,
    jobId: null,
    confirmed: false,
    dryRun: false,
    expectedCount: null,
    resumed: false,
    source: run.label,
    scope: run.o.scope,
    reason: run.o.reason,
    column: scan.hasHeader ? scan.header.names[scan.columnIndex] ?? String(scan.columnIndex + 1) : String(scan.columnIndex + 1),
    header: scan.hasHeader ? 'row' : 'none',
    format: scan.format,
    member: scan.source.member()?.name ?? null,
    skipRule: scan.filters.length === 0 ? null : scan.filters.map(describeFilter).join('; '),
    reasonColumn: scan.reasonColumn === undefined ? null : scan.hasHeader ? scan.header.names[scan.reasonColumn] ?? null : String(scan.reasonColumn + 1),
    delimiter: scan.header.dialect.delimiter,
    rejectsFile: run.o.rejects ?? null,
    reasons: rowsPerReason(counts.valid, ownReasons, run.o.reason),
    members: null,
    peakRssBytes: peakRss(),
    error: null,
    ...rest,
  };
}

function progress(run: ImportRun, phase: 'reading' | 'counting' | 'writing', done: number, total: number | null, rows: number): void {
  run.o.onProgress({ phase, done, total, rows, elapsedMs: performance.now() - run.started });
}

function mergeOptions(run: ImportRun, spool: BucketSpool, counts: ImportCounts, startBucket: number,
  phase: 'counting' | 'writing'): MergeOptions {
  return {
    spool, pool: run.pool, store: run.ledger, filter: run.filter, codec: run.codec, startBucket, counts,
    signal: run.o.signal, yieldEvery: run.o.yieldEvery,
    onBucket: (b, c) => progress(run, phase, b + 1, spool.buckets, c.unique + c.duplicates),
  };
}

function readCounts(st: SpoolState): ImportCounts {
  return { ...emptyCounts(), rows: st.rows, valid: st.valid, invalid: st.invalid, skipped: st.skipped };
}

/** The checkpoint's fields that a reading of the whole source sets. */
function readCheckpoint(st: SpoolState): Pick<Checkpoint, 'offset' | 'lines' | 'counts' | 'rejectsBytes' | 'invalidUtf8' | 'reasons'> {
  return { offset: st.offset, lines: st.lines, counts: readCounts(st), rejectsBytes: st.rejectsBytes, invalidUtf8: st.invalidUtf8, reasons: st.reasons };
}

/**
 * Confirmation comes first and writes nothing to the store, not even to resume a job: the
 * source is read into a spool of its own and counted. Resolves the report to return when the
 * import ends here (a dry run, a count that does not match), else the confirmed analysis.
 */
async function analyse(run: ImportRun): Promise<{ done: ImportReport } | { confirmed: Analysis }> {
  const o = run.o;
  if (run.spec.kind === 'stdin' && o.confirm.mode !== 'dry-run') {
    o.onEvent({ type: 'spooling' });
    const path = join(scratchOf(run).path, 'stdin');
    await spoolStdin(run.spec, path, o.signal);
    run.spec = { kind: 'file', path };
  }
  o.onEvent({ type: 'phase', phase: 'analyzing' });
  const scan = await openRunScan(run, run.bits);
  takeExportReason(run, scan);
  run.analysisSpool = new BucketSpool(join(scratchOf(run).path, 'analysis'), run.bits);
  run.rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects);
  const zero: SpoolState = { offset: 0, lines: 0, rows: 0, valid: 0, invalid: 0, skipped: 0, invalidUtf8: 0, rejectsBytes: 0, reasons: [] };
  const { state, error } = await spoolPass(scan.scan, run.analysisSpool, run.rejects, zero,
    (st) => progress(run, 'reading', scan.source.bytesRead(), scan.source.info.size, st.rows));
  run.analysisSpool.flush();
  await run.rejects?.close();
  run.rejects = undefined;
  const counts = await countPass(mergeOptions(run, run.analysisSpool, readCounts(state), 0, 'counting'));
  const result = reportOf(run, counts, scan, {
    bytes: state.offset, invalidUtf8: state.invalidUtf8, ownReasons: state.reasons, dryRun: o.confirm.mode === 'dry-run', error: error ?? null,
  });
  if (o.confirm.mode === 'dry-run') return { done: result };
  const confirm = o.confirm;
  const answer = confirm.mode === 'count' ? confirm.count : confirm.mode === 'ask' ? await confirm.ask(result) : undefined;
  if (answer !== counts.unique) {
    return { done: { ...result, expectedCount: answer ?? null, durationMs: Math.round(performance.now() - run.started) } };
  }
  return { confirmed: { state, scan, error, unique: counts.unique } };
}

/**
 * The job this run writes: a reserved one (an upload), the interrupted one with the same file
 * and options (resumed from its checkpoint), or a new one. The header and column are read
 * before a new job exists, so that a file with no usable email column leaves no job behind.
 */
async function adoptOrCreateJob(run: StoreRun, analysed: Analysis | undefined): Promise<{
  job: JobRecord; resumed: boolean; reading: boolean; scan: OpenedScan;
}> {
  // The job to resume is found by its reason: an export's own must be known first. Stdin can be
  // read once only: it keeps the default.
  if (analysed === undefined && !run.o.reasonGiven && run.spec.kind === 'file') {
    const probe = await openRunScan(run, run.bits);
    probe.source.close();
    takeExportReason(run, probe);
  }
  const { o, store } = run;
  const fingerprint = fingerprintOf(run.info, o);
  const reserved = o.jobId === undefined ? undefined : await reservedJob(store, o.jobId);
  let job = reserved !== undefined ? (resumesReserved(reserved) ? reserved : undefined) : await findResumable(store, fingerprint, o, run.label);
  const resumed = job !== undefined;
  o.onEvent({ type: 'phase', phase: 'importing' });
  const cp = job?.checkpoint;
  const reading = analysed === undefined && (cp === undefined || cp.phase === 'spool');
  const scan = analysed?.scan ?? await openRunScan(run, cp?.spool.bits ?? run.bits,
    cp && cp.offset > 0 ? { offset: cp.offset, lines: cp.lines, rows: cp.counts.rows, ndjsonLines: cp.ndjsonLines === true } : undefined);
  if (job !== undefined && analysed !== undefined && job.checkpoint.phase === 'spool') {
    // The analysis just read the whole file: its spool, and what it counted, replace the job's
    // unfinished reading (whose counts cover only the part it had read).
    rmSync(job.checkpoint.spool.dir, { recursive: true, force: true });
    job = { ...job, checkpoint: {
      ...job.checkpoint, ...readCheckpoint(analysed.state), ...offsetsOf(scan), phase: 'merge', bucket: 0, ...stoppedBy(analysed.error),
      spool: { ...job.checkpoint.spool, bits: run.bits, dir: adopt(run.analysisSpool as BucketSpool, spoolRootOf(store), job.id) },
    } };
    run.analysisSpool = undefined;
  }
  if (job === undefined) {
    const before = o.jobId === undefined ? await completedBefore(store, fingerprint, o, run.label) : undefined;
    if (before) o.onEvent({ type: 'repeated', jobId: before.id, finishedAt: before.finishedAt });
    const now = new Date().toISOString();
    const st = analysed?.state;
    // A reserved job keeps the server recorded as holding it (manage/job-holders.ts).
    const holder = reserved?.holder;
    job = await store.createJob({
      kind: 'import', origin: o.origin, ...(holder === undefined ? {} : { holder }), state: 'importing', scope: o.scope, reason: o.reason, source: run.label, fingerprint,
      confirmed: o.confirm.mode === 'yes' ? 'yes' : 'count',
      confirmedCount: analysed?.unique ?? null,
      createdAt: now, updatedAt: now, finishedAt: null, resumedCount: 0,
      checkpoint: {
        phase: st ? 'merge' : 'spool',
        ...(st ? readCheckpoint(st) : { offset: 0, lines: 0, counts: emptyCounts(), rejectsBytes: 0, invalidUtf8: 0 }),
        spool: { dir: '', bits: run.bits, lengths: [] },
        bucket: 0,
        ...offsetsOf(scan),
        ...stoppedBy(analysed?.error),
      },
      error: null,
    }, (j) => {
      // The spool is in place under the job's name before the job record exists: a job in
      // the writing phase always finds its complete spool.
      const dir = run.analysisSpool ? adopt(run.analysisSpool, spoolRootOf(store), j.id) : join(spoolRootOf(store), `job-${j.id}`);
      run.analysisSpool = undefined;
      return { ...j, checkpoint: { ...j.checkpoint, spool: { ...j.checkpoint.spool, dir } } };
    }, o.jobId);
    return { job, resumed, reading, scan };
  }
  if (run.analysisSpool) {
    run.analysisSpool.remove();
    run.analysisSpool = undefined;
  }
  o.onEvent({ type: 'resumed', jobId: job.id, line: job.checkpoint.lines + 1, row: job.checkpoint.counts.rows + 1 });
  job = moveJob(job, 'importing', { resumedCount: job.resumedCount + 1 });
  await store.putJob(job);
  return { job, resumed, reading, scan };
}

/**
 * The reading phase of a job: the source, from the checkpoint's offset on, into the job's
 * spool, checkpointed every few chunks; it ends in the writing phase's first checkpoint.
 * `onCheckpoint` hears of every durable checkpoint.
 */
async function readPhase(run: StoreRun, job: JobRecord, scan: OpenedScan, spool: BucketSpool,
  onCheckpoint: (job: JobRecord) => void): Promise<JobRecord> {
  const { o, store } = run;
  let current = job;
  const start = current.checkpoint;
  spool.truncateTo(start.spool.lengths);
  run.rejects = o.rejects === undefined ? undefined : await RejectsFile.open(o.rejects, start.offset > 0 ? start.rejectsBytes : undefined);
  const from: SpoolState = {
    offset: start.offset, lines: start.lines, rows: start.counts.rows, valid: start.counts.valid,
    invalid: start.counts.invalid, skipped: start.counts.skipped ?? 0, invalidUtf8: start.invalidUtf8, rejectsBytes: start.rejectsBytes,
    reasons: start.reasons ?? [],
  };
  const toCheckpoint = (st: SpoolState, lengths: number[]): JobRecord => ({
    ...current,
    updatedAt: new Date().toISOString(),
    checkpoint: {
      ...current.checkpoint, phase: 'spool', offset: st.offset, lines: st.lines, counts: readCounts(st),
      rejectsBytes: st.rejectsBytes, invalidUtf8: st.invalidUtf8, spool: { ...current.checkpoint.spool, lengths }, reasons: st.reasons,
    },
  });
  const read = await spoolPass(scan.scan, spool, run.rejects, from,
    (st) => progress(run, 'reading', scan.source.bytesRead(), scan.source.info.size, st.rows),
    async (st, lengths) => {
      current = toCheckpoint(st, lengths);
      await store.putJob(current);
      onCheckpoint(current);
    });
  current = toCheckpoint(read.state, spool.flush());
  current = { ...current, checkpoint: { ...current.checkpoint, phase: 'merge', bucket: 0, ...stoppedBy(read.error) } };
  await store.putJob(current);
  onCheckpoint(current);
  return current;
}

/** The writing phase of a job: its spool's buckets, one atomic chunk each, from its checkpoint on. */
async function writePhase(run: StoreRun, job: JobRecord, spool: BucketSpool, onDurable: (job: JobRecord) => void): Promise<JobRecord> {
  const cp = job.checkpoint;
  run.filter?.ensureCapacity(run.filter.count + cp.counts.valid - cp.counts.unique);
  return writeMergePass(mergeOptions(run, spool, cp.counts, cp.bucket, 'writing'), job, onDurable);
}

const RESUME_HINT = /run the same import again/i;

/**
 * Ends the job: `completed` with its audit record, or `failed` (`interrupted` when aborted or
 * when the store failed) with
 * the error, which is thrown. Every row before a broken record is written by now: the job
 * fails with it.
 */
async function finishJob(run: StoreRun, job: JobRecord, spool: BucketSpool, scan: OpenedScan, resumed: boolean,
  failure: unknown): Promise<ImportReport> {
  const { o, store } = run;
  const broke = job.checkpoint.inputError;
  if (failure === undefined && broke !== undefined) failure = errorOfJob(broke);
  if (failure !== undefined) {
    let err = failure as OptoutError;
    // What the job wrote is exact and its spool whole: a store that failed (a database that went
    // away, a connection that broke) leaves it to be resumed by the same command, not redone.
    const resumable = err.code === 'OPTOUT_ERR_ABORTED' || err.code === 'OPTOUT_ERR_STORE';
    if (err.code === 'OPTOUT_ERR_STORE' && !RESUME_HINT.test(err.message)) {
      err = new OptoutError('OPTOUT_ERR_STORE', `${err.message}. Job ${job.id} keeps what it wrote: run the same import again to resume it`, { cause: err });
    }
    try {
      await store.putJob(moveJob(job, resumable ? 'interrupted' : 'failed', {
        error: err.code === undefined ? { code: 'OPTOUT_ERR_STORE', message: err.message } : jobErrorOf(err),
      }));
    } catch (recording) {
      // The store that failed the job may refuse its record too; the job then stays `importing`,
      // which the next run resumes the same way. The error that ended it is the one to tell.
      if (!resumable) throw recording;
    }
    if (!resumable) spool.remove();
    throw err;
  }
  const counts = job.checkpoint.counts;
  const broken = countsMismatch(counts);
  if (broken) throw new OptoutError('OPTOUT_ERR_STORE', `Internal count mismatch: ${broken}`);
  const finishedAt = new Date().toISOString();
  await store.putJob(moveJob(job, 'completed', { finishedAt }), store.audit({
    actor: o.origin.actor, action: 'import', key: null, job: job.id,
    unit: job.scope === ACCOUNT_WIDE ? null : job.scope,
    details: { source: run.label, reason: job.reason, ...counts, reasons: rowsPerReason(counts.valid, job.checkpoint.reasons, job.reason) },
  }));
  spool.remove();
  return reportOf(run, counts, scan, {
    bytes: job.checkpoint.offset, invalidUtf8: job.checkpoint.invalidUtf8, ownReasons: job.checkpoint.reasons, jobId: job.id, confirmed: true, resumed,
  });
}

/**
 * Imports an opt-out list in two phases. Reading: workers parse the CSV and spread the valid
 * keys over spool files by hash. Writing: each spool file is deduplicated exactly (every copy
 * of a key is in the same file) and written as one atomic chunk. A confirmation runs the same
 * reading and a counting pass first, writing nothing to the store until the count matches.
 * A run with the same file and options as an interrupted job resumes it from its checkpoint.
 *
 * The job itself (adopted or created, read, written, finished) runs under the store's import
 * lease: imports started at once on one store take turns, whoever started them.
 *
 * A broken record ends the reading: the rows before it are counted, confirmed and written as
 * any others, then the job fails and the error is thrown. A report returned without writing
 * (a dry run, no confirmation) carries it in `error`.
 */
export async function runImport(input: ImportOptions): Promise<ImportReport> {
  const audience = await audienceMembers(input);
  if (audience !== undefined) return importMembers(input, audience, runImport);
  const run = await startRun(input);
  try {
    let analysed: Analysis | undefined;
    if (run.o.confirm.mode !== 'yes') {
      const outcome = await analyse(run);
      if ('done' in outcome) return outcome.done;
      analysed = outcome.confirmed;
    }
    if (!hasStore(run)) throw new OptoutError('OPTOUT_ERR_INTERNAL', 'Only a dry run goes without a store');
    return await run.store.withImportLease(async () => {
      const { job, resumed, reading, scan } = await adoptOrCreateJob(run, analysed);
      await run.store.takeJob?.(job.id);
      const spool = new BucketSpool(job.checkpoint.spool.dir, job.checkpoint.spool.bits);
      // The last durable state of the job, which a failure is recorded over.
      let current = job;
      const track = (j: JobRecord): void => {
        current = j;
      };
      let failure: unknown;
      try {
        if (reading) current = await readPhase(run, current, scan, spool, track);
        current = await writePhase(run, current, spool, track);
      } catch (err) {
        failure = err;
      }
      return finishJob(run, current, spool, scan, resumed, failure);
    }, { onWait: () => run.o.onEvent({ type: 'waiting' }) });
  } finally {
    await closeRun(run);
  }
}

/** A recognised export's reason replaces the default one (never one the user gave). */
function takeExportReason(run: ImportRun, scan: OpenedScan): void {
  if (!run.o.reasonGiven && scan.reason !== undefined) run.o = { ...run.o, reason: scan.reason };
}

function describeFilter(f: RowFilter): string {
  const values = f.values.map((v) => (v === '' ? '(empty)' : v)).join(' or ');
  return f.mode === 'skip' ? `${f.name} is ${values}` : `${f.name} is not ${values}`;
}

/** The checkpoint field that says its offsets count an NDJSON source's own bytes and lines, when they do. */
function offsetsOf(scan: OpenedScan): { ndjsonLines?: true } {
  return scan.recordKeys === undefined ? {} : { ndjsonLines: true };
}

/** The checkpoint field that records a broken record which ended the reading, if one did. */
function stoppedBy(error: JobError | undefined): { inputError?: JobError } {
  return error === undefined ? {} : { inputError: error };
}

/** Moves a finished analysis spool under a job's name, so that the job writes from it. */
function adopt(spool: BucketSpool, root: string, jobId: string): string {
  const dir = join(root, `job-${jobId}`);
  mkdirSync(root, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(spool.dir, dir);
  return dir;
}
