/**
 * The OAuth token service: RFC 8693 token exchange (a user's token, or a mandate for re-delegation, exchanged
 * by an authenticated agent for a mandate), `client_credentials` for machine-only work, RFC 7662
 * introspection and RFC 7009 revocation. HTTP-free: the routes in src/server/oauth-routes.ts parse the form
 * and render the result or the error.
 *
 * Rules that hold here (DESIGN.md): the agent is the OAuth client of its exchange and an `actor_token`, if sent,
 * must name that same principal; scopes are computed by policy for the user AND every actor, never widened, and
 * a re-exchange only narrows; a mandate has exactly one audience, lives minutes and never outlives the tokens it
 * came from; DPoP binds it when the client proves a key (and must, when its registration says so); every
 * issuance and revocation commits with its audit event.
 */
import { randomUUID } from 'node:crypto';
import { decodeJwt, jwtVerify, SignJWT, type JWSHeaderParameters, type JWTPayload, type CryptoKey, type KeyObject } from 'jose';
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { EntityRef } from '../core/decision.ts';
import {
  InvalidGrantError,
  InvalidDpopProofError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  UnauthorizedClientError,
  UnsupportedGrantTypeError,
  UnsupportedTokenTypeError,
  isMandateError,
  MandateError,
  PolicyNotLoadedError,
} from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { AuthenticatedClient, AuthenticatedUser, PrincipalLookup, RegisteredPrincipal } from '../identity/types.ts';
import type { DecisionPoint, EntityJson } from '../policy/types.ts';
import type { IssuedTokenRecord, LockdownStore, RefreshRotation, RefreshTokenRecord, TaskRecord, TaskStore, TokenStore, UserStatusStore } from '../store/store.ts';
import type { ResourceLookup } from '../tasks/step-check.ts';
import { workflowEntity, type Workflow } from '../tasks/workflows.ts';
import {
  hashRefreshToken,
  InvalidAuthorizationDetailsError,
  looksLikeRefreshToken,
  newRefreshToken,
  parseTaskDetails,
  quoted,
  scopeInWorkflow,
  TASK_DETAIL_TYPE,
  taskDecisionInput,
  taskEndReason,
  type TaskRequest,
} from '../tasks/task-grants.ts';
import { actClaim, actorList, mandateExpiry, parseScope, type MandateClaims } from './mandate-claims.ts';
import { decideScopes, type ResourceConfig, type ScopeVerdict } from './resources.ts';

/** RFC 8693 grant type and token type URIs. */
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
export const GRANT_REFRESH_TOKEN = 'refresh_token';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';

/** A form as the routes parse it: every parameter at most once (RFC 6749 §3.2). */
export type OAuthForm = Readonly<Record<string, string>>;

/** What the HTTP layer knows about the request besides the form. */
export interface OAuthRequestContext {
  /** The `DPoP` header, when present. */
  dpop?: string;
  /** The `Authorization` header, when present (only `Basic` counts as client authentication). */
  authorizationHeader?: string;
  /** The TLS client's certificate chain (DER, leaf first), when Mandate serves TLS and the client sent one. */
  peerCertificate?: readonly Uint8Array[];
  /** The request's method and full URL, for the DPoP proof's `htm`/`htu`. */
  method: string;
  url: string;
  /** The request id and trace id, for audit events. */
  requestId: string;
  traceId?: string;
  /** Called once the client is authenticated, before any work for it (per-client rate limits, audit actor). */
  afterAuthentication?: (client: AuthenticatedClient) => void;
}

/** A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1). */
export interface TokenResponse {
  access_token: string;
  issued_token_type?: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  /** The task grant's handle, rotated at each use (only for mandates of a task). */
  refresh_token?: string;
  /** RFC 9396: the task this mandate belongs to. */
  authorization_details?: Array<Record<string, unknown>>;
}

/** The ports the service needs. Each rejects with the right OAuth error; none is optional: fail closed. */
export interface TokenServiceDeps {
  /** Mandate's issuer identifier (RFC 8414 `issuer`); a function, because it may be known only once the server listens. */
  issuer: () => string;
  /** Authenticates the client of a token, introspection or revocation request. */
  authenticateClient(form: OAuthForm, ctx: OAuthRequestContext): Promise<AuthenticatedClient>;
  /** Verifies a user's access token from a trusted IdP. */
  authenticateUser(token: string): Promise<AuthenticatedUser>;
  /**
   * Verifies an `actor_token` and returns the principal id it names (and its expiry); rejects with
   * `InvalidGrantError` / `InvalidClientError` when it is not valid.
   */
  verifyActorToken(token: string, tokenType: string, client: AuthenticatedClient): Promise<{ principalId: string; expiresAt?: number }>;
  /** Verifies a DPoP proof at the token endpoint; resolves the key thumbprint. */
  verifyDpop(proof: string, ctx: OAuthRequestContext): Promise<{ jkt: string }>;
  /** The current signing key and the public keys mandates verify against. */
  keys: {
    signer(): Promise<{ kid: string; alg: string; key: CryptoKey | KeyObject }>;
    /** The public key for a mandate's header (jose `JWTVerifyGetKey` shape); rejects for an unknown or retired kid. */
    getVerificationKey(protectedHeader: JWSHeaderParameters): Promise<CryptoKey | KeyObject>;
  };
  tokens: TokenStore;
  /** The registry, to load earlier actors of a chain (each must still be registered and active). */
  principals: PrincipalLookup;
  engine: DecisionPoint;
  resources: readonly ResourceConfig[];
  clock: Clock;
  ids?: IdGenerator;
  settings: TokenSettings;
  /**
   * Scopes of Mandate's own API. A registered service asks for them with `client_credentials` and
   * `resource` = the issuer identifier; it gets those its registration grants (`apiScopes`), never more.
   */
  apiScopes?: readonly string[];
  /** Tasks (issue 5): opening them from an exchange, renewing their mandates, lockdown, disabled users. */
  tasks?: TaskDeps;
}

