/**
 * Prometheus metrics of one server, in a Registry of its own (never prom-client's global one, so that two
 * servers in a process — tests, or a later admin listener — never share or double-register series).
 *
 * @see https://prometheus.io/docs/practices/naming/ (units in names, `_total` for counters)
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DecisionOutcome } from '../core/decision.ts';

/** A decision's outcome as metrics count it: the three outcomes, or `error` when no decision was made. */
export type MetricOutcome = DecisionOutcome | 'error';

/**
 * Buckets of `mandate_decision_duration_seconds`: a decision takes tens of microseconds to a few
 * milliseconds, so the buckets run from 10 µs to 100 ms.
 */
export const DECISION_DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/** The server's metrics. */
export interface ServerMetrics {
  readonly registry: Registry;
  /** Counts a decision (or a failure to decide) and observes its evaluation time. */
  observeDecision(outcome: MetricOutcome, durationMicros?: number): void;
  /** Records the active policy set version (`mandate_policy_set_info{version} 1`), or none. */
  setPolicyVersion(version: string | undefined): void;
  /** Counts a policy reload attempt. */
  countReload(result: 'ok' | 'refused'): void;
  /** Counts a request refused because its audit event could not be written. */
  countAuditRefused(): void;
  /** Counts an HTTP response by route pattern (never the raw URL, which would explode cardinality). */
  countRequest(route: string, method: string, status: number): void;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Collect prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
}

/** Creates the metrics of one server in a fresh Registry. */
export function createMetrics(options: MetricsOptions = {}): ServerMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const decisions = new Counter({
    name: 'mandate_decisions_total',
    help: 'Policy decisions by outcome; error counts requests for which no decision could be made.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // Zero series from the start, so that dashboards and alerts see every outcome before it first happens.
  for (const o of ['allow', 'deny', 'approval_required', 'error'] as const) decisions.inc({ outcome: o }, 0);
  const duration = new Histogram({
    name: 'mandate_decision_duration_seconds',
    help: 'Time the policy engine took to decide one request (all principals of its chain).',
    buckets: [...DECISION_DURATION_BUCKETS_SECONDS],
    registers: [registry],
  });
  const policyInfo = new Gauge({
    name: 'mandate_policy_set_info',
    help: 'The active policy set: 1 for its version, no series when none is loaded.',
    labelNames: ['version'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'mandate_policy_reloads_total',
    help: 'Policy reload attempts: ok (loaded or unchanged) or refused (invalid set; the previous one stays active).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const r of ['ok', 'refused'] as const) reloads.inc({ result: r }, 0);
  const auditRefused = new Counter({
    name: 'mandate_audit_refused_total',
    help: 'Requests refused because their audit event could not be committed (requests are refused rather than unlogged).',
    registers: [registry],
  });
  const requests = new Counter({
    name: 'mandate_http_requests_total',
    help: 'HTTP responses by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  return {
    registry,
    observeDecision(outcome, durationMicros) {
      decisions.inc({ outcome });
      if (durationMicros !== undefined) duration.observe(durationMicros / 1e6);
    },
    setPolicyVersion(version) {
      policyInfo.reset();
      if (version !== undefined) policyInfo.set({ version }, 1);
    },
    countReload(result) {
      reloads.inc({ result });
    },
    countAuditRefused() {
      auditRefused.inc();
    },
    countRequest(route, method, status) {
      requests.inc({ route, method, status: String(status) });
    },
  };
}
