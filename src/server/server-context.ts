/**
 * What the route modules share: the ports the server was given, its metrics and limiter, and the per-request
 * state (who called, what they asked, whether the audit event was written).
 */
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { NewAuditEvent } from '../audit/audit-event.ts';
import type { CredentialHash, MandateConfig } from '../config/config-schema.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { DecisionPoint } from '../policy/types.ts';
import type { Store } from '../store/store.ts';
import type { StepGate } from '../tasks/step-gate.ts';
import type { AuthenticatedClient } from './authenticate-client.ts';
import type { RequestAuditContext } from './audit-events.ts';
import type { SchemaView } from './authzen.ts';
import type { TaskAdmin } from './task-admin.ts';
import type { ServerMetrics } from './metrics.ts';
import type { TokenBucketLimiter } from './rate-limiter.ts';
import type { PolicyReloader, ReloadOutcome, ReloadTrigger } from './reload-policies.ts';

/** The policy engine as the server uses it (src/policy/policy-engine.ts `PolicyEngine` satisfies it). */
export interface PolicyEnginePort extends DecisionPoint, PolicyReloader {
  /** The active compiled set, for its schema (entity types, actions); undefined when none is loaded. */
  activeSet(): { schemaInfo: SchemaView } | undefined;
}

/** The decision log as the server uses it (src/audit/decision-log.ts `DecisionLog` satisfies it). */
export interface AuditRecorder {
  /** Group-committed; resolves once durable, rejects when the log refuses (the request must then be refused). */
  record(event: NewAuditEvent): Promise<void>;
  /** One event in its own transaction, for rare events (policy reloads). */
  appendNow(event: NewAuditEvent): Promise<void>;
}

/** A configured AuthZEN credential; absent `scopes` means `['evaluate']`. */
export type ServerCredential = CredentialHash;

/** The configuration sections the server reads. */
export type ServerConfig = Pick<MandateConfig, 'server' | 'rateLimit' | 'policy' | 'authzen'>;

/** The parts of the store the routes use. */
export type ServerStore = Pick<Store, 'ping' | 'principals' | 'tasks' | 'users' | 'lockdown' | 'revocations'>;

/** Everything route modules need. */
export interface ServerContext {
  config: ServerConfig;
  engine: PolicyEnginePort;
  store: ServerStore;
  /** The administrative revocations (end a task, disable a user, lockdown), shared with the CLI. */
  taskAdmin: TaskAdmin;
  auditLog: AuditRecorder;
  logger: Logger;
  clock: Clock;
  ids: IdGenerator | undefined;
  metrics: ServerMetrics;
  limiter: TokenBucketLimiter;
  publicUrl: string | undefined;
  /** The step gate for decisions inside live tasks (src/tasks/step-gate.ts); absent without the token service. */
  stepGate?: StepGate;
  /** Readiness of the identity sources (IdP keys, SPIFFE bundles) when the token service runs. */
  identityReadiness?: () => { ok: true; detail?: unknown } | { ok: false; reason: string; detail?: unknown };
  reloadPolicies(trigger: ReloadTrigger): Promise<ReloadOutcome>;
}

/** Per-request state, on `request.mandate`. */
export interface RequestState extends RequestAuditContext {
  client?: AuthenticatedClient;
  /** Set when the request's own audit event was already written (or failed): no refusal event is added. */
  auditHandled?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Mandate's per-request state; set by the first onRequest hook. */
    mandate: RequestState;
  }
  interface FastifyContextConfig {
    /** Audit name of the endpoint, e.g. `authzen.evaluation`. */
    endpoint?: string;
    /** Scopes of which the caller needs one; a route with this set requires authentication. */
    scopes?: readonly string[];
    /** Whether the per-client rate limit applies (a batch costs one token per evaluation). */
    rateLimited?: boolean;
    /** Whether an empty body labelled `application/json` is accepted (as no body) rather than refused. */
    allowEmptyBody?: boolean;
  }
}

/** Reads the per-request state (set on every request by the server's first hook). */
export function stateOf(request: FastifyRequest): RequestState {
  return request.mandate;
}
