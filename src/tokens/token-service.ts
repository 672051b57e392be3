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
} from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import type { AuthenticatedClient, AuthenticatedUser, PrincipalLookup, RegisteredPrincipal } from '../identity/types.ts';
import type { DecisionPoint, EntityJson } from '../policy/types.ts';
import type { IssuedTokenRecord, TokenStore } from '../store/store.ts';
import { actClaim, actorList, mandateExpiry, parseScope, type MandateClaims } from './mandate-claims.ts';
import { decideScopes, type ResourceConfig, type ScopeVerdict } from './resources.ts';

/** RFC 8693 grant type and token type URIs. */
export const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const GRANT_CLIENT_CREDENTIALS = 'client_credentials';
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

function oneParam(form: OAuthForm, name: string): string | undefined {
  const v = form[name];
  return v === undefined || v === '' ? undefined : v;
}

function required(form: OAuthForm, name: string): string {
  const v = oneParam(form, name);
  if (v === undefined) throw new InvalidRequestError(`the ${name} parameter is required`);
  return v;
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
    if (record.revokedAt !== undefined) throw new InvalidGrantError('the mandate has been revoked');
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
  ): Promise<TokenResponse> => {
    const token = await sign(claims);
    await deps.tokens.record(record, createAuditEvent({ type: 'token.issue', outcome: 'success', ...event }, { clock: deps.clock, ids: deps.ids }));
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
    let requested: string[];
    try {
      requested = parseScope(oneParam(form, 'scope'));
    } catch (err) {
      throw new InvalidScopeError((err as Error).message);
    }
    if (requested.length === 0) throw new InvalidScopeError('ask for the scopes the task needs with the scope parameter; none are granted by default');

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

    // The scope: what policy allows the user AND every actor. Actors are listed first delegate first.
    const verdicts = decideScopes(deps.engine, resource, requested, {
      principal: { type: 'User', id: userId },
      actors: chain.map(entityOfPrincipal).reverse(),
      entities: [...(userEntityJson ? [userEntityJson] : []), ...chain.map(principalEntity)],
    });
    const granted = verdicts.filter((v) => v.granted).map((v) => v.scope);
    if (granted.length === 0) throw new InvalidScopeError(`policy grants none of the requested scopes: ${summarise(verdicts)}`);

    const iat = nowSeconds();
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
      ...(subId === undefined ? {} : { sub_id: subId }),
      ...(jkt === undefined ? {} : { cnf: { jkt } }),
      on_behalf_of: 'user',
    };
    const record: IssuedTokenRecord = {
      jti,
      clientId: client.principal.id,
      subject: userId,
      actors,
      audience: resource.uri,
      scope: claims.scope,
      ...(jkt === undefined ? {} : { jkt }),
      ...(parent === undefined ? {} : { parentJti: parent.record.jti }),
      issuedAt: iat * 1000,
      expiresAt: exp * 1000,
    };
    return issue(claims, record, {
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
        method: client.method,
      },
    });
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

  /** `client_credentials`: machine-only work, no user behind the token. */
  const clientCredentials = async (form: OAuthForm, client: AuthenticatedClient, ctx: OAuthRequestContext): Promise<TokenResponse> => {
    // Machine-only work is for services. An agent always acts for someone: it exchanges that person's token.
    if (client.kind !== 'service') throw new UnauthorizedClientError('client_credentials is for registered services; an agent exchanges the token of the user it acts for (token exchange)');
    let requested: string[];
    try {
      requested = parseScope(oneParam(form, 'scope'));
    } catch (err) {
      throw new InvalidScopeError((err as Error).message);
    }
    if (requested.length === 0) throw new InvalidScopeError('ask for the scopes you need with the scope parameter; none are granted by default');
    const target = oneParam(form, 'resource') ?? oneParam(form, 'audience');
    const forApi = deps.apiScopes !== undefined && target !== undefined && target.replace(/\/+$/, '') === deps.issuer() && (oneParam(form, 'resource') ?? target) === (oneParam(form, 'audience') ?? target);
    const resource: ResourceConfig = forApi ? { uri: deps.issuer(), scopes: {} } : findResource(form, client);
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
      if (grantType !== GRANT_TOKEN_EXCHANGE && grantType !== GRANT_CLIENT_CREDENTIALS) {
        throw new UnsupportedGrantTypeError(`grant_type ${grantType.slice(0, 100)} is not supported; use ${GRANT_TOKEN_EXCHANGE} or ${GRANT_CLIENT_CREDENTIALS}`);
      }
      const client = await deps.authenticateClient(form, ctx);
      ctx.afterAuthentication?.(client);
      const response = grantType === GRANT_TOKEN_EXCHANGE ? await exchange(form, client, ctx) : await clientCredentials(form, client, ctx);
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
      if (hint !== undefined && hint !== 'access_token') throw new UnsupportedTokenTypeError('only access tokens (mandates) are issued here; there are no refresh tokens');
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
  };
}

/** The token service's type. */
export type TokenService = ReturnType<typeof createTokenService>;
