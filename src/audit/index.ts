/** The audit capability's public surface. */
export {
  AuditDataV1,
  AuditEventTypeV1,
  AuditEventV1,
  AuditOutcomeV1,
  createAuditEvent,
  isSecretKeyName,
  looksLikeJwt,
  MAX_AUDIT_DATA_BYTES,
  NewAuditEventV1,
  parseNewAuditEvent,
  redactAuditData,
  type AuditEvent,
  type AuditEventFields,
  type AuditEventType,
  type AuditOutcome,
  type NewAuditEvent,
} from './audit-event.ts';
export { DecisionLog, type DecisionLogOptions, type DecisionLogStats } from './decision-log.ts';
