/**
 * Decides one request against an active policy set, with Mandate's delegation semantics and fail-closed
 * rules on top of Cedar's.
 *
 * Delegation: a Cedar request has one principal, so a request made by agents for a user is decided as one
 * Cedar request per principal of `[user, ...actors]` with the same action, resource and context. The
 * decision is allow only if every one allows: an agent gets the intersection of its own rights and the
 * user's, never more.
 *
 * Fail closed: Cedar skips a policy whose evaluation errors, so an erroring `forbid` would silently not fire.
 * Entities and context are validated against the schema before evaluation (`validateRequest`, schema-typed
 * entity parsing), and any remaining evaluation error turns the decision into deny.
 */
import { performance } from 'node:perf_hooks';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthorizationAnswer } from '@cedar-policy/cedar-wasm/nodejs';
import type { Clock, IdGenerator } from '../core/ports.ts';
import { formatEntityRef, type Decision, type EntityRef, type PolicyRef, type PrincipalDecision } from '../core/decision.ts';
import {
  InvalidContextError,
  InvalidEntityError,
  InvalidRequestError,
  PolicyEngineError,
  UnknownActionError,
  UnknownEntityTypeError,
} from '../core/errors.ts';
import { assertRepresentable, collectRefs, entityKey, entitySlice, normalizeEntity } from './entities.ts';
import type { CompiledPolicySet } from './compile-policy-set.ts';
import type { AuthorizationRequest, EntityJson } from './types.ts';

/** A compiled set pre-parsed into the engine under `slot`. */
export interface ActiveSet extends CompiledPolicySet {
  /** Name under which schema and policies are pre-parsed in the engine. */
  slot: string;
  loadedAt: number;
  /** The backend that decides for this set. */
  backend: DecisionBackend;
}

/** Limits and ports for `authorize`. */
export interface AuthorizeOptions {
  clock: Clock;
  ids: IdGenerator;
  /** Maximum number of actors in a delegation chain. */
  maxDelegationDepth: number;
  /** Maximum number of caller-supplied entities. */
  maxRequestEntities: number;
}

/** Context keys that Mandate sets itself and callers may not. */
export const RESERVED_CONTEXT_KEYS = ['delegation', 'time'] as const;

/** The annotation that turns a determining permit into `approval_required`. */
export const APPROVAL_ANNOTATION = 'approval';

/**
 * Decides `request` against `set`. Throws a `MandateError` for malformed input; a policy's evaluation error
 * is a deny with `errors`, never an exception.
 */
