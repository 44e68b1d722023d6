/**
 * Replicas killed at random under a stream of opt-outs: three `optout serve --replica` processes
 * (the built CLI) on one database; opt-outs are written through random replicas while others
 * are killed with SIGKILL and started again (on their folder, or on a new empty one). Whatever
 * answers, no replica may ever say "eligible" for an acknowledged opt-out when asked after the
 * acknowledgement plus its staleness bound, or at once with its `minSeq`; at the end every
 * acknowledged opt-out is in the database and in every replica's view.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { request } from 'undici';
import { createKey } from '../../src/auth/api-keys.js';
import { hashKeyTuple } from '../../src/filter/hash.js';
import { migrate } from '../../src/store/pg/migrate.js';
import { PgLedger } from '../../src/store/pg/pg-ledger.js';
import { listeningPort, removeTempDirs, seededRandom, startCli, stopStarted, tempDir, type StartedCli } from '../helpers.js';
import { withPgDatabase } from '../store/pg-cluster.js';

const BOUND_MS = 1000;
const REPLICAS = 3;
const WRITES = 45;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Live {
  server: StartedCli;
  base: string;
  dir: string;
}

const started: StartedCli[] = [];
afterEach(async () => {
  await stopStarted(started);
  await removeTempDirs();
});

await withPgDatabase('replicas killed at random', (url) => {
  async function start(dir: string): Promise<Live> {
    const server = startCli(['serve', '--host', '127.0.0.1', '--port', '0', '--db', url, '--replica', dir, '--log-level', 'silent',
      '--max-staleness', String(BOUND_MS)]);
    started.push(server);
    const port = await listeningPort(server, 30_000);
    return { server, base: `http://127.0.0.1:${port}`, dir };
  }

  async function ask(base: string, key: string, path: string, init: { method?: 'GET' | 'PUT'; body?: string } = {}):
  Promise<{ status: number; json: Record<string, unknown>; seq: string | undefined } | undefined> {
    try {
      const res = await request(`${base}${path}`, {
        method: init.method ?? 'GET', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: init.body, headersTimeout: 5000, bodyTimeout: 5000,
      });
      const seq = res.headers['x-optout-seq'];
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown>, seq: typeof seq === 'string' ? seq : undefined };
    } catch {
      // A replica being killed, or not listening yet: no answer is no "eligible".
      return undefined;
    }
  }

  it('never answers "eligible" for an acknowledged opt-out past its bound, or with its minSeq', async () => {
    const seed = Number(process.env['OPTOUT_TEST_SEED'] ?? Date.now() % 1_000_000);
    process.stderr.write(`replicas killed at random: seed ${seed} (OPTOUT_TEST_SEED to replay)\n`);
    const rnd = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;

    await migrate(url);
    const ledger = await PgLedger.open(url);
    try {
      const key = (await createKey(ledger, { scope: 'admin' })).key;
      const live: Live[] = [];
      for (let i = 0; i < REPLICAS; i++) live.push(await start(await tempDir('optout-replica-')));

      const acked: Array<{ email: string; at: number; seq: number }> = [];
      const violations: string[] = [];
      let answered = 0;
      let refused = 0;
      let kills = 0;

      /** Asks a random replica about an opt-out, as the guarantee allows: with minSeq, or after the bound. */
      const probe = async (o: { email: string; at: number; seq: number }, withSeq: boolean): Promise<void> => {
        const r = pick(live);
        const path = `/v1/eligibility?email=${encodeURIComponent(o.email)}${withSeq ? `&minSeq=${o.seq}` : ''}`;
        const sent = Date.now();
        if (!withSeq && sent <= o.at + BOUND_MS) return;
        const got = await ask(r.base, key, path);
        if (got === undefined) return;
        if (got.status === 503) {
          refused++;
          return;
        }
        answered++;
        if (got.status !== 200 || got.json['eligible'] !== false) {
          violations.push(`${o.email} (acknowledged at ${o.at}, seq ${o.seq}) answered ${got.status} ${JSON.stringify(got.json)} by ${r.base} ` +
            `${withSeq ? 'with minSeq' : `${sent - o.at} ms later`}`);
        }
      };

      for (let i = 0; i < WRITES; i++) {
        const email = `optout${i}@kills.test`;
        const w = pick(live);
        const put = await ask(w.base, key, `/v1/suppressions/${encodeURIComponent(email)}`, { method: 'PUT', body: '{}' });
        // Acknowledged: the write is committed, and its position known.
        if (put !== undefined && (put.status === 201 || put.status === 200) && put.seq !== undefined) {
          acked.push({ email, at: Date.now(), seq: Number(put.seq) });
        }
        if (i % 10 === 5 || rnd() < 0.08) {
          // Killed without warning, then started on its folder, or (sometimes) on an empty one.
          const victim = pick(live);
          victim.server.child.kill('SIGKILL');
          await victim.server.done;
          kills++;
          let dir = victim.dir;
          if (rnd() < 0.3) {
            await rm(dir, { recursive: true, force: true });
            dir = join(await tempDir('optout-replica-'), 'view');
          }
          const restarted = await start(dir);
          live[live.indexOf(victim)] = restarted;
          // Asked at once, while it may still be catching up: it must refuse rather than answer from an old view.
          for (const o of acked.filter((x) => Date.now() > x.at + BOUND_MS).slice(-5)) {
            const got = await ask(restarted.base, key, `/v1/eligibility?email=${encodeURIComponent(o.email)}`);
            if (got?.status === 200 && got.json['eligible'] !== false) violations.push(`${o.email} answered eligible by ${restarted.base} as it started`);
            if (got?.status === 503) refused++;
          }
        }
        const last = acked.at(-1);
        if (last !== undefined) await probe(last, true);
        for (const o of acked.slice(-10)) await probe(o, false);
        await sleep(Math.floor(rnd() * 60));
      }
      // Past every bound: each opt-out asked of each replica.
      await sleep(BOUND_MS + 100);
      for (const r of live) {
        for (let i = 0; i < 200 && (await ask(r.base, key, '/readyz'))?.status !== 200; i++) await sleep(50);
      }
      for (const o of acked) for (const r of live) {
        const got = await ask(r.base, key, `/v1/eligibility?email=${encodeURIComponent(o.email)}`);
        if (got?.status !== 200 || got.json['eligible'] !== false) violations.push(`${o.email} at the end on ${r.base}: ${JSON.stringify(got)}`);
      }
      process.stderr.write(`replicas killed at random: ${acked.length} opt-outs, ${kills} kills, ${answered} answers, ${refused} refused (503)\n`);
      expect(violations).toEqual([]);
      expect(acked.length).toBeGreaterThan(WRITES / 2);
      const hashed = acked.map((o) => {
        const [h1, h2] = hashKeyTuple(o.email);
        return { key: o.email, h1, h2 };
      });
      const stored = new Set((await ledger.entriesOfMany(hashed)).map((e) => e.length));
      expect([...stored]).toEqual([1]);
    } finally {
      await ledger.close();
    }
  }, 240_000);
});
