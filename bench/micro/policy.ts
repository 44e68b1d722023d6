/**
 * Micro benchmarks of the address policy (`normalizeEmail`, src/policy/email.ts), which runs on
 * every cell of an import: the target is 2M normalizations/s on one core for typical addresses.
 *
 * Each task call normalizes {@link POLICY_OPS_PER_CALL} cells (one costs 100-2000 ns, below what
 * a per-call timer resolves), so normalizations/s = tinybench's hz * POLICY_OPS_PER_CALL. Inputs
 * cycle through pools of {@link POLICY_POOL} deterministic cells, built on first use:
 * - mixed: what a real list looks like (mostly plain ASCII, ~20% mixed case, some padding,
 *   tags and Gmail dots, ~2% display names or mailto:, ~2% IDN domains, ~1% non-ASCII local
 *   parts, ~1% invalid);
 * - ascii: typical plain ASCII only (the fast path);
 * - idn: Unicode domains only (the domainToASCII path);
 * and, for comparison, the mixed pool through the reference implementation without the fast path.
 */
import type { Bench } from 'tinybench';
import { normalizeEmail, normalizeEmailReference } from '../../src/policy/email.js';

export const POLICY_OPS_PER_CALL = 1024;
/** About 10k cells, a power of two so that cycling is a mask. */
export const POLICY_POOL = 1 << 13;

const FIRST = ['anna', 'bjorn', 'chloe', 'dmitri', 'elena', 'farid', 'grete', 'hiro', 'ines', 'jonas', 'kari', 'lea',
  'mohammed', 'nora', 'oscar', 'priya', 'quinn', 'rosa', 'sven', 'tomas'];
const LAST = ['berg', 'dubois', 'garcia', 'hansen', 'ito', 'jensen', 'kowalski', 'larsen', 'muller', 'novak',
  'olsen', 'smith', 'nguyen', 'kumar', 'silva'];
const DOMAINS = ['gmail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'icloud.com', 'example.com',
  'mail.example.org', 'corp.example.net', 'example.co.uk', 'post.example.de', 'googlemail.com', 'yandex.ru',
  'web.de', 'acme-industries.com'];
const IDN_DOMAINS = ['bücher.de', 'münchen.de', 'exämple.com', '臺網中心.tw', 'пример.рф', '例え.jp', 'ÅRHUS.dk',
  'xn--bcher-kva.de'];
const UNICODE_LOCALS = ['élodie', 'søren', 'josé', 'ирина', '太郎', 'müller'];
const INVALID = ['', 'n/a', 'jane.doe', 'jane@', '@example.com', 'jane@@example.com', 'jane doe@example.com',
  'jane..doe@example.com', 'jane@example', 'jane@example.com.', 'jane@localhost', 'jane@-example.com'];

/** mulberry32: a deterministic pool, the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)]!;
}

function plainLocal(rnd: () => number): string {
  const f = pick(rnd, FIRST);
  const l = pick(rnd, LAST);
  switch (Math.floor(rnd() * 4)) {
    case 0: return `${f}.${l}`;
    case 1: return `${f}${l}${Math.floor(rnd() * 1000)}`;
    case 2: return `${f[0]}${l}`;
    default: return `${f}_${l}${Math.floor(rnd() * 100)}`;
  }
}

function typicalAscii(rnd: () => number): string {
  let s = `${plainLocal(rnd)}@${pick(rnd, DOMAINS)}`;
  const r = rnd();
  if (r < 0.1) s = s.charAt(0).toUpperCase() + s.slice(1);
  else if (r < 0.2) s = s.toUpperCase();
  if (rnd() < 0.05) s = s.replace('@', `+news${Math.floor(rnd() * 10)}@`);
  if (rnd() < 0.03) s = ` ${s} `;
  return s;
}

function idn(rnd: () => number): string {
  return `${plainLocal(rnd)}@${pick(rnd, IDN_DOMAINS)}`;
}

function mixed(rnd: () => number): string {
  const r = rnd();
  if (r < 0.01) return pick(rnd, INVALID);
  if (r < 0.02) return `${pick(rnd, UNICODE_LOCALS)}@${pick(rnd, DOMAINS)}`;
  if (r < 0.04) return idn(rnd);
  if (r < 0.05) {
    const f = pick(rnd, FIRST);
    const l = pick(rnd, LAST);
    return `${f[0]!.toUpperCase()}${f.slice(1)} ${l} <${f}.${l}@${pick(rnd, DOMAINS)}>`;
  }
  if (r < 0.06) return `mailto:${typicalAscii(rnd).trim()}`;
  return typicalAscii(rnd);
}

interface Pools {
  mixed: string[];
  ascii: string[];
  idn: string[];
}

let pools: Pools | undefined;

function setup(): Pools {
  if (pools !== undefined) return pools;
  const build = (seed: number, make: (rnd: () => number) => string): string[] => {
    const rnd = random(seed);
    // Decoded from bytes, as a CSV parser hands cells over: flat strings. The concatenations
    // above leave ropes, which cost every character access an indirection (~25% here).
    return Array.from({ length: POLICY_POOL }, () => Buffer.from(make(rnd), 'utf8').toString('utf8'));
  };
  pools = { mixed: build(1, mixed), ascii: build(2, typicalAscii), idn: build(3, idn) };
  return pools;
}

export function registerPolicyBenches(bench: Bench): void {
  const opts = { beforeAll: () => void setup() };
  const n = POLICY_OPS_PER_CALL;
  let cursor = 0;
  let sink = 0;

  const task = (name: keyof Pools, fn: typeof normalizeEmail) => () => {
    const cells = setup()[name];
    const at = cursor;
    cursor = (cursor + n) & (POLICY_POOL - 1);
    for (let i = 0; i < n; i++) {
      const r = fn(cells[(at + i) & (POLICY_POOL - 1)]!);
      sink += r.valid ? r.key.length : 1;
    }
  };

  bench.add(`policy: normalizeEmail mixed x${n}`, task('mixed', normalizeEmail), opts);
  bench.add(`policy: normalizeEmail typical ASCII x${n}`, task('ascii', normalizeEmail), opts);
  bench.add(`policy: normalizeEmail IDN domains x${n}`, task('idn', normalizeEmail), opts);
  bench.add(`policy: reference (no fast path) mixed x${n}`, task('mixed', normalizeEmailReference), opts);

  bench.addEventListener('complete', () => {
    if (sink === -1) console.log(sink); // keeps the results observable
  });
}
