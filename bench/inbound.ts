/**
 * ESP webhook and one-click unsubscribe throughput: signed deliveries posted to `POST /v1/inbound/{id}` of a server in
 * this process (`app.inject`, no sockets: the figure is optout's own cost: verification,
 * parsing, mapping and the one ledger write per delivery), on a LevelDB store in a temp folder.
 *
 * - SendGrid batches of 1,000 events (ECDSA P-256 verified once per batch), each event a new
 *   suppression: the common shape of a busy account's deliveries.
 * - The same batches again: every event a duplicate, nothing written.
 * - Mailgun, one event per delivery (HMAC), 16 deliveries in flight.
 * - One-click unsubscribe POSTs (`POST /u/<token>`, RFC 8058), 16 in flight, each a new address.
 *
 * Deliveries are signed before the clock starts (signing is the provider's work). Every answer
 * is checked, and the store's entries must add up: a wrong count fails the bench.
 *
 * `npm run bench:inbound -- [--runs 5] [--batches 20] [--singles 2000] [--update-readme]`
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { createServer, type OptoutServer } from '../src/api/server.js';
import { openStore, type OptoutStore } from '../src/check/open-store.js';
import { addEndpoint } from '../src/inbound/endpoints.js';
import { setLinkBaseUrl } from '../src/links/keys.js';
import { unsubscribeUrl } from '../src/links/links.js';
import { mailgunBody, sendgridHeaders, sendgridKeys } from './lib/inbound-signing.js';
import { BenchFailure, makeLog, packageRoot, parseCount, runIfMain, updateReadme } from './lib/harness.js';
import { formatNumber, markdownTable, median } from './lib/measure.js';

const log = makeLog('bench:inbound');
const USAGE = 'Usage: npm run bench:inbound -- [--runs N] [--batches N] [--singles N] [--update-readme]';
const SECTION = 'bench:inbound';
const BATCH = 1_000;
const IN_FLIGHT = 16;

interface Delivery {
  body: string;
  headers: Record<string, string>;
}

interface Scenario {
  name: string;
  events: number;
  rates: number[];
}

async function postAll(app: OptoutServer, id: string, deliveries: readonly Delivery[], inFlight: number, expect: (r: Record<string, unknown>) => boolean): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < deliveries.length) {
      const d = deliveries[next++] as Delivery;
      const res = await app.inject({ method: 'POST', url: `/v1/inbound/${id}`, payload: d.body, headers: d.headers });
      const json = res.json() as Record<string, unknown>;
      if (res.statusCode !== 200 || !expect(json)) throw new BenchFailure(`unexpected answer ${res.statusCode}: ${res.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, deliveries.length) }, worker));
  return (performance.now() - t0) / 1000;
}

function sendgridBatches(keys: ReturnType<typeof sendgridKeys>, run: number, batches: number): Delivery[] {
  const at = Math.floor(Date.now() / 1000);
  return Array.from({ length: batches }, (_, b) => {
    const events = Array.from({ length: BATCH }, (_, i) => ({
      email: `r${run}.b${b}.e${i}@bench.example.org`, timestamp: at, event: i % 10 === 0 ? 'spamreport' : 'bounce', type: 'bounce',
      sg_event_id: randomUUID(), sg_message_id: `m${b}.${i}`, reason: '550 5.1.1 The email account that you tried to reach does not exist',
    }));
    const body = JSON.stringify(events);
    return { body, headers: sendgridHeaders(keys.privateKey, body) };
  });
}

function mailgunSingles(signingKey: string, run: number, singles: number): Delivery[] {
  return Array.from({ length: singles }, (_, i) => ({
    body: JSON.stringify(mailgunBody(signingKey, {
      id: randomUUID(), event: 'failed', severity: 'permanent', recipient: `r${run}.mg${i}@bench.example.org`, timestamp: Date.now() / 1000,
    })),
    headers: { 'content-type': 'application/json' },
  }));
}

/** Link paths (`/u/<token>`) for `n` new addresses; made before the clock starts, as a sender makes them when it sends. */
async function linkPaths(store: OptoutStore, run: number, n: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < n; i++) paths.push(new URL(await unsubscribeUrl(store.store, `r${run}.oc${i}@bench.example.org`)).pathname);
  return paths;
}