export function authorize(set: ActiveSet, request: AuthorizationRequest, options: AuthorizeOptions): Decision {
  const started = performance.now();
  const { schemaInfo } = set;

  const action = schemaInfo.actions.get(request.action);
  if (!action) {
    throw new UnknownActionError(`action ${JSON.stringify(request.action)} is not defined by the policy schema; known actions: ${[...schemaInfo.actions.keys()].join(', ')}`);
  }
  const actors = request.delegation?.actors ?? [];
  if (actors.length > options.maxDelegationDepth) {
    throw new InvalidRequestError(`the delegation chain has ${actors.length} actors; at most ${options.maxDelegationDepth} are allowed`);
  }
  const chain: EntityRef[] = [request.principal, ...actors];
  const seenChain = new Set<string>();
  for (const p of chain) {
    checkType(p, 'principal', schemaInfo.entityTypes);
    if (!action.principalTypes.includes(p.type)) {
      throw new UnknownActionError(`action ${JSON.stringify(request.action)} does not apply to principals of type ${p.type}; it applies to ${action.principalTypes.join(', ') || 'none'}`);
    }
    const k = entityKey(p);
    if (seenChain.has(k)) throw new InvalidRequestError(`${k} appears twice in the delegation chain; cycles are refused`);
    seenChain.add(k);
  }
  checkType(request.resource, 'resource', schemaInfo.entityTypes);
  if (!action.resourceTypes.includes(request.resource.type)) {
    throw new UnknownActionError(`action ${JSON.stringify(request.action)} does not apply to resources of type ${request.resource.type}; it applies to ${action.resourceTypes.join(', ') || 'none'}`);
  }

  const callerContext = request.context ?? {};
  if (typeof callerContext !== 'object' || callerContext === null || Array.isArray(callerContext)) {
    throw new InvalidContextError('context must be a JSON object');
  }
  for (const key of RESERVED_CONTEXT_KEYS) {
    if (key in callerContext) {
      throw new InvalidContextError(`context.${key} is set by Mandate and may not be supplied; pass the delegation chain as delegation.actors (AuthZEN: context.delegation.actors)`);
    }
  }
  assertRepresentable(callerContext, 'context', InvalidContextError);
  assertRepresentable([request.action, ...chain.flatMap((p) => [p.type, p.id]), request.resource.type, request.resource.id], 'request', InvalidRequestError);

  // Entities: the directory's are authoritative; the caller may describe only entities it does not define.
  const requestEntities = new Map<string, EntityJson>();
  const ignored: string[] = [];
  const supplied = request.entities ?? [];
  if (supplied.length > options.maxRequestEntities) {
    throw new InvalidEntityError(`the request carries ${supplied.length} entities; at most ${options.maxRequestEntities} are allowed`);
  }
  for (const raw of supplied) {
    const e = normalizeEntity(raw, schemaInfo);
    const key = entityKey(e.uid);
    if (set.entities.has(key)) {
      ignored.push(key);
      continue;
    }
    if (requestEntities.has(key)) throw new InvalidEntityError(`entity ${key} is described twice in the request`);
    requestEntities.set(key, e);
  }
  const lookup = (key: string) => set.entities.get(key) ?? requestEntities.get(key);

  const user = request.principal.type === 'User' && actors.length > 0 ? request.principal : undefined;
  const context: Record<string, unknown> = {
    ...callerContext,
    delegation: {
      depth: actors.length,
      ...(user ? { user } : {}),
      agents: actors.filter((a) => a.type === 'Agent'),
    },
    time: { now: new Date(options.clock.now()).toISOString() },
  };

  const reasons: string[] = [];
  if (ignored.length > 0) reasons.push(`caller data ignored for entities the policy directory defines: ${ignored.join(', ')}`);

  const unknown = [...chain, request.resource].filter((r) => lookup(entityKey(r)) === undefined);
  if (unknown.length > 0) {
    return finish(set, options, started, 'deny', chain.map((p) => ({ principal: p, decision: 'deny', approvalRequired: false, determining: [], errors: [] })), [
      ...reasons,
      ...unknown.map((r) => `unknown entity ${formatEntityRef(r)}: describe it in the request or define it in the policy directory`),
    ], []);
  }

  const session = set.backend.begin({ set, chain, action: request.action, resource: request.resource, callerContext, context, lookup, requestEntities });
  const perPrincipal: PrincipalDecision[] = [];
  const errors: Decision['errors'] = [];
  for (const principal of chain) {
    const answer = session.evaluate(principal);
    const determining: PolicyRef[] = answer.reason.map((id) => {
      const p = set.policyById.get(id);
      return { id, effect: p?.effect ?? 'permit', ...(p ? { source: `${p.file}:${p.line}` } : {}) };
    });
    for (const e of answer.errors) errors.push({ principal: formatEntityRef(principal), ...e });
    const allowed = answer.decision === 'allow' && answer.errors.length === 0;
    const approvalRequired = allowed && determining.some((d) => set.policyById.get(d.id)?.annotations[APPROVAL_ANNOTATION] === 'required');
    perPrincipal.push({ principal, decision: allowed ? 'allow' : 'deny', approvalRequired, determining, errors: answer.errors });
  }

  for (const p of perPrincipal) {
    const who = formatEntityRef(p.principal);
    if (p.errors.length > 0) {
      reasons.push(`${who}: denied because evaluation failed in ${p.errors.map((e) => e.policyId).join(', ')} (any evaluation error denies)`);
    } else if (p.decision === 'allow') {
      reasons.push(`${who}: permitted by ${p.determining.map((d) => d.id).join(', ')}${p.approvalRequired ? ' (approval required)' : ''}`);
    } else if (p.determining.length > 0) {
      reasons.push(`${who}: forbidden by ${p.determining.map((d) => d.id).join(', ')}`);
    } else {
      reasons.push(`${who}: no policy permits this`);
    }
  }
  const outcome = perPrincipal.every((p) => p.decision === 'allow')
    ? perPrincipal.some((p) => p.approvalRequired)
      ? 'approval_required'
      : 'allow'
    : 'deny';
  return finish(set, options, started, outcome, perPrincipal, reasons, errors);
}

function finish(
  set: ActiveSet,
  options: AuthorizeOptions,
  started: number,
  decision: Decision['decision'],
  principals: PrincipalDecision[],
  reasons: string[],
  errors: Decision['errors'],
): Decision {
  return {
    decision,
    decisionId: options.ids.next(),
    policySetVersion: set.version,
    principals,
    reasons,
    errors,
    durationMicros: Math.round((performance.now() - started) * 1000),
  };
}

function checkType(ref: EntityRef, role: string, entityTypes: ReadonlySet<string>): void {
  if (typeof ref !== 'object' || ref === null || typeof ref.type !== 'string' || typeof ref.id !== 'string') {
    throw new InvalidRequestError(`${role} must be { type: string, id: string }`);
  }
  if (!entityTypes.has(ref.type)) {
    throw new UnknownEntityTypeError(`${role} type ${JSON.stringify(ref.type)} is not defined by the policy schema; known types: ${[...entityTypes].sort().join(', ')}`);
  }
}

