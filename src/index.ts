export { runImport } from './pipeline/run-import.js';
export type { ImportOptions, Confirmation, ImportEvent } from './options.js';
export type { ImportReport } from './report/summary.js';
export type { ImportCounts, ImportProgress } from './pipeline/stats.js';
export { LevelStore } from './store/level-store.js';
export { checkAddress, type CheckResult } from './check/check-address.js';
export { normalizeEmail, POLICY_VERSION, ADDRESS_REASONS, type AddressReason, type NormalizedAddress } from './policy/email.js';
export { OptoutError, isOptoutError, ERROR_CODES, type OptoutErrorCode, type ErrorLocation } from './errors.js';