/** What the token service needs for tasks. */
export interface TaskDeps {
  store: TaskStore;
  users: UserStatusStore;
  lockdown: LockdownStore;
  /** The loaded workflows (they reload with the policy set). */
  workflows(): ReadonlyMap<string, Workflow>;
  /** Sensitivity and dataset of data resources, for the workflow's ceiling (the policy directory's entities). */
  lookup?: ResourceLookup;
  /** Told of every task closed here (revocation signals, metrics); never throws into the request. */
  onClosed?(tasks: readonly TaskRecord[]): void;
}

/** Every new mandate is refused while an administrator's lockdown is on (Mandate's own API tokens excepted). */
export class LockdownError extends MandateError {
  static override readonly code: string = 'ERR_LOCKDOWN';
  override readonly code: string = 'ERR_LOCKDOWN';
  override readonly status: number = 503;
  override readonly oauthError: string = 'temporarily_unavailable';
}

/** Token lifetimes and limits (the `tokens` configuration section). */
export interface TokenSettings {
  /** Default mandate lifetime, seconds. */
  lifetimeSeconds: number;
  /** Hard cap, seconds; no mandate lives longer whatever is asked. */
  maxLifetimeSeconds: number;
  /** Most actors in a chain. */
  maxDelegationDepth: number;
}

/** A verified mandate (one of ours), for re-exchange and introspection. */
export interface VerifiedMandate {
  claims: MandateClaims & JWTPayload;
  record: IssuedTokenRecord;
}

function entityOfPrincipal(p: RegisteredPrincipal): EntityRef {
  return { type: p.kind === 'agent' ? 'Agent' : 'Service', id: p.id };
}

/** Cedar entity data for a registered principal, from the registry (authoritative over anything a caller says). */
function principalEntity(p: RegisteredPrincipal): EntityJson {
  const owner = { type: 'User', id: p.owner };
  if (p.kind === 'agent') {
    return { uid: entityOfPrincipal(p), attrs: { owner, mode: p.mode ?? 'chat', status: p.status, workflows: [...p.workflows] }, parents: [] };
  }
  return { uid: entityOfPrincipal(p), attrs: { owner, status: p.status }, parents: [] };
}

/** Cedar entity data for a user from the verified claims of their IdP token. */
function userEntity(user: AuthenticatedUser): EntityJson {
  const attrs: Record<string, unknown> = { roles: [...user.roles] };
  if (typeof user.claims.email === 'string') attrs.email = user.claims.email;
  if (typeof user.claims.department === 'string') attrs.department = user.claims.department;
  return { uid: { type: 'User', id: user.subject }, attrs, parents: [] };
}

/**
 * When the client's identity itself expires: an SVID (JWT or X.509) is the workload's identity document, so a
 * mandate never outlives it. A `private_key_jwt` assertion is only a proof of possession of a registered key at
 * this moment; its short `exp` (60 s from most clients) bounds the assertion's replay window, not the mandate.
 */
function credentialExpiry(client: AuthenticatedClient): number | undefined {
  return client.method === 'spiffe_jwt' || client.method === 'spiffe_x509' ? client.expiresAt : undefined;
}

/** The user of a task as Cedar saw them when it opened (the directory's entity, if any, still wins). */
function taskUserEntity(task: TaskRecord): EntityJson | undefined {
  return task.userAttrs === undefined ? undefined : { uid: { type: 'User', id: task.userSub }, attrs: { ...task.userAttrs }, parents: [] };
}

function oneParam(form: OAuthForm, name: string): string | undefined {
  const v = form[name];
  return v === undefined || v === '' ? undefined : v;
}

function required(form: OAuthForm, name: string): string {
  const v = oneParam(form, name);
  if (v === undefined) throw new InvalidRequestError(`the ${name} parameter is required`);
  return v;
}

/** The `scope` parameter as a list; `invalid_scope` when malformed or empty (nothing is granted by default). */
function requestedScopes(form: OAuthForm, whenEmpty: string): string[] {
  let requested: string[];
  try {
    requested = parseScope(oneParam(form, 'scope'));
  } catch (err) {
    throw new InvalidScopeError((err as Error).message);
  }
  if (requested.length === 0) throw new InvalidScopeError(whenEmpty);
  return requested;
}

function summarise(verdicts: readonly ScopeVerdict[]): string {
  return verdicts
    .filter((v) => !v.granted)
    .map((v) => `${v.scope}: ${v.reason ?? 'denied'}`)
    .join('; ');
}

