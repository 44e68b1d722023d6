/**
 * `optout/client`: the HTTP API's client for sending services. Loads undici and nothing else of
 * optout's dependencies (no store, no worker pool, no server).
 */
export { OptoutClient, OptoutClientError, CLIENT_MAX_BATCH, type OptoutClientOptions, type CheckOptions, type CheckInput } from './client/client.js';
export type { Decision, DecisionReason, SendType, SuppressionInfo } from './check/rules.js';
