/** The server's public surface: what `mandate serve`, `mandate demo` and tests import. */
export { createServer, type CreateServerOptions, type MandateServer } from './create-server.ts';
export { reloadPolicies, formatDiagnostic, type ReloadDeps, type ReloadOutcome, type ReloadTrigger, type PolicyReloader, type DurableAuditAppender } from './reload-policies.ts';
export { createLogger, REDACT_PATHS, type LoggerOptions } from './logger.ts';
export { createMetrics, DECISION_DURATION_BUCKETS_SECONDS, type MetricOutcome, type MetricsOptions, type ServerMetrics } from './metrics.ts';
export {
  createClientErrorHandler,
  createErrorHandler,
  PROBLEM_JSON,
  problemType,
  renderError,
  toMandateError,
  type ErrorFormat,
  type RenderedError,
} from './error-handler.ts';
export {
  AccessEvaluationRequestV1,
  AccessEvaluationsRequestV1,
  APPROVAL_HOW,
  authzenMetadata,
  errorEvaluationResponse,
  EvaluationsSemanticV1,
  expandEvaluations,
  MAX_EVALUATIONS,
  resolveEntityType,
  parseEvaluationRequest,
  parseEvaluationsRequest,
  runEvaluations,
  toAuthorizationRequest,
  toEvaluationResponse,
  type AccessEvaluationRequest,
  type AccessEvaluationResponse,
  type AccessEvaluationsRequest,
  type AuthzenMetadata,
  type DecisionContext,
  type EvaluationsSemantic,
  type SchemaView,
} from './authzen.ts';
export { authenticateBearer, CLIENT_SCOPES, DEFAULT_SCOPES, type AuthenticatedClient, type ClientScope, type CredentialEntry } from './authenticate-client.ts';
export { TokenBucketLimiter, type RateLimitResult, type RateLimitSettings } from './rate-limiter.ts';
export { checkReadiness, type ReadinessCheck, type ReadinessReport } from './health-routes.ts';
export type { AuditRecorder, PolicyEnginePort, ServerConfig, ServerCredential } from './server-context.ts';
export { ADMIN_PATHS } from './admin-routes.ts';
export { AUTHZEN_PATHS } from './authzen-routes.ts';
export { HEALTH_PATHS } from './health-routes.ts';
