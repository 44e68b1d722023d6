/**
 * `optout/server`: the HTTP API and what runs inside it (import jobs, scheduled syncs). Loads
 * fastify and prom-client, which `optout` alone does not.
 */
export { createServer, MAX_BATCH, type ServerOptions, type OptoutServer } from './api/server.js';
export {
  openReplica, DEFAULT_MAX_STALENESS_MS, MIN_SEQ_WAIT_MS, type OpenedReplica, type ReplicaOptions,
} from './replica/open-replica.js';
export { ImportJobs, type ImportJobView, type ImportRequest, type ImportJobsOptions } from './manage/import-jobs.js';
export { runSync, type SyncRunResult } from './sync/syncs.js';
export { SyncScheduler, type SchedulerOptions } from './sync/scheduler.js';
export { fetchSource, type FetchResult, type FetchSourceOptions, type FetchTimeouts } from './fetch/fetch-source.js';
export { createSyncAgent, type SyncAgentOptions } from './fetch/fetch-agent.js';
export { validateSyncUrl, type AddressPolicyOptions } from './fetch/url-policy.js';
