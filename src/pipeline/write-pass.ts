import type { KeyFilter } from '../dedup/bloom.js';
import type { EntryBatch, LevelStore } from '../store/level-store.js';
import { decodeEntryValue, encodeEntryValue, holdKeyOfEntry } from '../store/keys.js';
import type { JobRecord } from '../store/jobs.js';
import type { RejectsFile } from '../report/rejects.js';
import { splitJoined, type ScannedChunk } from './scan.js';
import type { ImportCounts } from './stats.js';
import { ChunkKeyIndex } from './chunk-key-index.js';


interface ChunkOutcome {
  added: number;
  alreadySuppressed: number;
  duplicates: number;
  /** Keys this chunk added or now holds. */
  keys: ChunkKeyIndex;
}

/**
 * Sorts one chunk's keys into new entries, holds and duplicates, filling `batch`.
 *
 * Dedup needs no memory that grows with the file: a key the filter has never seen is new
 * (the common case, no I/O); a possible hit is settled by the store itself. An entry written by
 * this job, or a hold of this job, means "seen earlier in this file"; an entry of another job
 * means "already suppressed", and this job records that it holds the key too.
 */
async function classifyChunk(s: ScannedChunk, store: LevelStore, filter: KeyFilter, job: JobRecord, batch: EntryBatch,
  unwritten: ChunkKeyIndex | undefined): Promise<ChunkOutcome> {
  const r = s.result;
  const n = r.hashes.length / 3;
  const scope = job.scope;
  filter.ensureCapacity(filter.count + n);
  const keys = splitJoined(r.keys, n);
  const addressList = splitJoined(r.addresses, r.addressRows.length);
  const addresses = new Map<number, string>();
  r.addressRows.forEach((row, j) => addresses.set(row, addressList[j] as string));
  const h = r.hashes;
  const inChunk = new ChunkKeyIndex(keys, h);
  const maybe: number[] = [];
  const out: ChunkOutcome = { added: 0, alreadySuppressed: 0, duplicates: 0, keys: inChunk };

  const add = (i: number, key: string): void => {
    // In the filter before the batch is acknowledged: a check never sees a stored key as absent.
    filter.add(h[i * 3] as number, h[i * 3 + 1] as number);
    batch.putEntry(key, encodeEntryValue(job.id, addresses.get(i)));
    inChunk.add(i);
    out.added++;
  };

  for (let i = 0; i < n; i++) {
    if (filter.mightContain(h[i * 3] as number, h[i * 3 + 1] as number)) maybe.push(i);
    else add(i, keys[i] as string);
  }
  if (maybe.length === 0) return out;

  const entries = await store.getMany(maybe.map((i) => keys[i] as string));
  const ofOtherJob = maybe.filter((_, j) => {
    const v = entries[j];
    return v !== undefined && decodeEntryValue(v).jobId !== job.id;
  });
  const held = new Set<string>();
  if (ofOtherJob.length > 0) {
    const holds = await store.getMany(ofOtherJob.map((i) => holdKeyOfEntry(keys[i] as string, job.id)));
    ofOtherJob.forEach((i, j) => {
      if (holds[j] !== undefined) held.add(keys[i] as string);
    });
  }
  maybe.forEach((i, j) => {
    const key = keys[i] as string;
    const entry = entries[j];
    const h3 = h[i * 3 + 2] as number;
    if (inChunk.has(key, h3) || unwritten?.has(key, h3) || held.has(key) || (entry !== undefined && decodeEntryValue(entry).jobId === job.id)) {
      out.duplicates++;
    } else if (entry !== undefined) {
      out.alreadySuppressed++;
      batch.putHold(holdKeyOfEntry(key, job.id));
      inChunk.add(i);
    } else {
      add(i, key);
    }
  });
  return out;
}

/**
 * The writing pass. Each chunk becomes one atomic LevelDB batch holding its new entries, the
 * holds, the per-scope counters and the job's checkpoint, so a crash loses nothing that a
 * re-run would not redo identically.
 *
 * While one batch is being written (on libuv's thread pool), the next chunk is classified on
 * the main thread; its keys are checked against the keys of the batch still in flight, which
 * the store cannot show yet. Batches are submitted one at a time, in order.
 */
export async function writePass(scan: AsyncIterable<ScannedChunk>, store: LevelStore, filter: KeyFilter, job: JobRecord,
  rejects: RejectsFile | undefined, onChunk: (job: JobRecord) => void): Promise<JobRecord> {
  const counts: ImportCounts = { ...job.checkpoint.counts };
  let invalidUtf8 = job.checkpoint.invalidUtf8;
  const settle = async (pending: { write: Promise<void>; job: JobRecord }): Promise<void> => {
    await pending.write;
    onChunk(pending.job);
  };
  let inFlight: { write: Promise<void>; keys: ChunkKeyIndex; job: JobRecord } | undefined;
  try {
    for await (const s of scan) {
      const r = s.result;
      const batch = store.batch();
      let outcome: ChunkOutcome;
      try {
        outcome = await classifyChunk(s, store, filter, job, batch, inFlight?.keys);
        // Rejects first: the checkpoint then records a rejects length that is already on disk.
        await rejects?.write(r.rejects, s.baseLine, s.baseRow);
        if (inFlight) await settle(inFlight);
      } catch (err) {
        await store.discardBatch(batch);
        throw err;
      }
      inFlight = undefined;
      counts.rows += r.records;
      counts.valid += r.hashes.length / 3;
      counts.invalid += r.rejects.length;
      counts.duplicates += outcome.duplicates;
      counts.added += outcome.added;
      counts.alreadySuppressed += outcome.alreadySuppressed;
      counts.unique += outcome.added + outcome.alreadySuppressed;
      invalidUtf8 += r.invalidUtf8;
      job = {
        ...job,
        updatedAt: new Date().toISOString(),
        checkpoint: {
          offset: s.endOffset,
          lines: s.baseLine - 1 + r.lines,
          counts: { ...counts },
          rejectsBytes: rejects?.bytes ?? 0,
          invalidUtf8,
        },
      };
      const write = store.commitBatch(batch, new Map([[job.scope, outcome.added]]), job);
      // Awaited with the next chunk; until then a failure must not count as unhandled.
      write.catch(() => undefined);
      inFlight = { write, keys: outcome.keys, job };
    }
    if (inFlight) await settle(inFlight);
    inFlight = undefined;
  } finally {
    // Never leave a write running behind the caller's back, and when failing, still report the
    // last durable checkpoint: the job record written on failure must not go back in time.
    if (inFlight) await settle(inFlight).catch(() => undefined);
  }
  return job;
}
