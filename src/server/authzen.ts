/**
 * OpenID AuthZEN Authorization API 1.0 ↔ Mandate: pure translation functions, no I/O. The routes in
 * `authzen-routes.ts` call these; unit tests call them directly.
 *
 * Mapping (docs/AUTHZEN.md has the full table and examples):
 * - `subject {type, id, properties}` → the Cedar principal on whose authority the request is made (the user).
 *   `type` matches the schema's entity types case-insensitively (`user` → `User`); `properties` become the
 *   entity's attributes, except `properties.parents` (a list of `{type, id}`), which become its parents.
 * - `resource` likewise; `action.name` → the Cedar action id.
 * - `context` → the Cedar context, except `context.delegation = { actors: [{type, id, properties?}, ...] }`,
 *   the delegation chain from the first delegate to the caller, which becomes `AuthorizationRequest.delegation`.
 * - The decision: `decision: true` only for `allow`. `approval_required` is `decision: false` with
 *   `context.approval` (DESIGN.md "Approval"). `context.id` is the decision id; `context.reason_admin` and
 *   `context.reason_user` are Reason Fields (language tag → text) as the spec names them.
 *
 * @see https://openid.net/specs/authorization-api-1_0.html (§5 information model, §6 evaluation, §7 evaluations, §9 metadata)
 */
import { z } from 'zod';
import { formatEntityRef, type Decision, type EntityRef } from '../core/decision.ts';
import {
  InvalidEntityError,
  InvalidRequestError,
  UnknownActionError,
  UnknownEntityTypeError,
  type MandateError,
} from '../core/errors.ts';
import type { AuthorizationRequest, EntityJson } from '../policy/types.ts';

/** Most evaluations one `/access/v1/evaluations` request may carry. */
export const MAX_EVALUATIONS = 100;
/** Most actors a delegation chain may list on the wire (the engine applies its own, smaller, limit). */
export const MAX_WIRE_ACTORS = 16;

const properties = z.record(z.string(), z.unknown());

/** An AuthZEN Subject or Resource: `type`, `id`, optional `properties` (§5.1, §5.2). */
export const AuthzenEntityV1 = z.strictObject({
  type: z.string().min(1).max(128),
  id: z.string().min(1).max(512),
  properties: properties.optional(),
});
/** An AuthZEN Subject or Resource. */
export type AuthzenEntity = z.infer<typeof AuthzenEntityV1>;

/** An AuthZEN Action: `name`, optional `properties` (§5.3). */
export const AuthzenActionV1 = z.strictObject({
  name: z.string().min(1).max(128),
  properties: properties.optional(),
});
/** An AuthZEN Action. */
export type AuthzenAction = z.infer<typeof AuthzenActionV1>;

/** An Access Evaluation request: the 4-tuple (§6.1). */
export const AccessEvaluationRequestV1 = z.strictObject({
  subject: AuthzenEntityV1,
  action: AuthzenActionV1,
  resource: AuthzenEntityV1,
  context: properties.optional(),
});
/** An Access Evaluation request. */
export type AccessEvaluationRequest = z.infer<typeof AccessEvaluationRequestV1>;

/** The batch semantics of §7.1.2.1. */
export const EvaluationsSemanticV1 = z.enum(['execute_all', 'deny_on_first_deny', 'permit_on_first_permit']);
/** One of the batch semantics. */
export type EvaluationsSemantic = z.infer<typeof EvaluationsSemanticV1>;

const EvaluationItemV1 = z.strictObject({
  subject: AuthzenEntityV1.optional(),
  action: AuthzenActionV1.optional(),
  resource: AuthzenEntityV1.optional(),
  context: properties.optional(),
});

/**
 * An Access Evaluations request (§7.1): top-level values are defaults that each item of `evaluations` may
 * override. `options` is open-ended by the spec; only `evaluations_semantic` is read.
 */
export const AccessEvaluationsRequestV1 = z.strictObject({
  subject: AuthzenEntityV1.optional(),
  action: AuthzenActionV1.optional(),
  resource: AuthzenEntityV1.optional(),
  context: properties.optional(),
  evaluations: z.array(EvaluationItemV1).min(1).max(MAX_EVALUATIONS).optional(),
  options: z.looseObject({ evaluations_semantic: EvaluationsSemanticV1.optional() }).optional(),
});
/** An Access Evaluations request. */
export type AccessEvaluationsRequest = z.infer<typeof AccessEvaluationsRequestV1>;

