import { ledgerChecker } from '../check/ledger-checker.js';
import { chooseEmailColumn, SAMPLE_CELLS } from '../csv/email-column.js';
import { OptoutError } from '../errors.js';
import { createChunkPool, type ChunkPool } from '../workers/pool.js';
import { scanWith } from '../pipeline/scan.js';
import { splitSource } from '../source/chunks.js';
import { describeSource, openSource, type OpenedSource } from '../source/open-source.js';
import { openLedger } from '../store/open.js';
import { normalizeScrubOptions, type ScrubOptions } from './options.js';
import { PendingFile } from './pending-file.js';
import type { ScrubReport } from './report.js';
import { keysOfChunk, RowSorter } from './rows.js';

/**
 * The send list's email column, as an import finds it (`--column`, a header name, then the one
 * column whose cells are addresses). A send list needs its header: the eligible file repeats it,
 * and a first line that is itself a recipient would otherwise pass through unchecked as a header.
 */
async function sendListColumn(names: string[], sample: () => Promise<string[][]>, column: string | undefined): Promise<number> {
  const choice = await chooseEmailColumn(names, sample, { column });
  if (!choice.header) {
    throw new OptoutError('OPTOUT_ERR_NO_EMAIL_COLUMN', `The send list has no header: its first line's column ${choice.index + 1} ` +
      'is an address. Add a header line (the eligible file repeats it) and scrub again.', { location: { line: 1, column: choice.index + 1 } });
  }
  return choice.index;
}

function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OptoutError('OPTOUT_ERR_ABORTED', 'The scrub was interrupted; no output was written', { cause: signal.reason });
}

/**
 * Filters a campaign send list through the suppression store: every row that may be sent goes
 * to `out` as it was written, every other row (suppressed, or not a valid address) to `removed`
 * with the reason. Workers parse the chunks and normalize and hash the addresses; the main
 * thread decides each row as `optout check` would (key filter first, LevelDB only on a possible
 * hit) and copies the rows' bytes. Rows keep their order; duplicates stay (a send list may
 * repeat an address). Both files appear only when the whole list is done; on any error, a store
 * that cannot answer included, neither does.
 */
export async function runScrub(input: ScrubOptions): Promise<ScrubReport> {
  const o = normalizeScrubOptions(input);
  const started = performance.now();
  const info = describeSource(o.source);
  stopIfAborted(o.signal);
  // Never created here: a scrub against a store that holds nothing would pass the whole list.
  const store = await openLedger(o.db, { purpose: `optout scrub ${info.name}`, create: false });
  let pool: ChunkPool | undefined;
  let source: OpenedSource | undefined;
  const pending: PendingFile[] = [];
  try {
    const { checker, needsKeys, prepare } = await ledgerChecker(store, { filter: true });
    source = openSource(o.source, o.encoding);
    const split = await splitSource(source.bytes, {
      delimiter: o.delimiter, maxRecordBytes: o.maxRecordBytes, chunkBytes: o.chunkBytes,
    });
    const { header, chunks } = split;
    const columnIndex = await sendListColumn(header.names, () => split.sample(SAMPLE_CELLS), o.column);
    const sorter = new RowSorter(checker, o.check, header, o.removed !== undefined);
    const headers = sorter.headers;
    const out = await PendingFile.open(o.out, '--out');
    pending.push(out);
    const removed = o.removed === undefined ? undefined : await PendingFile.open(o.removed, '--removed');
    if (removed) pending.push(removed);
    await out.write(headers.eligible);
    await removed?.write(headers.removed);

    // A pool the caller passed stays the caller's: only one made here is destroyed.
    const workers = o.pool ?? createChunkPool(o.threads);
    if (o.pool === undefined) pool = workers;
    const task = {
      delimiter: header.dialect.delimiter.charCodeAt(0), column: columnIndex, maxRecordBytes: o.maxRecordBytes,
      substitutes: source.substitutes(),
    };
    const scan = scanWith(chunks, workers.threads, (bytes, final) => workers.scrub({ ...task, bytes, final }),
      { line: header.lines + 1, row: 0 });
    let bytes = header.byteLength;
    let invalidUtf8 = 0;
    for await (const chunk of scan) {
      stopIfAborted(o.signal);
      if (needsKeys) await prepare(keysOfChunk(chunk.result));
      const sorted = sorter.sort(chunk);
      // Recorded before the rows can reach the output, as a check records before it answers.
      await checker.recordKeys(o.check, sorted.legalBasisKeys);
      await out.write(sorted.eligible);
      if (sorted.removed) await removed?.write(sorted.removed);
      bytes = chunk.endOffset;
      invalidUtf8 += chunk.result.invalidUtf8;
      o.onProgress({ done: source.bytesRead(), total: info.size, rows: sorter.counts.rows, elapsedMs: performance.now() - started });
    }

    const c = sorter.counts;
    if (c.rows !== c.eligible + c.suppressed + c.invalid) {
      throw new OptoutError('OPTOUT_ERR_INTERNAL', `Internal count mismatch: rows ${c.rows} != eligible ${c.eligible} + ` +
        `suppressed ${c.suppressed} + invalid ${c.invalid}`);
    }
    // The eligible file last: it is the one a sender picks up.
    await removed?.commit();
    await out.commit();
    pending.length = 0;
    const durationMs = performance.now() - started;
    return {
      ...c,
      durationMs: Math.round(durationMs),
      rowsPerSecond: durationMs > 0 ? Math.round(c.rows / (durationMs / 1000)) : 0,
      source: info.name,
      unit: o.check.unit ?? '*',
      type: o.check.type,
      column: header.names[columnIndex] ?? String(columnIndex + 1),
      delimiter: header.dialect.delimiter,
      out: input.out,
      removed: input.removed ?? null,
      bytes,
      invalidUtf8,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } catch (err) {
    for (const f of pending) await f.discard();
    throw err;
  } finally {
    source?.close();
    await pool?.destroy();
    await store.close();
  }
}
