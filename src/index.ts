/**
 * `optout`: the engine as a library. Import lists, scrub send lists, open a store and check
 * addresses, manage the list; no server and no HTTP client (`optout/server`, `optout/client`).
 */
export { runImport } from './pipeline/run-import.js';
export type { ImportOptions, Confirmation, ImportEvent } from './options.js';
export type { ImportReport } from './report/summary.js';
export type { ImportCounts, ImportProgress } from './store/counts.js';
export { runScrub } from './scrub/run-scrub.js';
export type { ScrubOptions, ScrubProgress } from './scrub/options.js';
export type { ScrubReport } from './scrub/report.js';
export type { ScrubCounts, RemovedReason } from './scrub/rows.js';
export { createInlinePool, type InlinePoolOptions } from './workers/inline-pool.js';
export type { ChunkPool } from './workers/pool.js';

export { openStore, type OptoutStore } from './check/open-store.js';
export { Checker, type CheckRequest } from './check/checker.js';
export { decide, SEND_TYPES, type SendType, type Decision, type DecisionReason, type SuppressionInfo } from './check/rules.js';
export { normalizeEmail, POLICY_VERSION, ADDRESS_REASONS, type AddressReason, type NormalizedAddress } from './policy/email.js';

export { LevelStore } from './store/level/level-store.js';
export { openLedger, migrateDatabase, type OpenLedgerOptions, type MigrateResult } from './store/open.js';
export { ACCOUNT_WIDE, type Store, type Ledger, type CheckView, type StoreCapabilities } from './store/store.js';
export type { AuditAction, AuditRecord } from './store/audit.js';
export type { AnyJob, AddRecord, JobRecord, JobState } from './store/jobs.js';

export { addSuppression, lookupSuppressions, removeSuppression, type AddOptions, type AddResult, type RemoveOptions, type RemoveResult, type Suppression } from './manage/suppressions.js';
export { exportRows, exportText, EXPORT_COLUMNS, type ExportFormat, type ExportOptions, type ExportRow } from './manage/export.js';
export { rollbackJob, type RollbackResult } from './manage/rollback.js';
export { readAudit, type AuditQuery } from './manage/audit-log.js';
export { createKey, listKeys, revokeKey, type KeyRecord, type KeyScope } from './auth/api-keys.js';
export { unsubscribeUrl, unsubscribeLink, resolveLink, unsubscribeByLink, undoTicket, undoByLink, type UnsubscribeLink, type UnsubscribeLinkOptions, type LinkTarget } from './links/links.js';
export { rotateLinkKey, listLinkKeys, setLinkBaseUrl, getLinkSettings, DEFAULT_RETIRE_AFTER_DAYS, type LinkKeyInfo, type RotateOptions } from './links/keys.js';
export { addSync, listSyncs, getSync, removeSync, type SyncRecord, type AddSyncOptions } from './sync/syncs.js';
export { addEndpoint, listEndpoints, removeEndpoint, endpointUrl, type AddEndpointOptions, type AddedEndpoint, type EndpointSummary } from './inbound/endpoints.js';
export { receiveInbound, type InboundResult, type ReceiveOptions } from './inbound/receive.js';
export type { InboundRequest, ProviderName } from './inbound/provider.js';

export { OptoutError, isOptoutError, ERROR_CODES, ERROR_TABLE, type OptoutErrorCode, type ErrorLocation, type ErrorSpec } from './errors.js';