/** The delegation chain carried in `context.delegation`. */
export const AuthzenDelegationV1 = z.strictObject({
  actors: z.array(AuthzenEntityV1).min(1).max(MAX_WIRE_ACTORS),
});

/** A Reason Field: language tag → text (§6.2.2). */
export type ReasonField = Record<string, string>;

/** One principal's part of a decision, as Mandate reports it in the response context. */
export interface PrincipalReport {
  principal: string;
  decision: 'allow' | 'deny';
  approval_required: boolean;
  determining: Array<{ id: string; effect: 'permit' | 'forbid'; source?: string }>;
  errors: Array<{ policyId: string; message: string }>;
}

/** The response context Mandate returns with every decision. */
export interface DecisionContext {
  /** The decision id; the audit event carries the same. */
  id: string;
  policy_set_version: string;
  reason_admin: ReasonField;
  reason_user?: ReasonField;
  /** Per principal of the chain: the user, then each actor. */
  principals: PrincipalReport[];
  approval?: { required: true; policies: string[]; how: string; id?: string; status?: string; expires_at?: string; poll?: string };
  /** Inside a task: the stable code of a step refused before policy (workflow violation, ended task). */
  reason_code?: string;
}

/** An Access Evaluation response (§6.2), or one item of an Access Evaluations response. */
export interface AccessEvaluationResponse {
  decision: boolean;
  context?: DecisionContext | { error: { status: number; code: string; message: string } } | { id: string; reason: string };
}

/** What the translation needs to know about the active schema. */
export interface SchemaView {
  entityTypes: ReadonlySet<string>;
  actions: ReadonlyMap<string, unknown>;
}

/** Text shown for `approval.how` until the approval API exists. */
export const APPROVAL_HOW = 'ask an approver (a later release adds the approval API)';
/** How to obtain an approval requested inside a task. */
export const TASK_APPROVAL_HOW = 'an approver approves it at POST /approvals/v1/{id}/decision; then repeat this exact request with context.approval_id';

function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .slice(0, 10)
    .map((i) => {
      const path = [prefix, ...i.path.map(String)].filter((s) => s !== '').join('.');
      return `${path || '(body)'}: ${i.message}`;
    })
    .join('; ');
}

function parseWith<T>(schema: z.ZodType<T>, body: unknown, prefix = ''): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidRequestError('the request body must be a JSON object');
  }
  const r = schema.safeParse(body);
  if (!r.success) throw new InvalidRequestError(`the request does not match the AuthZEN schema: ${describeIssues(r.error, prefix)}`);
  return r.data;
}

/**
 * Validates an Access Evaluation request body; throws `InvalidRequestError` naming each problem's path.
 * @see AuthZEN 1.0 §6.1
 */
export function parseEvaluationRequest(body: unknown): AccessEvaluationRequest {
  return parseWith(AccessEvaluationRequestV1, body);
}

/**
 * Validates an Access Evaluations request body; throws `InvalidRequestError` naming each problem's path.
 * @see AuthZEN 1.0 §7.1
 */
export function parseEvaluationsRequest(body: unknown): AccessEvaluationsRequest {
  return parseWith(AccessEvaluationsRequestV1, body);
}

/**
 * Expands a batch into complete evaluation requests: each item's `subject`, `action`, `resource` and `context`
 * take precedence over the top-level defaults, key by key (a whole key replaces the default, it is not
 * merged). An item still missing a required key yields an `InvalidRequestError` in its place, so one bad item
 * does not void the others.
 * @see AuthZEN 1.0 §7.1.1 (default values)
 */
export function expandEvaluations(request: AccessEvaluationsRequest): Array<AccessEvaluationRequest | InvalidRequestError> {
  const items = request.evaluations ?? [{}];
  return items.map((item, i) => {
    const subject = item.subject ?? request.subject;
    const action = item.action ?? request.action;
    const resource = item.resource ?? request.resource;
    const context = item.context ?? request.context;
    const missing = [subject ? '' : 'subject', action ? '' : 'action', resource ? '' : 'resource'].filter((s) => s !== '');
    if (!subject || !action || !resource) {
      return new InvalidRequestError(`evaluations[${i}] has no ${missing.join(', ')}, and the request gives no default for it`);
    }
    return { subject, action, resource, ...(context === undefined ? {} : { context }) };
  });
}