/** What one decision needs from a backend, after Mandate's own request checks. */
export interface BackendRequest {
  set: ActiveSet;
  /** `[principal, ...actors]`, all known entities. */
  chain: readonly EntityRef[];
  action: string;
  resource: EntityRef;
  /** The caller's context (entity references in it are seeds of the entity slice). */
  callerContext: Record<string, unknown>;
  /** The full context, with `delegation` and `time` set by Mandate (Cedar JSON). */
  context: Record<string, unknown>;
  /** Finds an entity of the directory or of the request (Cedar JSON) by key. */
  lookup: (key: string) => EntityJson | undefined;
  /** The caller-described entities (normalised Cedar JSON), by key. */
  requestEntities: ReadonlyMap<string, EntityJson>;
}

/** One Cedar answer for one principal. */
export interface BackendAnswer {
  decision: 'allow' | 'deny';
  /** Determining policy ids, as Cedar reports them. */
  reason: string[];
  /** Policies whose evaluation errored, as Cedar reports them. */
  errors: Array<{ policyId: string; message: string }>;
}

/**
 * An evaluation backend: the reference engine (cedar-wasm) or the compiled one. `begin` validates the
 * request's entities and context against the schema (throwing `InvalidEntityError` / `InvalidContextError`)
 * and returns a session that evaluates the request once per principal.
 */
export interface DecisionBackend {
  readonly name: 'reference' | 'compiled';
  begin(request: BackendRequest): { evaluate(principal: EntityRef): BackendAnswer };
}

/** The entities one request can reach: the part shared by every request (from the policies' literals) and its own. */
export interface RequestSlice {
  /** Directory entities reachable from the policies' literals (the same for every request). */
  literal: readonly EntityJson[];
  literalKeys: ReadonlySet<string>;
  /** The rest: from the principals, the resource and the context, transitively. */
  dynamic: EntityJson[];
  dynamicKeys: ReadonlySet<string>;
}

/**
 * The entities one request can reach, which is all the engine is given: the principals, the resource, the
 * entities the context and the policies name, their ancestors and every entity their attributes reference,
 * transitively. An entity outside it does not exist for the decision. The literals' part is computed once
 * per policy set; only a caller-described entity that it reaches is added per request.
 */
export function requestSlice(req: BackendRequest): RequestSlice {
  const { set } = req;
  const seeds: EntityRef[] = [...req.chain, req.resource];
  collectRefs(req.callerContext, set.schemaInfo.entityTypes, seeds);
  if (set.literalDangling.size > 0) {
    for (const [key, e] of req.requestEntities) if (set.literalDangling.has(key)) seeds.push(e.uid);
  }
  const dynamicKeys = new Set<string>();
  const dynamic = entitySlice(seeds, req.lookup, set.schemaInfo.entityTypes, undefined, { skip: set.literalSliceKeys, seen: dynamicKeys });
  return { literal: set.literalSlice, literalKeys: set.literalSliceKeys, dynamic, dynamicKeys };
}

/** The reference backend: cedar-wasm `statefulIsAuthorized` over the pre-parsed schema and set in `slot`. */
export const referenceBackend: DecisionBackend = {
  name: 'reference',
  begin(req) {
    const { set } = req;
    const slice = requestSlice(req);
    const entities = slice.literal.length > 0 ? [...slice.literal, ...slice.dynamic] : slice.dynamic;
    const actionUid = { type: set.schemaInfo.actionType, id: req.action };
    return {
      evaluate(principal) {
        let answer: AuthorizationAnswer;
        try {
          answer = cedar.statefulIsAuthorized({
            principal,
            action: actionUid,
            resource: req.resource,
            context: req.context as never,
            preparsedSchemaName: set.slot,
            preparsedPolicySetId: set.slot,
            validateRequest: true,
            entities: entities as never,
          });
        } catch (err) {
          throw new PolicyEngineError('the policy engine failed; the request is denied', { cause: err, detail: 'statefulIsAuthorized threw' });
        }
        if (answer.type === 'failure') throw classifyFailure(set, actionUid, req.context, entities, answer.errors.map((e) => e.message));
        const { decision, diagnostics } = answer.response;
        return { decision, reason: diagnostics.reason, errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })) };
      },
    };
  },
};

/**
 * Maps the engine's refusal of a request (not a policy error) to the error that tells the caller what to fix.
 * The engine's answer does not say which part it refused, so — on this rare path only — the context and the
 * entities are checked on their own against the schema.
 */
function classifyFailure(set: ActiveSet, action: EntityRef, context: Record<string, unknown>, entities: EntityJson[], messages: string[]): Error {
  const message = messages.join('; ') || 'the request does not match the policy schema';
  try {
    if (cedar.checkParseContext({ context: context as never, schema: set.schemaText, action }).type === 'failure') {
      return new InvalidContextError(`context does not match the policy schema: ${message}`);
    }
    if (cedar.checkParseEntities({ entities: entities as never, schema: set.schemaText }).type === 'failure') {
      return new InvalidEntityError(`entity data does not match the policy schema: ${message}`);
    }
  } catch (err) {
    return new PolicyEngineError('the policy engine failed; the request is denied', { cause: err, detail: 'classifying a refusal threw' });
  }
  return new InvalidRequestError(`the request does not match the policy schema: ${message}`);
}
