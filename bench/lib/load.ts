import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { BenchFailure, tail } from './harness.js';

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] as number;
}

/** Latencies in milliseconds, kept whole (no sampling) in a growing typed array. */
export class Latencies {
  #values = new Float64Array(1 << 16);
  #n = 0;

  add(ms: number): void {
    if (this.#n === this.#values.length) {
      const next = new Float64Array(this.#values.length * 2);
      next.set(this.#values);
      this.#values = next;
    }
    this.#values[this.#n++] = ms;
  }

  get count(): number {
    return this.#n;
  }

  summary(): { p50: number; p99: number } {
    const s = this.#values.slice(0, this.#n).sort();
    return { p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
  }
}

export interface ChildServer {
  url: string;
  stop(): Promise<void>;
}

/** Spawns a server that prints `listening on http://...` on stderr, and waits for that line. */
export function startChildServer(args: readonly string[]): Promise<ChildServer> {
  return new Promise((resolveStart, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const stop = async (): Promise<void> => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchFailure(`the server did not start within 120 s:\n${tail(stderr)}`));
    }, 120_000);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      stderr = (stderr + s).slice(-100_000);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolveStart({ url: m[1], stop });
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new BenchFailure(`the server exited with ${code ?? signal ?? '?'} before listening:\n${tail(stderr)}`));
    });
  });
}

/** The first CSV field of a line, unquoted; the generator never puts a newline inside a field. */
function firstField(line: string): string {
  if (!line.startsWith('"')) {
    const comma = line.indexOf(',');
    return comma < 0 ? line : line.slice(0, comma);
  }
  let out = '';
  let i = 1;
  for (;;) {
    const q = line.indexOf('"', i);
    if (q < 0) return out + line.slice(i);
    out += line.slice(i, q);
    if (line[q + 1] === '"') {
      out += '"';
      i = q + 2;
    } else {
      return out;
    }
  }
}

/** The address cell of every data row, as written (case, spaces and invalid cells included). */
export async function* firstColumn(file: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(file, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let header = true;
  for await (const line of lines) {
    if (header) {
      header = false;
      continue;
    }
    yield firstField(line);
  }
}

/** `concurrency` closed loops for `seconds`: the most a server answers at that concurrency. */
export async function closedLoop(concurrency: number, seconds: number, once: (i: number) => Promise<number>): Promise<{ rate: number; p50: number; p99: number; errors: number }> {
  const lat = new Latencies();
  let items = 0;
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      try {
        // Not `items += await ...`: that reads `items` before the await and loses the other
        // loops' additions made meanwhile.
        const n = await once(next++);
        items += n;
        lat.add(performance.now() - t);
      } catch {
        errors++;
      }
    }
  }));
  return { rate: items / ((performance.now() - started) / 1000), ...lat.summary(), errors };
}
