import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';

/** What one child process cost, measured from outside it. */
export interface ChildTiming {
  /** Wall-clock time from spawn to exit. */
  seconds: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /**
   * Sum of the peak resident sets (VmHWM) of the child and its descendants, sampled from /proc.
   * Processes of a pipeline run at the same time, so their peaks are added; undefined where
   * /proc is not available.
   */
  peakRssBytes: number | undefined;
  /**
   * CPU seconds (user + system) of the child and every descendant it waited for, all threads:
   * what the kernel adds to this process's children's times when it reaps the child. Undefined
   * where /proc is not available.
   */
  cpuSeconds: number | undefined;
}

export interface TimeChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Keep at most this many characters of each output stream (the tail), so that a chatty child
   * cannot grow the benchmark's own memory.
   * @default 1_048_576
   */
  maxOutputChars?: number;
  /**
   * How often the process tree's memory is sampled.
   * @default 50
   */
  sampleMs?: number;
}

/** Runs `command args` without a shell and reports its wall time, output and peak memory. */
export function timeChild(
  command: string,
  args: readonly string[],
  options: TimeChildOptions = {},
): Promise<ChildTiming> {
  const maxChars = options.maxOutputChars ?? 1_048_576;
  const sampleMs = options.sampleMs ?? 50;
  return new Promise((resolve, reject) => {
    const cpuBefore = childrenCpuSeconds();
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      stdout = keepTail(stdout + s, maxChars);
    });
    child.stderr.on('data', (s: string) => {
      stderr = keepTail(stderr + s, maxChars);
    });

    let peak: number | undefined;
    let sampling = false;
    const sample = async (): Promise<void> => {
      if (sampling || child.pid === undefined) return;
      sampling = true;
      try {
        const rss = await treePeakRss(child.pid);
        if (rss !== undefined) peak = Math.max(peak ?? 0, rss);
      } finally {
        sampling = false;
      }
    };
    const timer = setInterval(() => void sample(), sampleMs);
    void sample();

    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    // 'close' rather than 'exit': the output pipes are drained by then.
    child.on('close', (exitCode, signal) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const cpuAfter = childrenCpuSeconds();
      const cpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
      resolve({ seconds, exitCode, signal, stdout, stderr, peakRssBytes: peak, cpuSeconds });
    });
  });
}

/**
 * User + system seconds of this process's reaped children (and theirs), from /proc/self/stat
 * (`cutime`, `cstime`); undefined without /proc. Only children run one at a time can be told
 * apart by the difference before and after.
 */
export function childrenCpuSeconds(): number | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name, which may hold spaces: state is field 3, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[13]) + Number(fields[14]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
}

/** Linux's USER_HZ, the unit of /proc times: 100 on every architecture Node runs on. */
const CLOCK_TICKS = 100;

function keepTail(s: string, max: number): string {
  return s.length > max ? s.slice(s.length - max) : s;
}

/** Sum of VmHWM over `pid` and its live descendants; undefined without /proc. */
async function treePeakRss(pid: number): Promise<number | undefined> {
  const pids = await descendants(pid);
  let total = 0;
  let seen = false;
  for (const p of pids) {
    const status = await readFile(`/proc/${p}/status`, 'utf8').catch(() => undefined);
    const m = status?.match(/^VmHWM:\s+(\d+)\s+kB/m);
    if (m?.[1] !== undefined) {
      total += Number(m[1]) * 1024;
      seen = true;
    }
  }
  return seen ? total : undefined;
}

async function descendants(root: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    out.push(pid);
    // Children hang off the thread that forked them, so every task has to be read.
    const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
    for (const tid of tasks) {
      const list = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const c of list.split(' ')) if (c !== '') queue.push(Number(c));
    }
  }
  return out;
}

/** The middle value (mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('Expected at least one value, got none');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** `1234567` -> `1,234,567`; fixed decimals when asked. */
export function formatNumber(n: number, decimals = 0): string {
  return n.toLocaleString('en-US', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

/** Decimal units (1 MB = 10^6 bytes), as `du --si` and the design figures use. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

/** `2_650_000` -> `2.65M`, `38_000` -> `38.0k`: rates read at a glance. */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1e9) return `${(perSecond / 1e9).toFixed(2)}G`;
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

export function formatSeconds(seconds: number): string {
  return seconds >= 100 ? seconds.toFixed(0) : seconds >= 10 ? seconds.toFixed(1) : seconds.toFixed(2);
}

export type Align = 'left' | 'right';

/** A GitHub markdown table; pipes inside cells are escaped. */
export function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[] = [],
): string {
  const cell = (s: string): string => s.replaceAll('|', '\\|');
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |`;
  const rule = headers.map((_, i) => (align[i] === 'right' ? '---:' : '---'));
  return [line(headers), `|${rule.join('|')}|`, ...rows.map(line)].join('\n');
}

/**
 * Replaces what lies between `<!-- name:start -->` and `<!-- name:end -->`, keeping the markers.
 * Returns undefined when either marker is missing or they are out of order.
 */
export function replaceMarkedSection(text: string, name: string, content: string): string | undefined {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end, a + start.length);
  if (a < 0 || b < 0) return undefined;
  return `${text.slice(0, a + start.length)}\n${content.trim()}\n${text.slice(b)}`;
}

/** Rewrites a marked section of a file in place; false (file untouched) when markers are missing. */
export async function updateMarkedSection(file: string, name: string, content: string): Promise<boolean> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return false;
  const next = replaceMarkedSection(text, name, content);
  if (next === undefined) return false;
  if (next !== text) await writeFile(file, next);
  return true;
}
