import { readFileSync } from 'node:fs';
import { extractColumn } from '../csv/extract.js';
import { hashKey } from '../dedup/hash.js';
import { normalizeEmail } from '../policy/email.js';
import {
  MAX_REJECT_VALUE_CHARS, bucketOf, type BucketResult, type BucketTask, type ChunkReject, type ChunkResult, type ChunkTask,
} from './chunk-task.js';

/**
 * Worker-pool entry: parse one chunk, pick the email column, apply the address policy and
 * sort every valid row into its spool bucket. All per-row work happens here, off the main thread.
 */
export default function processChunk(task: ChunkTask): ChunkResult {
  const buckets: string[] = new Array<string>(2 ** task.bucketBits).fill('');
  const rejects: ChunkReject[] = [];
  const h = new Uint32Array(3);
  let valid = 0;
  let invalidUtf8 = 0;
  let record = 0;

  const reject = (value: string, line: number, reason: string): void => {
    rejects.push({
      line,
      record,
      value: value.length > MAX_REJECT_VALUE_CHARS ? value.slice(0, MAX_REJECT_VALUE_CHARS) + '…' : value,
      reason,
    });
  };

  const bytes = task.bytes;
  const result = extractColumn(bytes, 0, bytes.length, {
    delimiter: task.delimiter,
    eol: task.eol,
    column: task.column,
    maxRecordBytes: task.maxRecordBytes,
    final: task.final,
  }, (value, line) => {
    if (value === undefined) {
      reject('', line, 'MISSING_FIELD');
    } else if (value.includes('\uFFFD')) {
      // Bytes that are not valid in the input encoding: storing a key with a replacement
      // character would suppress nobody, so the row is rejected with a hint to fix the encoding.
      invalidUtf8++;
      reject(value, line, 'INVALID_ENCODING');
    } else {
      const n = normalizeEmail(value);
      if (n.valid) {
        hashKey(n.key, h, 0);
        const b = bucketOf(h[0] as number, task.bucketBits);
        buckets[b] += n.address === n.key ? n.key + '\n' : n.key + '\t' + n.address + '\n';
        valid++;
      } else {
        reject(value, line, n.reason);
      }
    }
    record++;
  });

  const out: ChunkResult = {
    consumed: result.consumed,
    records: result.records,
    lines: result.lines,
    valid,
    buckets,
    rejects,
    invalidUtf8,
  };
  if (result.error) out.error = result.error;
  return out;
}

/**
 * Worker-pool entry: the distinct keys of one spool bucket, sorted. Every copy of a key lands in
 * the same bucket, so dedup within a bucket is dedup over the whole file, exact and in memory
 * bounded by the bucket's size. The first occurrence's address is kept. Sorting here, in
 * parallel, halved LevelDB's time to ingest the batch (measured: 7.3k keys in ~9 ms sorted,
 * ~20 ms unsorted) for less CPU than it saves.
 */
export function dedupBucket(task: BucketTask): BucketResult {
  let text: string;
  try {
    text = readFileSync(task.path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    text = '';
  }
  const seen = new Set<string>();
  const distinct: string[] = [];
  let lines = 0;
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end);
    start = end + 1;
    lines++;
    const tab = line.indexOf('\t');
    const key = tab < 0 ? line : line.slice(0, tab);
    if (seen.has(key)) continue;
    seen.add(key);
    distinct.push(line);
  }
  // `key\taddress` sorts by key: a tab sorts before every character a key can hold.
  distinct.sort();
  const hashes = new Uint32Array(distinct.length * 3);
  const storeKeys = new Array<string>(distinct.length);
  const addresses: string[] = [];
  const addressRows: number[] = [];
  distinct.forEach((line, i) => {
    const tab = line.indexOf('\t');
    const key = tab < 0 ? line : line.slice(0, tab);
    if (tab >= 0) {
      addresses.push(line.slice(tab + 1));
      addressRows.push(i);
    }
    hashKey(key, hashes, i * 3);
    storeKeys[i] = task.keyPrefix + key;
  });
  return { lines, keys: storeKeys.join('\n'), addresses: addresses.join('\n'), addressRows, hashes };
}