/**
 * Finds the schema's entity type for an AuthZEN type, ignoring case (`user` → `User`); an exact match wins.
 * Throws `UnknownEntityTypeError` when the schema defines no such type.
 * @param type - the AuthZEN `type`
 * @param role - where it appeared, for the message (`subject`, `resource`, `context.delegation.actors[0]`)
 */
export function resolveEntityType(type: string, role: string, schema: SchemaView): string {
  if (schema.entityTypes.has(type)) return type;
  const lower = type.toLowerCase();
  const matches = [...schema.entityTypes].filter((t) => t.toLowerCase() === lower);
  if (matches.length === 1 && matches[0] !== undefined) return matches[0];
  throw new UnknownEntityTypeError(
    `${role}.type ${JSON.stringify(type)} is not an entity type of the policy schema; known types: ${[...schema.entityTypes].sort().join(', ')}`,
  );
}

/** Turns AuthZEN `properties` into Cedar attributes and parents; `properties.parents` lists `{type, id}`. */
function describeEntity(uid: EntityRef, props: Record<string, unknown>, role: string, schema: SchemaView): EntityJson {
  const { parents: rawParents, ...attrs } = props;
  let parents: EntityRef[] = [];
  if (rawParents !== undefined) {
    const r = z.array(z.strictObject({ type: z.string().min(1).max(128), id: z.string().max(512) })).max(100).safeParse(rawParents);
    if (!r.success) {
      throw new InvalidEntityError(`${role}.properties.parents must be a list of { type, id }: ${describeIssues(r.error, `${role}.properties.parents`)}`);
    }
    parents = r.data.map((p, i) => ({ type: resolveEntityType(p.type, `${role}.properties.parents[${i}]`, schema), id: p.id }));
  }
  return { uid, attrs, parents };
}

function toRef(entity: AuthzenEntity, role: string, schema: SchemaView, entities: EntityJson[]): EntityRef {
  const ref = { type: resolveEntityType(entity.type, role, schema), id: entity.id };
  if (entity.properties !== undefined) entities.push(describeEntity(ref, entity.properties, role, schema));
  return ref;
}

/**
 * Translates a validated AuthZEN evaluation into Mandate's `AuthorizationRequest`.
 * Throws `UnknownEntityTypeError`, `UnknownActionError`, `InvalidEntityError` or `InvalidRequestError`.
 * @param request - a request validated by {@link parseEvaluationRequest} (or expanded from a batch)
 * @param schema - the active set's entity types and actions
 * @example
 * toAuthorizationRequest({ subject: { type: 'user', id: 'alice' }, action: { name: 'read' },
 *   resource: { type: 'dataset', id: 'wiki' }, context: { delegation: { actors: [{ type: 'agent', id: 'helper' }] } } }, schema)
 * // → { principal: User::"alice", action: 'read', resource: Dataset::"wiki", delegation: { actors: [Agent::"helper"] } }
 */
export function toAuthorizationRequest(request: AccessEvaluationRequest, schema: SchemaView): AuthorizationRequest {
  const entities: EntityJson[] = [];
  const principal = toRef(request.subject, 'subject', schema, entities);
  const resource = toRef(request.resource, 'resource', schema, entities);
  if (!schema.actions.has(request.action.name)) {
    throw new UnknownActionError(
      `action.name ${JSON.stringify(request.action.name)} is not an action of the policy schema; known actions: ${[...schema.actions.keys()].sort().join(', ')}`,
    );
  }
  if (request.action.properties !== undefined && Object.keys(request.action.properties).length > 0) {
    throw new InvalidRequestError('action.properties is not supported: Cedar actions carry no request attributes; put them in context');
  }
  const { delegation: rawDelegation, ...context } = request.context ?? {};
  let actors: EntityRef[] = [];
  if (rawDelegation !== undefined) {
    const r = AuthzenDelegationV1.safeParse(rawDelegation);
    if (!r.success) {
      throw new InvalidRequestError(`context.delegation must be { actors: [{ type, id, properties? }, ...] }: ${describeIssues(r.error, 'context.delegation')}`);
    }
    actors = r.data.actors.map((a, i) => toRef(a, `context.delegation.actors[${i}]`, schema, entities));
  }
  return {
    principal,
    action: request.action.name,
    resource,
    context,
    ...(actors.length > 0 ? { delegation: { actors } } : {}),
    ...(entities.length > 0 ? { entities } : {}),
  };
}

