import { extractColumn } from '../csv/extract.js';
import { hashKey } from '../dedup/hash.js';
import { normalizeEmail } from '../policy/email.js';
import { MAX_REJECT_VALUE_CHARS, type ChunkReject, type ChunkResult, type ChunkTask } from './chunk-task.js';

/**
 * Worker-pool entry: parse one chunk, pick the email column, apply the address policy and hash
 * every key. All per-row work happens here, off the main thread.
 */
export default function processChunk(task: ChunkTask): ChunkResult {
  const keys: string[] = [];
  const addresses: string[] = [];
  const addressRows: number[] = [];
  const rejects: ChunkReject[] = [];
  let hashes = new Uint32Array(4096 * 3);
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
        const i = keys.length;
        if ((i + 1) * 3 > hashes.length) {
          const grown = new Uint32Array(hashes.length * 2);
          grown.set(hashes);
          hashes = grown;
        }
        hashKey(n.key, hashes, i * 3);
        keys.push(task.keyPrefix + n.key);
        if (n.address !== n.key) {
          addresses.push(n.address);
          addressRows.push(i);
        }
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
    keys: keys.join('\n'),
    addresses: addresses.join('\n'),
    addressRows,
    hashes: hashes.slice(0, keys.length * 3),
    rejects,
    invalidUtf8,
  };
  if (result.error) out.error = result.error;
  return out;
}
