/**
 * Check latency while the server imports: `optout serve` on a store of `--entries` addresses
 * answers single checks at a fixed rate, first alone, then while it imports a second list of
 * `--import-rows` rows sent to `POST /v1/imports?yes=true`. The import runs in the server
 * process (one parsing thread); this measures what it costs the checks, and how fast it goes.
 *
 * `npm run bench:serve-import -- [--entries 1000000] [--import-rows 1000000] [--rate 2000] [--duration 5] [--update-readme]`
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { arch, cpus, platform, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { OptoutClient } from '../src/client/client.js';
import { DEFAULT_SEED, MAX_ROWS } from './generate.js';
import { BenchFailure, ensureList, ensureOk, makeLog, packageRoot, parseCount, runIfMain, updateReadme } from './lib/harness.js';
import { Latencies, startChildServer } from './lib/load.js';
import { formatBytes, formatNumber, formatRate, formatSeconds, markdownTable, timeChild } from './lib/measure.js';

const log = makeLog('bench:serve-import');
const USAGE = 'Usage: npm run bench:serve-import -- [--entries N] [--import-rows N] [--rate R] [--duration S] [--update-readme]';
const SECTION = 'bench:serve-import';
const CONNECTIONS = 64;

interface Window { rate: number; p50: number; p99: number; errors: number; count: number }

/**
 * Sends checks at `rate` a second until `until()` says stop; latency from the call. Requests are
 * issued on schedule whatever the answers do, so a stalled server shows in p99.
 */
