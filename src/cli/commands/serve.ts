import type { Command } from 'commander';
import type { AddressInfo } from 'node:net';
import { LOG_LEVELS, type LogLevel } from '../../api/request-log.js';
import { openStore, type OptoutStore } from '../../check/open-store.js';
import { DEFAULT_MAX_STALENESS_MS, DEFAULT_REPLICA_DIR, openReplica, type OpenedReplica } from '../../replica/open-replica.js';
import { isPgUrl } from '../../store/pg/url.js';
import { OptoutError, describeValue } from '../../errors.js';
import { parseByteSize, parseDuration } from '../../units.js';
import { dbOption, parseInteger } from '../args.js';

function parsePort(value: string): number {
  const port = parseInteger('port', value, 0);
  if (port > 65_535) throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`--port\` to be from 0 to 65535, got ${describeValue(value)}`);
  return port;
}

function parseLogLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`--log-level\` to be one of ${LOG_LEVELS.join(', ')}, got ${describeValue(value)}`);
  }
  return value as LogLevel;
}

const PERSIST_EVERY_MS = 60_000;

/** Says on stderr when a replica's view has caught up with its database, or why it cannot. */
async function announceCatchUp(replica: OpenedReplica, opening: number): Promise<void> {
  process.stderr.write(`replica view ${replica.store.dir}: catching up with the database (checks answer 503 until then)\n`);
  try {
    await replica.caughtUp;
  } catch (err) {
    if ((err as { code?: string }).code !== 'OPTOUT_ERR_ABORTED') {
      process.stderr.write(`replica view ${replica.store.dir}: cannot load the database: ${(err as Error).message}\n`);
    }
    throw err;
  }
  process.stderr.write(`replica view ${replica.store.dir}: ${replica.store.totalEntries()} entries at feed position ${replica.replica.seq}, ` +
    `ready in ${Math.round(performance.now() - opening)} ms\n`);
}

/** Builds the store's key index in the background, and says on stderr when checks use it. */
async function indexKeys(store: OptoutStore['store']): Promise<void> {
  try {
    if (!(await store.indexKeys())) return;
    const how = store.keyIndexSource === 'snapshot' ? 'loaded from its snapshot' : 'built';
    process.stderr.write(`key index: ${store.keyIndexSize} entries in memory (${Math.round(store.keyIndexBytes / 2 ** 20)} MiB), ` +
      `${how} in ${Math.round(store.keyIndexMs ?? 0)} ms\n`);
  } catch (err) {
    // Checks read LevelDB meanwhile, and go on doing so.
    process.stderr.write(`cannot build the key index, checks read the store: ${(err as Error).message}\n`);
  }
}

/**
 * The follower's failed reads, once when they start and once the view is fresh again: it
 * retries every poll (10 times a second), and checks answer 503 meanwhile.
 */
function followerLog(fresh: () => boolean): (err: unknown) => void {
  let watching: NodeJS.Timeout | undefined;
  return (err) => {
    if (watching !== undefined) return;
    process.stderr.write(`replica: cannot read the database's changes, retrying: ${(err as Error).message}\n`);
    watching = setInterval(() => {
      if (!fresh()) return;
      clearInterval(watching);
      watching = undefined;
      process.stderr.write('replica: caught up with the database again\n');
    }, 1000).unref();
  };
}

