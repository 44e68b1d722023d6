import { FingerprintSet } from '../dedup/fingerprint-set.js';
import type { KeyFilter } from '../dedup/bloom.js';
import type { LevelStore } from '../store/level-store.js';
import type { RejectsFile } from '../report/rejects.js';
import { splitJoined, type ScannedChunk } from './scan.js';
import { emptyCounts, type ImportCounts } from './stats.js';

export interface PassResult {
  counts: ImportCounts;
  invalidUtf8: number;
  /** Decoded bytes read up to the last complete record. */
  bytes: number;
}

/**
 * The read-only pass behind `--dry-run` and confirmation: the same counts an import would
 * report, with nothing written to the store. Distinct keys are counted by 96-bit fingerprint
 * (about 20 bytes per distinct address; a collision among 100M keys has odds near 1e-13), and
 * keys new to the file are looked up in the store only when the filter says they may be there.
 */
export async function analyzePass(scan: AsyncIterable<ScannedChunk>, store: LevelStore, filter: KeyFilter,
  rejects: RejectsFile | undefined, onChunk: (counts: ImportCounts) => void): Promise<PassResult> {
  const counts = emptyCounts();
  const seen = new FingerprintSet();
  let invalidUtf8 = 0;
  let bytes = 0;
  for await (const s of scan) {
    const r = s.result;
    const n = r.hashes.length / 3;
    bytes = s.endOffset;
    counts.rows += r.records;
    counts.valid += n;
    counts.invalid += r.rejects.length;
    invalidUtf8 += r.invalidUtf8;
    const keys = splitJoined(r.keys, n);
    const lookups: string[] = [];
    const h = r.hashes;
    for (let i = 0; i < n; i++) {
      const h1 = h[i * 3] as number;
      const h2 = h[i * 3 + 1] as number;
      if (!seen.add(h1, h2, h[i * 3 + 2] as number)) {
        counts.duplicates++;
        continue;
      }
      counts.unique++;
      if (filter.mightContain(h1, h2)) lookups.push(keys[i] as string);
      else counts.added++;
    }
    if (lookups.length > 0) {
      for (const value of await store.getMany(lookups)) {
        if (value === undefined) counts.added++;
        else counts.alreadySuppressed++;
      }
    }
    await rejects?.write(r.rejects, s.baseLine, s.baseRow);
    onChunk(counts);
  }
  return { counts, invalidUtf8, bytes };
}