/** RFC 8058 one-click POSTs, `inFlight` at a time, each answered 200. */
async function postOneClicks(app: OptoutServer, paths: readonly string[], inFlight: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const url = paths[next++] as string;
      const res = await app.inject({
        method: 'POST', url, payload: 'List-Unsubscribe=One-Click', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        // One client address per link, as mail providers' servers are many: the per-address rate limit is not what is measured.
        remoteAddress: `10.${(next >> 16) & 255}.${(next >> 8) & 255}.${next & 255}`,
      });
      if (res.statusCode !== 200) throw new BenchFailure(`one-click POST answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, paths.length) }, worker));
  return (performance.now() - t0) / 1000;
}

async function measure(store: OptoutStore, app: OptoutServer, runs: number, batches: number, singles: number): Promise<Scenario[]> {
  await setLinkBaseUrl(store.store, 'https://unsubscribe.bench.example', 'bench');
  const keys = sendgridKeys();
  const signingKey = `key-${randomUUID()}`;
  const sg = (await addEndpoint(store.store, { provider: 'sendgrid', publicKey: keys.publicKey })).endpoint.id;
  const mg = (await addEndpoint(store.store, { provider: 'mailgun', signingKey })).endpoint.id;
  const scenarios: Scenario[] = [
    { name: `SendGrid, batches of ${formatNumber(BATCH)} new events`, events: batches * BATCH, rates: [] },
    { name: `SendGrid, the same batches again (all duplicates)`, events: batches * BATCH, rates: [] },
    { name: `Mailgun, one event a delivery, ${IN_FLIGHT} in flight`, events: singles, rates: [] },
    { name: `one-click unsubscribe POSTs (RFC 8058), ${IN_FLIGHT} in flight`, events: singles, rates: [] },
  ];
  const [fresh, again, single, oneClick] = scenarios as [Scenario, Scenario, Scenario, Scenario];
  for (let run = 0; run < runs; run++) {
    const before = store.store.totalEntries();
    const deliveries = sendgridBatches(keys, run, batches);
    // One delivery at a time: a provider waits for each answer before the next batch.
    fresh.rates.push(fresh.events / await postAll(app, sg, deliveries, 1, (r) => r['suppressed'] === BATCH));
    again.rates.push(again.events / await postAll(app, sg, deliveries, 1, (r) => r['duplicates'] === BATCH));
    single.rates.push(single.events / await postAll(app, mg, mailgunSingles(signingKey, run, singles), IN_FLIGHT, (r) => r['suppressed'] === 1));
    oneClick.rates.push(oneClick.events / await postOneClicks(app, await linkPaths(store, run, singles), IN_FLIGHT));
    const added = store.store.totalEntries() - before;
    if (added !== batches * BATCH + 2 * singles) throw new BenchFailure(`run ${run + 1} stored ${added} entries, expected ${batches * BATCH + 2 * singles}`);
    log(`run ${run + 1}/${runs}: ${scenarios.map((s) => `${formatNumber(s.rates.at(-1) ?? 0)}/s`).join(', ')}`);
  }
  return scenarios;
}

function report(scenarios: readonly Scenario[], runs: number, batches: number, singles: number, load: number): string {
  const rows = scenarios.map((s) => [
    s.name, formatNumber(s.events), `${formatNumber(median(s.rates))}/s`, `${formatNumber(Math.min(...s.rates))}–${formatNumber(Math.max(...s.rates))}/s`,
  ]);
  const cpu = cpus();
  return [
    `\`npm run bench:inbound -- --runs ${runs} --batches ${batches} --singles ${singles} --update-readme\``,
    '',
    `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, load average ${load.toFixed(1)} at the start; in-process (\`app.inject\`), LevelDB store; events per second, median and min–max of ${runs} runs.`,
    '',
    markdownTable(['deliveries', 'events a run', 'events/s (median)', 'min–max'], rows, ['left', 'right', 'right', 'right']),
  ].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  let runs: number;
  let batches: number;
  let singles: number;
  let toReadme: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv], strict: true, allowPositionals: false,
      options: {
        runs: { type: 'string' }, batches: { type: 'string' }, singles: { type: 'string' },
        'update-readme': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    runs = values.runs === undefined ? 5 : parseCount('--runs', values.runs, 1, 100);
    batches = values.batches === undefined ? 20 : parseCount('--batches', values.batches, 1, 1000);
    singles = values.singles === undefined ? 2000 : parseCount('--singles', values.singles, 1, 1_000_000);
    toReadme = values['update-readme'] === true;
  } catch (err) {
    process.stderr.write(`bench:inbound: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const dir = await mkdtemp(join(tmpdir(), 'optout-bench-inbound-'));
  const store = await openStore(join(dir, 'db'), { purpose: 'bench:inbound' });
  const app = createServer({ store, syncs: false });
  try {
    await app.ready();
    const load = loadavg()[0] ?? 0;
    const block = report(await measure(store, app, runs, batches, singles), runs, batches, singles, load);
    process.stdout.write(`${block}\n`);
    if (toReadme) await updateReadme(packageRoot(), SECTION, block, log);
  } finally {
    await app.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
  return 0;
}

runIfMain(import.meta.url, 'bench:inbound', main);