async function fixedRate(client: OptoutClient, emails: readonly string[], rate: number, until: () => boolean): Promise<Window> {
  const lat = new Latencies();
  let sent = 0;
  let errors = 0;
  const pending: Array<Promise<void>> = [];
  const started = performance.now();
  await new Promise<void>((done) => {
    const tick = (): void => {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (sent < due) {
        const at = performance.now();
        pending.push(client.check({ email: emails[sent % emails.length] as string }).then(() => lat.add(performance.now() - at), () => void errors++));
        sent++;
      }
      if (until()) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = (performance.now() - started) / 1000;
  return { rate: lat.count / elapsed, ...lat.summary(), errors, count: lat.count };
}

async function cli(args: readonly string[]): Promise<string> {
  const r = await timeChild(process.execPath, [join(packageRoot(), 'dist', 'src', 'cli', 'main.js'), ...args]);
  ensureOk(`optout ${args[0] ?? ''}`, r);
  return r.stdout;
}

export async function main(argv: readonly string[]): Promise<number> {
  let entries: number;
  let importRows: number;
  let rate: number;
  let seconds: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: {
        entries: { type: 'string' }, 'import-rows': { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' },
        'update-readme': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    entries = values.entries === undefined ? 1_000_000 : parseCount('--entries', values.entries, 1_000, MAX_ROWS);
    importRows = values['import-rows'] === undefined ? 1_000_000 : parseCount('--import-rows', values['import-rows'], 1_000, MAX_ROWS);
    rate = values.rate === undefined ? 2_000 : parseCount('--rate', values.rate, 1, 50_000);
    seconds = values.duration === undefined ? 5 : parseCount('--duration', values.duration, 1, 3_600);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:serve-import: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const root = packageRoot();
  const listed = join(root, 'data', 'generated', `list-${entries}-${DEFAULT_SEED}.csv`);
  const incoming = join(root, 'data', 'generated', `list-${importRows}-${DEFAULT_SEED + 1}.csv`);
  await ensureList(listed, entries, DEFAULT_SEED, log);
  await ensureList(incoming, importRows, DEFAULT_SEED + 1, log);
  const dir = await mkdtemp(join(tmpdir(), 'optout-bench-serve-import-'));
  const db = join(dir, 'db');
  try {
    log(`building a store of ${formatNumber(entries)} rows`);
    await cli(['import', listed, '--yes', '--db', db]);
    const key = (JSON.parse(await cli(['keys', 'create', '--scope', 'admin', '--json', '--db', db])) as { key: string }).key;
    const emails = Array.from({ length: 20_000 }, (_, i) => (i % 2 === 0 ? `absent-${i}@bench.test` : `user${i}@bench.test`));
    const server = await startChildServer([join(root, 'dist', 'src', 'cli', 'main.js'), 'serve', '--host', '127.0.0.1', '--port', '0', '--db', db]);
    const client = new OptoutClient({ url: server.url, key, connections: CONNECTIONS });
    let idle: Window;
    let during: Window;
    let importSeconds: number;
    let report: { state: string; counts: { rows: number; added: number } };
    try {
      // Warm-up, not counted: JIT, connections, and the snapshot the server saves once it answers.
      const warmEnd = performance.now() + 2000;
      await fixedRate(client, emails, rate, () => performance.now() >= warmEnd);
      log(`checks alone: ${rate} req/s for ${seconds} s`);
      const idleEnd = performance.now() + seconds * 1000;
      idle = await fixedRate(client, emails, rate, () => performance.now() >= idleEnd);

      log(`checks while importing ${formatNumber(importRows)} rows`);
      const started = performance.now();
      const posted = await request(`${server.url}/v1/imports?yes=true&source=bench`, {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' }, body: createReadStream(incoming),
      });
      const { id } = await posted.body.json() as { id: string };
      if (posted.statusCode !== 202) throw new BenchFailure(`POST /v1/imports answered ${posted.statusCode}`);
      let done = false;
      report = { state: 'importing', counts: { rows: 0, added: 0 } };
      const poll = (async () => {
        while (!done) {
          await new Promise((r) => setTimeout(r, 100));
          const res = await request(`${server.url}/v1/imports/${id}`, { headers: { authorization: `Bearer ${key}` } });
          report = await res.body.json() as typeof report;
          if (report.state !== 'importing') done = true;
        }
      })();
      during = await fixedRate(client, emails, rate, () => done);
      await poll;
      importSeconds = (performance.now() - started) / 1000;
      if (report.state !== 'completed') throw new BenchFailure(`the import ended ${report.state}`);
    } finally {
      await client.close();
      await server.stop();
    }
    const ms = (v: number): string => `${v.toFixed(v < 10 ? 2 : 1)} ms`;
    const table = markdownTable(
      ['checks', 'rate', 'p50', 'p99', 'errors'],
      [
        [`alone, ${seconds} s`, `${formatRate(idle.rate)} req/s`, ms(idle.p50), ms(idle.p99), String(idle.errors)],
        [`during the import, ${formatSeconds(importSeconds)} s`, `${formatRate(during.rate)} req/s`, ms(during.p50), ms(during.p99), String(during.errors)],
      ],
      ['left', 'right', 'right', 'right', 'right'],
    );
    const size = (await stat(incoming)).size;
    const cpu = cpus();
    const command = `npm run bench:serve-import -- --entries ${entries} --import-rows ${importRows} --rate ${rate} --duration ${seconds}${toReadme ? ' --update-readme' : ''}`;
    const block = [
      `\`${command}\``,
      '',
      table,
      '',
      `The import: ${formatNumber(report.counts.rows)} rows (${formatBytes(size)}) uploaded and imported by the server in ${formatSeconds(importSeconds)} s ` +
        `(${formatRate(report.counts.rows / importSeconds)} rows/s, upload included), ${formatNumber(report.counts.added)} added to a store of ${formatNumber(entries)} rows. ` +
        `Checks: single GETs through \`OptoutClient\` (${CONNECTIONS} keep-alive connections) from the benchmark process, half of them listed addresses. ` +
        `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${formatBytes(totalmem())} RAM, Node ${process.version}, ${platform()} ${arch()}.`,
    ].join('\n');
    process.stdout.write(`${block}\n`);
    if (toReadme) {
      await updateReadme(root, SECTION, block, log);
    }
    return idle.errors + during.errors === 0 ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, 'bench:serve-import', main);
