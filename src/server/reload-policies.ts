/**
 * Reloads the policy directory, the one way every trigger goes through: the admin API, SIGHUP (the CLI) and
 * the directory watcher. A set that does not validate is refused whole and the previous set stays active
 * (src/policy/policy-engine.ts); either way the attempt is counted, logged and audited.
 */
import { createAuditEvent, type NewAuditEvent } from '../audit/audit-event.ts';
import { InternalError, isMandateError, PolicySetInvalidError, type MandateError } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { LoadResult } from '../policy/policy-engine.ts';
import type { PolicyDiagnostic, PolicySetInfo, PolicySetStatus } from '../policy/types.ts';
import type { Logger } from 'pino';
import { clip } from './audit-events.ts';
import type { ServerMetrics } from './metrics.ts';

/** The part of the policy engine a reload needs. */
export interface PolicyReloader extends PolicySetStatus {
  reload(dir: string): Promise<LoadResult>;
}

/** The part of the decision log a reload needs: an event durable before the caller goes on. */
export interface DurableAuditAppender {
  appendNow(event: NewAuditEvent): Promise<void>;
}

/** Dependencies of {@link reloadPolicies}. */
export interface ReloadDeps {
  engine: PolicyReloader;
  /** The policy directory to read. */
  policyDir: string;
  auditLog: DurableAuditAppender;
  logger: Logger;
  clock: Clock;
  ids?: IdGenerator;
  metrics?: ServerMetrics;
}

/** Who asked for the reload, for the audit event. */
export interface ReloadTrigger {
  /** `admin-api`, `sighup`, `watch`, `startup`. */
  source: string;
  /** Authenticated client id, for the admin API. */
  actor?: string;
  traceId?: string;
  requestId?: string;
}

/** What a reload did. `audited` is false when the audit event could not be written (the outcome stands). */
export type ReloadOutcome =
  | { ok: true; info: PolicySetInfo; changed: boolean; audited: boolean; auditError?: MandateError }
  | { ok: false; error: MandateError; activeVersion: string | undefined; audited: boolean; auditError?: MandateError };

/** Renders a diagnostic as `file:line:col: message`. */
export function formatDiagnostic(d: PolicyDiagnostic): string {
  const where = d.position ? `${d.position.file}:${d.position.line}:${d.position.column}: ` : '';
  return `${where}${d.message}`;
}

/**
 * Reloads the policy directory and records the attempt: metrics (`mandate_policy_reloads_total`,
 * `mandate_policy_set_info`), a log line and a durable audit event (`policy.load` or `policy.reject`).
 * Never throws: the outcome says whether the new set is active, and whether the audit event was written.
 * @param deps - engine, directory, audit log, logger, clock, metrics
 * @param trigger - who asked
 * @example
 * process.on('SIGHUP', () => void reloadPolicies(deps, { source: 'sighup' }));
 */
export async function reloadPolicies(deps: ReloadDeps, trigger: ReloadTrigger): Promise<ReloadOutcome> {
  const result = await deps.engine.reload(deps.policyDir);
  const base = {
    ...(trigger.actor === undefined ? {} : { actor: clip(trigger.actor, 512) }),
    ...(trigger.traceId === undefined ? {} : { traceId: trigger.traceId }),
  };
  const data = { source: trigger.source, ...(trigger.requestId === undefined ? {} : { requestId: clip(trigger.requestId, 128) }) };
  let outcome: ReloadOutcome;
  let event: NewAuditEvent;
  if (result.ok) {
    deps.metrics?.countReload('ok');
    deps.metrics?.setPolicyVersion(result.info.version);
    deps.logger.info({ version: result.info.version, changed: result.changed, policies: result.info.policies.length, source: trigger.source }, 'policy set loaded');
    outcome = { ok: true, info: result.info, changed: result.changed, audited: false };
    event = createAuditEvent(
      {
        type: 'policy.load',
        outcome: 'success',
        ...base,
        policySetVersion: result.info.version,
        data: { ...data, changed: result.changed, policies: result.info.policies.length, warnings: result.info.warnings.length },
      },
      deps,
    );
  } else {
    const error = isMandateError(result.error)
      ? result.error
      : new InternalError('the policy directory could not be read', { cause: result.error });
    deps.metrics?.countReload('refused');
    const diagnostics = error instanceof PolicySetInvalidError ? ((error.extra?.diagnostics as PolicyDiagnostic[] | undefined) ?? []) : [];
    deps.logger.warn(
      { code: error.code, detail: error.detail, diagnostics: diagnostics.slice(0, 20).map(formatDiagnostic), activeVersion: result.activeVersion, source: trigger.source },
      'policy set refused; the previous set stays active',
    );
    outcome = { ok: false, error, activeVersion: result.activeVersion, audited: false };
    event = createAuditEvent(
      {
        type: 'policy.reject',
        outcome: 'failure',
        ...base,
        ...(result.activeVersion === undefined ? {} : { policySetVersion: result.activeVersion }),
        reasons: [clip(`${error.code}: ${error.description}`, 2048), ...diagnostics.slice(0, 63).map((d) => clip(formatDiagnostic(d), 2048))],
        data: { ...data, diagnostics: diagnostics.length },
      },
      deps,
    );
  }
  try {
    await deps.auditLog.appendNow(event);
    outcome.audited = true;
  } catch (err) {
    const auditError = isMandateError(err) ? err : new InternalError('the audit event could not be written', { cause: err });
    outcome.auditError = auditError;
    deps.logger.error({ code: auditError.code, detail: auditError.detail, source: trigger.source }, 'the audit event of a policy reload could not be written');
  }
  return outcome;
}