/** Builds the token service. */
export function createTokenService(deps: TokenServiceDeps) {
  const nowSeconds = () => Math.floor(deps.clock.now() / 1000);
  const newId = () => (deps.ids ? deps.ids.next() : randomUUID());

  // ---- tasks ------------------------------------------------------------------------------------------
  const taskDeps = (): TaskDeps => {
    if (deps.tasks === undefined) throw new UnsupportedGrantTypeError('tasks are not enabled on this server');
    return deps.tasks;
  };

  const assertNotLocked = async (): Promise<void> => {
    if (deps.tasks === undefined) return;
    const lock = await deps.tasks.lockdown.get();
    if (lock.active) throw new LockdownError('Mandate is in lockdown: no mandate is issued until an administrator lifts it');
  };

  const assertUserActive = async (iss: string | undefined, sub: string): Promise<void> => {
    if (deps.tasks === undefined || iss === undefined) return;
    if (await deps.tasks.users.isDisabled({ iss, sub })) throw new InvalidGrantError('this user is disabled in Mandate: no agent may act for them');
  };

  /** Closes one task (and everything it holds) now, audited; tells `onClosed`. */
  const closeTask = async (task: TaskRecord, status: 'ended' | 'revoked', reason: string, actor: string): Promise<void> => {
    const t = taskDeps();
    const closed = await t.store.close({ taskId: task.id }, status, deps.clock.now(), reason, (c) =>
      createAuditEvent(
        { type: 'task.close', outcome: 'success', actor, subject: `User::"${c.userSub}"`, resource: `task:${c.id}`, data: { taskId: c.id, status, reason, workflow: c.workflowId, agent: c.agentId } },
        { clock: deps.clock, ids: deps.ids },
      ),
    );
    if (closed.length > 0) t.onClosed?.(closed);
  };

  /** Loads a task for a new mandate: open, within its workflow's limits (else closed now), workflow unchanged. */
  const liveTask = async (taskId: string): Promise<{ task: TaskRecord; workflow: Workflow }> => {
    const t = taskDeps();
    const task = await t.store.get(taskId);
    if (task === undefined) throw new InvalidGrantError('the task is not known to this server');
    if (task.status !== 'open') throw new InvalidGrantError(`the task has ended (${task.endReason ?? task.status})`);
    const workflow = t.workflows().get(task.workflowId);
    const end = taskEndReason(task, workflow, deps.clock.now());
    if (end !== undefined || workflow === undefined) {
      const code = end?.code ?? 'workflow_removed';
      await closeTask(task, code === 'task_expired' || code === 'task_idle' ? 'ended' : 'revoked', code, 'mandate');
      throw new InvalidGrantError(`the task has ended: ${end?.message ?? code}`);
    }
    return { task, workflow };
  };

  /** Whether policy lets the user run the workflow through this chain of agents (Cedar action `run` on the Workflow). */
  const mayRun = (userId: string, chain: readonly RegisteredPrincipal[], workflow: Workflow, userEntityJson: EntityJson | undefined): { ok: true } | { ok: false; reason: string } => {
    const input = { entities: [...(userEntityJson ? [userEntityJson] : []), ...chain.map(principalEntity)] };
    try {
      const d = deps.engine.decide({
        principal: { type: 'User', id: userId },
        action: 'run',
        resource: { type: 'Workflow', id: workflow.id },
        context: {},
        delegation: { actors: chain.map(entityOfPrincipal).reverse() },
        entities: [...input.entities, workflowEntity(workflow)],
      });
      if (d.decision === 'deny') return { ok: false, reason: d.reasons.join('; ') || 'denied by policy' };
      return { ok: true };
    } catch (err) {
      if (err instanceof PolicyNotLoadedError || !isMandateError(err) || err.status >= 500) throw err;
      return { ok: false, reason: `the policy set cannot decide who may run workflows (${err.description}); add the "run" action on Workflow to the schema` };
    }
  };

  /** Filters scope verdicts to what the workflow covers (a task's mandates never reach beyond its workflow). */
  const withinWorkflow = (verdicts: ScopeVerdict[], resource: ResourceConfig, workflow: Workflow): ScopeVerdict[] =>
    verdicts.map((v) => {
      if (!v.granted) return v;
      const pairs = Object.hasOwn(resource.scopes, v.scope) ? resource.scopes[v.scope] : undefined;
      if (pairs === undefined) return v;
      const r = scopeInWorkflow(workflow, pairs, deps.tasks?.lookup);
      return r.ok ? v : { ...v, granted: false, reason: `outside the workflow ${workflow.id}: ${r.reason}` };
    });

  const taskDetail = (task: TaskRecord, withPurpose: boolean) => ({
    type: TASK_DETAIL_TYPE,
    workflow: task.workflowId,
    ...(withPurpose ? { purpose: task.purpose } : {}),
    task_id: task.id,
  });

  const findResource = (form: OAuthForm, client: AuthenticatedClient, allowed?: string): ResourceConfig => {
    const resource = oneParam(form, 'resource');
    const audience = oneParam(form, 'audience');
    if (resource !== undefined && audience !== undefined && resource !== audience) {
      throw new InvalidTargetError('resource and audience name different targets; a mandate has exactly one audience');
    }
    const target = resource ?? audience;
    if (target === undefined) throw new InvalidTargetError('name the resource the mandate is for with the resource parameter (RFC 8707)');
    const found = deps.resources.find((r) => r.uri === target);
    if (found === undefined) throw new InvalidTargetError(`${target.slice(0, 200)} is not a resource this server issues mandates for`);
    if (!client.principal.audiences.includes(found.uri)) {
      throw new InvalidTargetError(`client ${client.principal.id} is not registered for the resource ${found.uri}`);
    }
    if (allowed !== undefined && allowed !== found.uri) throw new InvalidTargetError('a re-exchanged mandate keeps its audience; it cannot be widened to another resource');
    return found;
  };

  const bindDpop = async (client: AuthenticatedClient, ctx: OAuthRequestContext): Promise<string | undefined> => {
    if (ctx.dpop === undefined) {
      if (client.principal.dpop === 'required') {
        throw new InvalidDpopProofError(`client ${client.principal.id} is registered to use DPoP; send a DPoP proof with the token request`, { site: 'token' });
      }
      return undefined;
    }
    return (await deps.verifyDpop(ctx.dpop, ctx)).jkt;
  };

  /** Verifies one of our own mandates (signature, issuer, type, record, revocation, expiry). */
  const verifyMandate = async (token: string): Promise<VerifiedMandate> => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header) => deps.keys.getVerificationKey(header), {
        issuer: deps.issuer(),
        typ: 'at+jwt',
        algorithms: ['EdDSA', 'ES256'],
        currentDate: new Date(deps.clock.now()),
        clockTolerance: 0,
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'aud', 'client_id'],
      }));
    } catch (err) {
      throw new InvalidGrantError('the mandate is not valid: its signature, issuer, type or lifetime does not check out', {
        detail: err instanceof Error ? err.message : String(err),
      });
    }
    const record = await deps.tokens.get(String(payload.jti));
    if (record === undefined) throw new InvalidGrantError('the mandate is not known to this server');
    if (record.revokedAt !== undefined) {
      throw new InvalidGrantError(record.revokedReason?.startsWith('task ') ? `the mandate's task has ended (${record.revokedReason.slice(5)})` : 'the mandate has been revoked');
    }
    // A task's mandate lives only while its task does: a task past its limits ends at its first use after them.
    if (record.taskId !== undefined && deps.tasks !== undefined) await liveTask(record.taskId);
    // A mandate re-exchanged from a revoked one goes with it: revoking a mandate revokes what was delegated from it.
    let parentJti = record.parentJti;
    for (let hops = 0; parentJti !== undefined; hops++) {
      if (hops > deps.settings.maxDelegationDepth) throw new InvalidGrantError('the mandate\'s chain of earlier mandates is longer than allowed');
      const parent = await deps.tokens.get(parentJti);
      if (parent === undefined || parent.revokedAt !== undefined) throw new InvalidGrantError('a mandate this one was exchanged from has been revoked');
      parentJti = parent.parentJti;
    }
    return { claims: payload as MandateClaims & JWTPayload, record };
  };

  const sign = async (claims: MandateClaims): Promise<string> => {
    const { kid, alg, key } = await deps.keys.signer();
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .sign(key);
  };

  const issue = async (
    claims: MandateClaims,
    record: IssuedTokenRecord,
    event: Omit<Parameters<typeof createAuditEvent>[0], 'type' | 'outcome'>,
    persist: (record: IssuedTokenRecord, event: NewAuditEventV1) => Promise<void> = (r, e) => deps.tokens.record(r, e),
  ): Promise<TokenResponse> => {
    const token = await sign(claims);
    await persist(record, createAuditEvent({ type: 'token.issue', outcome: 'success', ...event }, { clock: deps.clock, ids: deps.ids }));
    return {
      access_token: token,
      issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      token_type: claims.cnf ? 'DPoP' : 'Bearer',
      expires_in: claims.exp - claims.iat,
      scope: claims.scope,
    };
  };

  /** RFC 8693 token exchange. */
  const exchange = async (form: OAuthForm, client: AuthenticatedClient, ctx: OAuthRequestContext): Promise<TokenResponse> => {
    if (client.kind !== 'agent') throw new UnauthorizedClientError('only registered agents exchange tokens; a service uses client_credentials');
    const requestedType = oneParam(form, 'requested_token_type');
    if (requestedType !== undefined && requestedType !== TOKEN_TYPE_ACCESS_TOKEN && requestedType !== TOKEN_TYPE_JWT) {
      throw new InvalidRequestError(`requested_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN}`);
    }
    const subjectToken = required(form, 'subject_token');
    const subjectType = required(form, 'subject_token_type');
    if (subjectType !== TOKEN_TYPE_ACCESS_TOKEN && subjectType !== TOKEN_TYPE_JWT) {
      throw new InvalidRequestError(`subject_token_type must be ${TOKEN_TYPE_ACCESS_TOKEN} or ${TOKEN_TYPE_JWT}`);
    }
    let requested = requestedScopes(form, 'ask for the scopes the task needs with the scope parameter; none are granted by default');
    await assertNotLocked();
    const rawDetails = oneParam(form, 'authorization_details');
    if (rawDetails !== undefined && deps.tasks === undefined) throw new InvalidAuthorizationDetailsError('this server does not open tasks: authorization_details is not supported');
    const taskRequest: TaskRequest | undefined = parseTaskDetails(rawDetails);

    // Who is the subject: a user's token from a trusted IdP, or one of our mandates (re-delegation).
    let unverifiedIss: unknown;
    try {
      unverifiedIss = decodeJwt(subjectToken).iss;
    } catch {
      throw new InvalidGrantError('the subject_token is not a JWT');
    }
    let userId: string;
    let subId: MandateClaims['sub_id'];
    let userEntityJson: EntityJson | undefined;
    let previousActors: string[] = [];
    let notAfter: number[];
    let parent: VerifiedMandate | undefined;
    let ceiling: string[] | undefined;
    if (unverifiedIss === deps.issuer()) {
      parent = await verifyMandate(subjectToken);
      if (parent.claims.on_behalf_of !== 'user') throw new InvalidGrantError('a client_credentials token cannot be exchanged: no user is behind it');
      if (taskRequest !== undefined) throw new InvalidAuthorizationDetailsError("a task is opened from the user's own token, not from a mandate");
      await assertUserActive(parent.claims.sub_id?.iss, parent.claims.sub);
      userId = parent.claims.sub;
      subId = parent.claims.sub_id;
      try {
        previousActors = actorList(parent.claims.act);
      } catch (err) {
        throw new InvalidGrantError(`the mandate's act claim is malformed: ${(err as Error).message}`);
      }
      notAfter = [parent.claims.exp];
      ceiling = parseScope(parent.claims.scope);
    } else {
      let user: AuthenticatedUser;
      try {
        user = await deps.authenticateUser(subjectToken);
      } catch (err) {
        if (isMandateError(err) && err.status < 500) {
          throw new InvalidGrantError(`the subject_token was refused: ${err.description}`, { cause: err, ...(err.detail === undefined ? {} : { detail: err.detail }) });
        }
        throw err;
      }
      userId = user.subject;
      subId = { format: 'iss_sub', iss: user.issuer, sub: user.subject };
      await assertUserActive(user.issuer, user.subject);
      userEntityJson = userEntity(user);
      notAfter = [user.expiresAt];
      const mayAct = user.claims.may_act as { sub?: unknown } | undefined;
      if (mayAct !== undefined && (typeof mayAct !== 'object' || mayAct === null || mayAct.sub !== client.principal.id)) {
        throw new InvalidGrantError(`the subject_token's may_act does not name client ${client.principal.id}`);
      }
    }

    // The actor: the authenticated client. An actor_token, if sent, must name that same principal.
    const actorToken = oneParam(form, 'actor_token');
    const actorType = oneParam(form, 'actor_token_type');
    if ((actorToken === undefined) !== (actorType === undefined)) throw new InvalidRequestError('actor_token and actor_token_type go together');
    if (actorToken !== undefined && actorType !== undefined) {
      const actor = await deps.verifyActorToken(actorToken, actorType, client);
      if (actor.principalId !== client.principal.id) {
        throw new InvalidGrantError(`the actor_token names ${actor.principalId.slice(0, 128)}, not the authenticated client ${client.principal.id}`);
      }
      if (actor.expiresAt !== undefined) notAfter.push(actor.expiresAt);
    }
    const identityExpiry = credentialExpiry(client);
    if (identityExpiry !== undefined) notAfter.push(identityExpiry);
    if (previousActors.includes(client.principal.id)) throw new InvalidGrantError(`client ${client.principal.id} is already in the delegation chain; cycles are refused`);
    const actors = [client.principal.id, ...previousActors];
    if (actors.length > deps.settings.maxDelegationDepth) {
      throw new InvalidGrantError(`the delegation chain would have ${actors.length} actors; at most ${deps.settings.maxDelegationDepth} are allowed`);
    }

    const resource = findResource(form, client, parent?.record.audience);
    if (ceiling !== undefined) {
      const beyond = requested.filter((s) => !ceiling.includes(s));
      if (beyond.length > 0 && beyond.length === requested.length) {
        throw new InvalidScopeError(`a re-exchange only narrows: ${beyond.join(' ')} ${beyond.length === 1 ? 'is' : 'are'} not in the mandate being exchanged`);
      }
      requested = requested.filter((s) => ceiling.includes(s));
    }

    const jkt = await bindDpop(client, ctx);

    // Every earlier actor must still be registered and active: a suspended agent's delegates lose its authority.
    const earlier: RegisteredPrincipal[] = [];
    for (const id of previousActors) {
      const p = await deps.principals.byId(id);
      if (p === undefined || p.status !== 'active') throw new InvalidGrantError(`actor ${id.slice(0, 128)} of the mandate's chain is no longer registered and active`);
      earlier.push(p);
    }
    const chain = [client.principal, ...earlier];

    // A task: opened now (authorization_details), or the one the mandate being exchanged belongs to.
    let task: TaskRecord | undefined;
    let workflow: Workflow | undefined;
    let refresh: { token: string; record: RefreshTokenRecord } | undefined;
    if (parent?.record.taskId !== undefined) {
      ({ task, workflow } = await liveTask(parent.record.taskId));
    } else if (taskRequest !== undefined) {
      const t = taskDeps();
      workflow = t.workflows().get(taskRequest.workflow);
      if (workflow === undefined) throw new InvalidAuthorizationDetailsError(`there is no approved workflow ${quoted(taskRequest.workflow)}`);
      if (workflow.status !== 'active') throw new InvalidAuthorizationDetailsError(`the workflow ${quoted(workflow.id)} is retired: no new task may run it`);
      if (!client.principal.workflows.includes(workflow.id)) {
        throw new InvalidAuthorizationDetailsError(`agent ${client.principal.id} is not registered for the workflow ${quoted(workflow.id)}`);
      }
      const may = mayRun(userId, chain, workflow, userEntityJson);
      if (!may.ok) throw new InvalidAuthorizationDetailsError(`policy does not let ${userId} run ${quoted(workflow.id)} through ${client.principal.id}: ${may.reason}`);
      const now = deps.clock.now();
      task = {
        id: `task_${newId()}`,
        userIss: subId?.iss ?? '',
        userSub: userId,
        agentId: client.principal.id,
        workflowId: workflow.id,
        workflowVersion: workflow.version,
        purpose: taskRequest.purpose,
        status: 'open',
        openedAt: now,
        expiresAt: now + workflow.duration.maxSeconds * 1000,
        idleTimeoutMs: (workflow.duration.idleSeconds ?? workflow.duration.maxSeconds) * 1000,
        lastActivityAt: now,
        stepsTaken: 0,
        recentSteps: [],
        ...(userEntityJson === undefined ? {} : { userAttrs: userEntityJson.attrs }),
      };
      const { token, hash } = newRefreshToken();
      refresh = { token, record: { hash, taskId: task.id, clientId: client.principal.id, ...(jkt === undefined ? {} : { jkt }), issuedAt: now, expiresAt: task.expiresAt } };
    }
    const inTask = task !== undefined && workflow !== undefined ? taskDecisionInput(task, workflow) : undefined;

    // The scope: what policy allows the user AND every actor (and, in a task, what its workflow covers).
    let verdicts = decideScopes(deps.engine, resource, requested, {
      principal: { type: 'User', id: userId },
      actors: chain.map(entityOfPrincipal).reverse(),
      entities: [...(userEntityJson ? [userEntityJson] : []), ...chain.map(principalEntity), ...(inTask?.entities ?? [])],
      ...(inTask === undefined ? {} : { context: inTask.context }),
    });
    if (workflow !== undefined) verdicts = withinWorkflow(verdicts, resource, workflow);
    const granted = verdicts.filter((v) => v.granted).map((v) => v.scope);
    if (granted.length === 0) throw new InvalidScopeError(`policy grants none of the requested scopes: ${summarise(verdicts)}`);

    const iat = nowSeconds();
    if (task !== undefined) notAfter.push(Math.floor(task.expiresAt / 1000));
    const exp = mandateExpiry(iat, deps.settings.lifetimeSeconds, deps.settings.maxLifetimeSeconds, notAfter);
    if (exp <= iat) throw new InvalidGrantError('the subject or actor token expires now; get a fresh one');
    const jti = newId();
    const claims: MandateClaims = {
      iss: deps.issuer(),
      sub: userId,
      aud: resource.uri,
      scope: granted.join(' '),
      client_id: client.principal.id,
      jti,
      iat,
      exp,
      act: actClaim(actors),
      ...(client.principal.mode === undefined ? {} : { agent_mode: client.principal.mode }),
      ...(subId === undefined ? {} : { sub_id: subId }),
      ...(jkt === undefined ? {} : { cnf: { jkt } }),
      on_behalf_of: 'user',
      ...(task === undefined ? {} : { authorization_details: [taskDetail(task, false)] }),
    };
    const record: IssuedTokenRecord = {
      jti,
      clientId: client.principal.id,
      subject: userId,
      actors,
      audience: resource.uri,
      scope: claims.scope,
      ...(jkt === undefined ? {} : { jkt }),
      ...(task === undefined ? {} : { taskId: task.id }),
      ...(parent === undefined ? {} : { parentJti: parent.record.jti }),
      issuedAt: iat * 1000,
      expiresAt: exp * 1000,
    };
    const opened = refresh !== undefined && task !== undefined ? { task, refresh } : undefined;
    const response = await issue(claims, record, {
      actor: client.principal.id,
      subject: `User::"${userId}"`,
      resource: resource.uri,
      ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
      reasons: verdicts.filter((v) => !v.granted).map((v) => `${v.scope} not granted: ${v.reason ?? 'denied'}`).slice(0, 64),
      data: {
        grant: 'token_exchange',
        requestId: ctx.requestId,
        jti,
        granted,
        requested: verdicts.map((v) => v.scope),
        actors,
        exp,
        bound: jkt !== undefined,
        ...(parent === undefined ? {} : { parentJti: parent.record.jti }),
        ...(task === undefined ? {} : { taskId: task.id, workflow: task.workflowId, ...(opened === undefined ? {} : { taskOpened: true, purpose: task.purpose.slice(0, 200) }) }),
        method: client.method,
      },
    }, opened === undefined ? undefined : (r, e) => taskDeps().store.open(opened.task, opened.refresh.record, r, e));
    if (opened === undefined) return task === undefined ? response : { ...response, authorization_details: [taskDetail(task, false)] };
    return { ...response, refresh_token: opened.refresh.token, authorization_details: [taskDetail(opened.task, true)] };
  };

  /** Mandate's own API as the target: the scopes the service's registration grants, nothing else. */
  const apiScopeVerdicts = (client: AuthenticatedClient, requested: readonly string[]): ScopeVerdict[] => {
    if (client.kind !== 'service') throw new UnauthorizedClientError("only a registered service may obtain tokens for Mandate's own API");
    const known = deps.apiScopes ?? [];
    return requested.map((scope) => {
      if (!known.includes(scope)) return { scope, granted: false, reason: "not a scope of Mandate's API", decisionIds: [] };
      if (!client.principal.apiScopes.includes(scope)) return { scope, granted: false, reason: `not granted to ${client.principal.id} by its registration`, decisionIds: [] };
      return { scope, granted: true, decisionIds: [] };
    });
  };

  /**
   * `refresh_token` (RFC 6749 §6): a task's next mandate, renewed against its grant. Each renewal is decided again —
   * policy, the user's and the agents' status, the workflow, the task's limits — so a task may outlive the user's
   * first token but never its own limits, a disabled user or a revocation. The refresh token rotates; a second use
   * of an old one revokes the task (RFC 9700 §4.14.2). `resource` and `scope` name the mandate wanted now.
   */
  const renew = async (form: OAuthForm, client: AuthenticatedClient, ctx: OAuthRequestContext): Promise<TokenResponse> => {
    const t = taskDeps();
    if (client.kind !== 'agent') throw new UnauthorizedClientError('refresh tokens belong to agents running tasks');
    const presented = required(form, 'refresh_token');
    if (!looksLikeRefreshToken(presented)) throw new InvalidGrantError('the refresh token is not one of this server\'s');
    const hash = hashRefreshToken(presented);
    const rec = await t.store.refreshToken(hash);
    if (rec === undefined) throw new InvalidGrantError('the refresh token is not known to this server');
    const task0 = await t.store.get(rec.taskId);
    if (task0 === undefined) throw new InvalidGrantError('the refresh token\'s task is not known to this server');
    if (rec.clientId !== client.principal.id) {
      // Another client holding this agent's grant handle: a stolen token. Revoke the task.
      if (task0.status === 'open') await closeTask(task0, 'revoked', 'refresh_token_misuse', client.principal.id);
      throw new InvalidGrantError('this refresh token was issued to another client; the task has been revoked');
    }
    // A task that ended burned its refresh tokens: say that, not "reused".
    if (task0.status !== 'open') throw new InvalidGrantError(`the task has ended (${task0.status}: ${task0.endReason ?? 'no reason recorded'})`);
    if (rec.usedAt !== undefined) {
      if (task0.status === 'open') await closeTask(task0, 'revoked', 'refresh_token_reuse', client.principal.id);
      throw new InvalidGrantError('this refresh token was already used; a reused refresh token revokes its task');
    }
    await assertNotLocked();
    const { task, workflow } = await liveTask(rec.taskId);
    if (await t.users.isDisabled({ iss: task.userIss, sub: task.userSub })) {
      await closeTask(task, 'revoked', 'user_disabled', 'mandate');
      throw new InvalidGrantError('the task\'s user is disabled in Mandate; the task has been revoked');
    }
    // DPoP (RFC 9449 §5): a bound grant needs a proof by the same key.
    const jkt = await bindDpop(client, ctx);
    if (rec.jkt !== undefined && jkt !== rec.jkt) {
      throw new InvalidDpopProofError('this refresh token is bound to a DPoP key: send a proof signed by that key', { site: 'token' });
    }
    const requested = requestedScopes(form, 'name the scopes this mandate needs with the scope parameter');
    const resource = findResource(form, client);
    const userJson = taskUserEntity(task);
    const may = mayRun(task.userSub, [client.principal], workflow, userJson);
    if (!may.ok) {
      await closeTask(task, 'revoked', 'policy_no_longer_allows', 'mandate');
      throw new InvalidGrantError(`policy no longer lets ${task.userSub} run ${quoted(workflow.id)} through ${client.principal.id}; the task has been revoked`);
    }
    const inTask = taskDecisionInput(task, workflow);
    const verdicts = withinWorkflow(
      decideScopes(deps.engine, resource, requested, {
        principal: { type: 'User', id: task.userSub },
        actors: [entityOfPrincipal(client.principal)],
        entities: [...(userJson === undefined ? [] : [userJson]), principalEntity(client.principal), ...inTask.entities],
        context: inTask.context,
      }),
      resource,
      workflow,
    );
    const granted = verdicts.filter((v) => v.granted).map((v) => v.scope);
    if (granted.length === 0) throw new InvalidScopeError(`policy grants none of the requested scopes: ${summarise(verdicts)}`);

    const iat = nowSeconds();
    const exp = mandateExpiry(iat, deps.settings.lifetimeSeconds, deps.settings.maxLifetimeSeconds, [Math.floor(task.expiresAt / 1000), credentialExpiry(client)]);
    if (exp <= iat) throw new InvalidGrantError('the task ends now');
    const jti = newId();
    const claims: MandateClaims = {
      iss: deps.issuer(),
      sub: task.userSub,
      aud: resource.uri,
      scope: granted.join(' '),
      client_id: client.principal.id,
      jti,
      iat,
      exp,
      act: actClaim([client.principal.id]),
      ...(client.principal.mode === undefined ? {} : { agent_mode: client.principal.mode }),
      ...(task.userIss === '' ? {} : { sub_id: { format: 'iss_sub' as const, iss: task.userIss, sub: task.userSub } }),
      ...(jkt === undefined ? {} : { cnf: { jkt } }),
      on_behalf_of: 'user',
      authorization_details: [taskDetail(task, false)],
    };
    const record: IssuedTokenRecord = {
      jti,
      clientId: client.principal.id,
      subject: task.userSub,
      actors: [client.principal.id],
      audience: resource.uri,
      scope: claims.scope,
      ...(jkt === undefined ? {} : { jkt }),
      taskId: task.id,
      issuedAt: iat * 1000,
      expiresAt: exp * 1000,
    };
    const next = newRefreshToken();
    const nextRecord: RefreshTokenRecord = { hash: next.hash, taskId: task.id, clientId: client.principal.id, ...(rec.jkt === undefined ? {} : { jkt: rec.jkt }), issuedAt: iat * 1000, expiresAt: task.expiresAt };
    let outcome = 'unknown' as RefreshRotation;
    const response = await issue(
      claims,
      record,
      {
        actor: client.principal.id,
        subject: `User::"${task.userSub}"`,
        resource: resource.uri,
        ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
        reasons: verdicts.filter((v) => !v.granted).map((v) => `${v.scope} not granted: ${v.reason ?? 'denied'}`).slice(0, 64),
        data: { grant: 'refresh_token', requestId: ctx.requestId, jti, granted, requested, exp, bound: jkt !== undefined, taskId: task.id, workflow: task.workflowId, method: client.method },
      },
      async (r, e) => {
        outcome = await t.store.rotate(hash, deps.clock.now(), nextRecord, r, e);
      },
    );
    if (outcome !== 'rotated') {
      // Raced by another use of the same refresh token: treat as reuse.
      const current = await t.store.get(task.id);
      if (current?.status === 'open') await closeTask(current, 'revoked', 'refresh_token_reuse', client.principal.id);
      throw new InvalidGrantError('this refresh token was already used; a reused refresh token revokes its task');
    }
    return { ...response, refresh_token: next.token, authorization_details: [taskDetail(task, false)] };
  };

  /** `client_credentials`: machine-only work, no user behind the token. */
  const clientCredentials = async (form: OAuthForm, client: AuthenticatedClient, ctx: OAuthRequestContext): Promise<TokenResponse> => {
    // Machine-only work is for services. An agent always acts for someone: it exchanges that person's token.
    if (client.kind !== 'service') throw new UnauthorizedClientError('client_credentials is for registered services; an agent exchanges the token of the user it acts for (token exchange)');
    const requested = requestedScopes(form, 'ask for the scopes you need with the scope parameter; none are granted by default');
    const target = oneParam(form, 'resource') ?? oneParam(form, 'audience');
    const forApi = deps.apiScopes !== undefined && target !== undefined && target.replace(/\/+$/, '') === deps.issuer() && (oneParam(form, 'resource') ?? target) === (oneParam(form, 'audience') ?? target);
    const resource: ResourceConfig = forApi ? { uri: deps.issuer(), scopes: {} } : findResource(form, client);
    if (!forApi) await assertNotLocked();
    const jkt = await bindDpop(client, ctx);
    const verdicts = forApi
      ? apiScopeVerdicts(client, requested)
      : decideScopes(deps.engine, resource, requested, {
          principal: entityOfPrincipal(client.principal),
          actors: [],
          entities: [principalEntity(client.principal)],
        });
    const granted = verdicts.filter((v) => v.granted).map((v) => v.scope);
    if (granted.length === 0) throw new InvalidScopeError(`policy grants none of the requested scopes: ${summarise(verdicts)}`);
    const iat = nowSeconds();
    const exp = mandateExpiry(iat, deps.settings.lifetimeSeconds, deps.settings.maxLifetimeSeconds, [credentialExpiry(client)]);
    const jti = newId();
    const claims: MandateClaims = {
      iss: deps.issuer(),
      sub: client.principal.id,
      aud: resource.uri,
      scope: granted.join(' '),
      client_id: client.principal.id,
      jti,
      iat,
      exp,
      ...(jkt === undefined ? {} : { cnf: { jkt } }),
      on_behalf_of: 'none',
    };
    return issue(
      claims,
      { jti, clientId: client.principal.id, subject: client.principal.id, actors: [], audience: resource.uri, scope: claims.scope, ...(jkt === undefined ? {} : { jkt }), issuedAt: iat * 1000, expiresAt: exp * 1000 },
      {
        actor: client.principal.id,
        subject: `${entityOfPrincipal(client.principal).type}::"${client.principal.id}"`,
        resource: resource.uri,
        ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
        data: { grant: 'client_credentials', requestId: ctx.requestId, jti, granted, requested, exp, bound: jkt !== undefined, method: client.method },
      },
    );
  };

  return {
    /** The token endpoint: authenticates the client, then runs the grant. */
    async token(form: OAuthForm, ctx: OAuthRequestContext): Promise<{ response: TokenResponse; client: AuthenticatedClient }> {
      const grantType = required(form, 'grant_type');
      const supported = [GRANT_TOKEN_EXCHANGE, GRANT_CLIENT_CREDENTIALS, ...(deps.tasks === undefined ? [] : [GRANT_REFRESH_TOKEN])];
      if (!supported.includes(grantType)) {
        throw new UnsupportedGrantTypeError(`grant_type ${grantType.slice(0, 100)} is not supported; use ${supported.join(', ')}`);
      }
      const client = await deps.authenticateClient(form, ctx);
      ctx.afterAuthentication?.(client);
      const response =
        grantType === GRANT_TOKEN_EXCHANGE ? await exchange(form, client, ctx) : grantType === GRANT_REFRESH_TOKEN ? await renew(form, client, ctx) : await clientCredentials(form, client, ctx);
      return { response, client };
    },

    /**
     * RFC 7662 introspection. The caller must authenticate; it may introspect tokens issued to itself, or any
     * token if it is a registered service (resource servers are services). Anything not active — unknown,
     * foreign, expired, revoked, malformed — is `{ active: false }` and nothing more.
     */
    async introspect(form: OAuthForm, ctx: OAuthRequestContext): Promise<{ body: Record<string, unknown>; client: AuthenticatedClient; event: NewAuditEventV1 }> {
      const client = await deps.authenticateClient(form, ctx);
      ctx.afterAuthentication?.(client);
      const token = required(form, 'token');
      let body: Record<string, unknown> = { active: false };
      let jti: string | undefined;
      try {
        const { claims, record } = await verifyMandate(token);
        jti = record.jti;
        if (client.kind === 'service' || record.clientId === client.principal.id) {
          body = {
            active: true,
            iss: claims.iss,
            sub: claims.sub,
            aud: claims.aud,
            scope: claims.scope,
            client_id: claims.client_id,
            token_type: claims.cnf ? 'DPoP' : 'Bearer',
            exp: claims.exp,
            iat: claims.iat,
            jti: claims.jti,
            ...(claims.act === undefined ? {} : { act: claims.act }),
            ...(claims.cnf === undefined ? {} : { cnf: claims.cnf }),
            ...(claims.sub_id === undefined ? {} : { sub_id: claims.sub_id }),
            ...(claims.agent_mode === undefined ? {} : { agent_mode: claims.agent_mode }),
            ...(claims.authorization_details === undefined ? {} : { authorization_details: claims.authorization_details }),
            on_behalf_of: claims.on_behalf_of,
          };
        }
      } catch (err) {
        if (!(err instanceof InvalidGrantError)) throw err;
      }
      const event = createAuditEvent(
        {
          type: 'token.introspect',
          outcome: 'success',
          actor: client.principal.id,
          ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
          data: { requestId: ctx.requestId, active: body.active === true, ...(jti === undefined ? {} : { jti }) },
        },
        { clock: deps.clock, ids: deps.ids },
      );
      return { body, client, event };
    },

    /**
     * RFC 7009 revocation: the client the token was issued to (or a registered service) revokes it; durable
     * before the 200. An invalid or unknown token is a 200 too (RFC 7009 §2.2); another client's token is
     * refused with `unauthorized_client`.
     */
    async revoke(form: OAuthForm, ctx: OAuthRequestContext): Promise<{ revoked: boolean; client: AuthenticatedClient }> {
      const client = await deps.authenticateClient(form, ctx);
      ctx.afterAuthentication?.(client);
      const token = required(form, 'token');
      const hint = oneParam(form, 'token_type_hint');
      if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') throw new UnsupportedTokenTypeError('token_type_hint must be access_token or refresh_token');
      // A refresh token is a task's grant: revoking it ends the task and everything it holds (RFC 7009 §2.1).
      if (deps.tasks !== undefined && looksLikeRefreshToken(token)) {
        const rec = await deps.tasks.store.refreshToken(hashRefreshToken(token));
        const task = rec === undefined ? undefined : await deps.tasks.store.get(rec.taskId);
        if (rec === undefined || task === undefined || task.status !== 'open') return { revoked: false, client };
        if (rec.clientId !== client.principal.id && client.kind !== 'service') {
          throw new UnauthorizedClientError('this token was issued to another client; only that client may revoke it');
        }
        await closeTask(task, 'ended', 'grant_revoked', client.principal.id);
        return { revoked: true, client };
      }
      let verified: VerifiedMandate;
      try {
        verified = await verifyMandate(token);
      } catch (err) {
        if (err instanceof InvalidGrantError) return { revoked: false, client };
        throw err;
      }
      if (verified.record.clientId !== client.principal.id && client.kind !== 'service') {
        throw new UnauthorizedClientError('this token was issued to another client; only that client may revoke it');
      }
      const revoked = await deps.tokens.revoke(
        verified.record.jti,
        deps.clock.now(),
        'revoked by client',
        createAuditEvent(
          {
            type: 'token.revoke',
            outcome: 'success',
            actor: client.principal.id,
            subject: verified.record.actors.length > 0 ? `User::"${verified.record.subject}"` : verified.record.subject,
            resource: verified.record.audience,
            ...(ctx.traceId === undefined ? {} : { traceId: ctx.traceId }),
            data: { requestId: ctx.requestId, jti: verified.record.jti, reason: 'client request' },
          },
          { clock: deps.clock, ids: deps.ids },
        ),
      );
      return { revoked, client };
    },

    verifyMandate,

    /**
     * Re-decides every open task after a policy or workflow change: the workflow must be unchanged and active, and
     * policy must still let the user run it through the agent; a task that fails is revoked now (with everything
     * it holds). Steps are always checked at call time anyway. Resolves the tasks revoked.
     */
    async reevaluateOpenTasks(): Promise<TaskRecord[]> {
      if (deps.tasks === undefined) return [];
      const revoked: TaskRecord[] = [];
      for (const task of await deps.tasks.store.list({ status: 'open', limit: 100_000 })) {
        const workflow = deps.tasks.workflows().get(task.workflowId);
        let reason: string | undefined;
        if (workflow === undefined) reason = 'workflow_removed';
        else if (workflow.status !== 'active') reason = 'workflow_retired';
        else if (workflow.version !== task.workflowVersion) reason = 'workflow_changed';
        else {
          const agent = await deps.principals.byId(task.agentId);
          if (agent === undefined || agent.status !== 'active') reason = 'agent_inactive';
          else if (!mayRun(task.userSub, [agent], workflow, taskUserEntity(task)).ok) reason = 'policy_no_longer_allows';
        }
        if (reason !== undefined) {
          await closeTask(task, 'revoked', reason, 'mandate');
          revoked.push(task);
        }
      }
      return revoked;
    },

    /** Ends or revokes one task now (the agent ending it, an administrator, a violation). */
    closeTask,

    /**
     * Ends every open task past its workflow's maximum duration or idle time, and revokes those whose workflow
     * changed or went away (each also ends at its next use; this makes it happen on time, with its signal).
     * Resolves how many were closed.
     */
    async sweepTasks(): Promise<number> {
      if (deps.tasks === undefined) return 0;
      let closed = 0;
      const now = deps.clock.now();
      for (const task of await deps.tasks.store.list({ status: 'open', limit: 100_000 })) {
        const end = taskEndReason(task, deps.tasks.workflows().get(task.workflowId), now);
        if (end === undefined) continue;
        await closeTask(task, end.code === 'task_expired' || end.code === 'task_idle' ? 'ended' : 'revoked', end.code, 'mandate');
        closed++;
      }
      return closed;
    },
  };
}

/** The token service's type. */
export type TokenService = ReturnType<typeof createTokenService>;