export function registerServe(program: Command): void {
  program.command('serve')
    .description('answer eligibility checks over HTTP (API keys: optout keys create)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port, printed on stderr)', '8080')
    .option('--allow-private-urls', 'let imports from a URL (POST /v1/imports with a url) reach loopback and private addresses')
    .option('--create', 'create the store when the --db folder holds none (without it, a folder without a store is an error)')
    .option('--replica <dir>', `with a PostgreSQL --db: this API replica's own folder, where it keeps its local view of the database (default ${DEFAULT_REPLICA_DIR})`)
    .option('--max-staleness <ms>', 'with a PostgreSQL --db: checks are answered only while the replica has proven, this recently, that it holds every committed change; ' +
      'otherwise 503 OPTOUT_ERR_STALE', String(DEFAULT_MAX_STALENESS_MS))
    .option('--links-rate-limit <n>', 'requests a second from one client address to unsubscribe links (/u/<token>)', '20')
    .option('--log-level <level>', `one JSON line per request on stdout, from this level (${LOG_LEVELS.join(', ')}); silent: none`, 'info')
    .option('--pending-ttl <duration>', 'an uploaded import not confirmed this long after it was sent expires, and its upload is deleted (30m, 24h, 7d)', '24h')
    .option('--lost-after <duration>', 'with a PostgreSQL --db: an import job whose server (the replica folder holding its upload) has not been seen ' +
      'this long is ended by another server, for its committed chunks to be rolled back or its file imported again (see `optout jobs abandon`)', '10m')
    .option('--no-key-index', 'keep no index of the stored keys in memory (16-32 bytes an entry, built in the background once the server is ready): ' +
      'checks of listed addresses then read LevelDB, 2-5x slower')
    .option('--max-pending-bytes <size>', 'uploads kept for unfinished imports take at most this much; a larger upload is refused with 507 (500MB, 10GiB, or bytes)', '10GiB')
    .action(async (flags: {
      host: string; port: string; allowPrivateUrls?: boolean; create?: boolean; logLevel: string; pendingTtl: string; maxPendingBytes: string; lostAfter: string;
      linksRateLimit: string; replica?: string; maxStaleness: string; keyIndex: boolean;
    }, cmd: Command) => {
      const port = parsePort(flags.port);
      const linksRate = parseInteger('links-rate-limit', flags.linksRateLimit);
      const level = parseLogLevel(flags.logLevel);
      const imports = {
        pendingTtlMs: parseDuration('--pending-ttl', flags.pendingTtl), maxPendingBytes: parseByteSize('--max-pending-bytes', flags.maxPendingBytes),
        lostAfterMs: parseDuration('--lost-after', flags.lostAfter),
      };
      const maxStalenessMs = parseInteger('max-staleness', flags.maxStaleness);
      const db = dbOption(cmd);
      const opening = performance.now();
      // The HTTP server's modules load while the store opens (its key filter is read from disk).
      const serverModule = import('../../api/server.js');
      serverModule.catch(() => undefined);
      let store: OptoutStore;
      let ready: Promise<void>;
      if (isPgUrl(db)) {
        let opened: OpenedReplica | undefined;
        const replica = await openReplica(db, flags.replica ?? DEFAULT_REPLICA_DIR, {
          maxStalenessMs, onError: followerLog(() => opened?.replica.fresh() === true), keyIndex: flags.keyIndex,
        });
        opened = replica;
        store = replica;
        ready = announceCatchUp(replica, opening);
        // Heard below, once the server listens.
        ready.catch(() => undefined);
      } else {
        if (flags.replica !== undefined) {
          throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `\`--replica\` is for a PostgreSQL --db, got the store folder ${describeValue(db)}: a folder is served as it is`);
        }
        // Opened before listening: openStore resolves once the key filter is loaded, so the
        // server is ready as soon as it accepts connections.
        store = await openStore(db, { purpose: 'optout serve', create: flags.create === true });
        process.stderr.write(`key filter from ${store.store.filterSource ?? '?'}: ${store.store.totalEntries()} entries, ` +
          `store ready in ${Math.round(performance.now() - opening)} ms\n`);
        ready = Promise.resolve();
      }
      const { createServer } = await serverModule;
      const app = createServer({ store, imports, allowPrivateUrls: flags.allowPrivateUrls === true, logger: { level }, links: { rateLimit: linksRate } });
      try {
        await app.listen({ host: flags.host, port });
      } catch (err) {
        await app.close();
        await store.close();
        throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Cannot listen on ${flags.host}:${port}: ${(err as Error).message}`, { cause: err });
      }
      const addr = app.server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      process.stderr.write(`listening on http://${host}:${addr.port}\n`);
      store.store.announceUrl(`http://${host}:${addr.port}`);
      // A filter that was replayed or rebuilt is saved once the server answers, and later changes
      // now and then: a server killed with SIGKILL then leaves at most a short replay behind.
      const persist = (): void => {
        store.store.persistFilter().catch((err: unknown) => {
          process.stderr.write(`cannot save the key filter snapshot: ${(err as Error).message}\n`);
        });
      };
      setImmediate(persist);
      if (flags.keyIndex) ready.then(() => indexKeys(store.store), () => undefined);
      const persistTimer = setInterval(persist, PERSIST_EVERY_MS).unref();
      const signal = await new Promise<NodeJS.Signals | 'failed'>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
        // A replica that cannot load its view answers nothing: it exits, to be restarted.
        ready.catch(() => resolve('failed'));
      });
      if (signal === 'failed') process.exitCode = 1;
      else process.stderr.write(`${signal}: closing\n`);
      clearInterval(persistTimer);
      // In-flight requests finish first; the store then saves its filter snapshot and unlocks.
      try {
        await app.close();
      } finally {
        await store.close();
      }
    });
}