/** Options of {@link toEvaluationResponse}. */
export interface ResponseOptions {
  /** Tells whether a policy carries `@approval("required")`, to list exactly those in `context.approval`. */
  isApprovalPolicy?: (policyId: string) => boolean;
}

/**
 * Renders a decision as an AuthZEN response: `decision` is true only for `allow`.
 * @see AuthZEN 1.0 §6.2 (response, reason fields)
 */
export function toEvaluationResponse(decision: Decision, options: ResponseOptions = {}): AccessEvaluationResponse {
  const principals: PrincipalReport[] = decision.principals.map((p) => ({
    principal: formatEntityRef(p.principal),
    decision: p.decision,
    approval_required: p.approvalRequired,
    determining: p.determining.map((d) => ({ id: d.id, effect: d.effect, ...(d.source === undefined ? {} : { source: d.source }) })),
    errors: p.errors,
  }));
  const context: DecisionContext = {
    id: decision.decisionId,
    policy_set_version: decision.policySetVersion,
    reason_admin: { en: decision.reasons.join('; ') || `decision: ${decision.decision}` },
    principals,
  };
  if (decision.decision === 'deny') {
    context.reason_user = { en: 'Access denied by policy.' };
  } else if (decision.decision === 'approval_required') {
    const permits = decision.principals.filter((p) => p.approvalRequired).flatMap((p) => p.determining.filter((d) => d.effect === 'permit').map((d) => d.id));
    const marked = options.isApprovalPolicy ? permits.filter((id) => options.isApprovalPolicy?.(id)) : permits;
    context.reason_user = { en: 'This action needs the approval of a person authorized to approve it.' };
    context.approval = { required: true, policies: [...new Set(marked.length > 0 ? marked : permits)], how: APPROVAL_HOW };
  }
  return { decision: decision.decision === 'allow', context };
}

/**
 * Renders an error of one batch item in place of its decision: closed (`false`), with the error in
 * `context.error` (§7.2 errors: "Decisions default to closed").
 */
export function errorEvaluationResponse(error: MandateError): AccessEvaluationResponse {
  return { decision: false, context: { error: { status: error.status, code: error.code, message: error.description } } };
}

/**
 * Runs a batch under a semantic and returns the responses in request order: `execute_all` runs every item,
 * `deny_on_first_deny` stops after the first `false` (a deny, an approval requirement or an error),
 * `permit_on_first_permit` stops after the first `true`.
 * @param items - the expanded items
 * @param semantic - the batch semantic (default `execute_all`)
 * @param evaluate - evaluates one item; must not throw (errors become `false` responses)
 * @see AuthZEN 1.0 §7.1.2.1
 */
export async function runEvaluations<T>(
  items: readonly T[],
  semantic: EvaluationsSemantic,
  evaluate: (item: T, index: number) => Promise<AccessEvaluationResponse>,
): Promise<AccessEvaluationResponse[]> {
  const out: AccessEvaluationResponse[] = [];
  for (let i = 0; i < items.length; i++) {
    const r = await evaluate(items[i] as T, i);
    out.push(r);
    if (semantic === 'deny_on_first_deny' && !r.decision) break;
    if (semantic === 'permit_on_first_permit' && r.decision) break;
  }
  return out;
}

/** The PDP metadata document (§9): `policy_decision_point` is the base URL it is served from. */
export interface AuthzenMetadata {
  policy_decision_point: string;
  access_evaluation_endpoint: string;
  access_evaluations_endpoint: string;
}

/**
 * Builds the metadata document served at `/.well-known/authzen-configuration`.
 * @param baseUrl - the PDP's base URL, without a trailing slash (e.g. `https://mandate.example.com`)
 * @see AuthZEN 1.0 §9
 */
export function authzenMetadata(baseUrl: string): AuthzenMetadata {
  const base = baseUrl.replace(/\/+$/, '');
  return {
    policy_decision_point: base,
    access_evaluation_endpoint: `${base}/access/v1/evaluation`,
    access_evaluations_endpoint: `${base}/access/v1/evaluations`,
  };
}
