/**
 * Assembles the token service of a running node from its configuration: the key-encryption key and the signing
 * keys, the guarded outbound fetch, the trusted user IdPs, the SPIFFE bundles, the client authenticator, the DPoP
 * verifier (nonces keyed by a secret derived from the KEK, so every node of a deployment accepts every node's
 * nonces), and the authentication of Mandate's own API callers by the mandates issued to registered services.
 *
 * Everything here fails closed: a missing or wrong KEK stops the node at start; an unreachable IdP or bundle
 * refuses its tokens and shows on `/readyz`; an unknown key, principal or credential is refused.
 */
import type { Logger } from 'pino';
import type { MandateConfig } from '../config/config-schema.ts';
import {
  ConfigInvalidError,
  InvalidClientError,
  InvalidDpopProofError,
  InvalidGrantError,
  InvalidTokenError,
  NotReadyError,
} from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import {
  createClientAuthenticator,
  JWT_BEARER_ASSERTION_TYPE,
  type ClientAuthenticator,
  type KeyCredential,
} from '../identity/client-assertion.ts';
import { createDpopVerifier, type DpopVerifier } from '../identity/dpop.ts';
import { createRemoteKeySource, createStaticKeySource } from '../identity/key-sources.ts';
import { createUserAuthenticator, type UserAuthenticator } from '../identity/oidc-users.ts';
import { createFetchJson } from '../identity/outbound.ts';
import { MANDATE_API_SCOPES, principalLookup } from '../identity/registry.ts';
import { createBundleSource, JWT_SVID_ALGORITHMS, SvidVerificationError, verifyJwtSvid, type SpiffeBundleSource } from '../identity/spiffe.ts';
import { KeysUnavailableError } from '../identity/key-sources.ts';
import type { AuthenticatedClient, AuthenticatedUser, FetchJson, KeySource, KeySourceStatus, PrincipalLookup, RegisteredPrincipal } from '../identity/types.ts';
import { workloadConfigWarnings } from '../identity/workload-config.ts';
import type { DecisionPoint } from '../policy/types.ts';
import { verifyCredential } from '../config/credentials.ts';
import type { Store, TaskRecord } from '../store/store.ts';
import type { ResourceLookup } from '../tasks/step-check.ts';
import type { Workflow } from '../tasks/workflows.ts';
import { signingKeyEvent } from './key-audit.ts';
import { deriveKekSecret, loadKek, openSecret, sealSecret } from './key-encryption.ts';
import { actClaim, actorList, MANDATE_CLOCK_TOLERANCE_SECONDS, parseScope } from './mandate-claims.ts';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { createAuditEvent } from '../audit/audit-event.ts';
import type { GatewayAuthRequest, GatewayCaller } from '../gateway/types.ts';
import { createKeyManager, overlapForTokenLifetime, type KeyManager } from './signing-keys.ts';
import { createTokenService, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, type OAuthRequestContext, type TokenService } from './token-service.ts';

/** A `/readyz` check (same shape as src/server/health-routes.ts `ReadinessCheck`). */
export type TokenReadinessCheck = { ok: true; detail?: unknown } | { ok: false; reason: string; detail?: unknown };

/** The caller of Mandate's own API, authenticated by a mandate issued to a registered service. */
export interface ApiCaller {
  readonly id: string;
  readonly scopes: readonly string[];
}

/** What the HTTP layer passes to authenticate an API caller. */
export interface ApiRequest {
  /** The `Authorization` header (`Bearer <mandate>` or `DPoP <mandate>`). */
  readonly authorization: string;
  /** The `DPoP` header, if any. */
  readonly dpop?: string | readonly string[];
  readonly method: string;
  /** The path of the request (the URL is built from the issuer, never from the Host header). */
  readonly path: string;
}

/** The parts of a node's token service the server and the CLI use. */
export interface TokenNode {
  /** The issuer identifier (throws before the node knows its URL). */
  issuer(): string;
  /** Called once the server listens, with its URL (the issuer when `tokens.issuer` is not configured). */
  setListenUrl(url: string): void;
  readonly service: TokenService;
  readonly keys: KeyManager;
  readonly dpop: DpopVerifier;
  readonly assertionAlgorithms: readonly string[];
  /** Client authentication methods, for the metadata. */
  readonly authMethods: readonly string[];
  readonly scopes: readonly string[];
  /** Authenticates a caller of Mandate's own API by its mandate (audience = the issuer identifier). */
  authenticateApiCaller(request: ApiRequest): Promise<ApiCaller>;
  /** Seals / opens a secret under the KEK (e.g. an SSF stream's push Authorization header). */
  seal(purpose: string, plaintext: string): Promise<string>;
  open(purpose: string, sealed: string): Promise<string>;
  /** The guarded outbound fetch and the registry lookup, for other capabilities of the node (signals). */
  readonly fetchJson: FetchJson;
  readonly principals: PrincipalLookup;
  /**
   * Authenticates a caller of a protected resource Mandate fronts (the MCP gateway): a mandate for exactly
   * `req.resource`, DPoP-bound ones with their proof, bearer ones only for principals registered for bearer use.
   */
  authenticateResource(req: GatewayAuthRequest): Promise<GatewayCaller>;
  /**
   * A short-lived token for an upstream (`aud` = `audience`, `sub` = the user, `act` = the caller's chain with the
   * gateway outermost), cached per mandate and audience; recorded and audited once per token. Never the caller's.
   */
  mintUpstreamToken(caller: GatewayCaller, audience: string): Promise<string>;
  /** Verifies a user's access token from a trusted IdP (approvers, admins). */
  authenticateUser(token: string): Promise<AuthenticatedUser>;
  /** Identity and key readiness, for `/readyz`. */
  readiness(): TokenReadinessCheck;
  /** Warnings the operator must see at every start (weakened defaults). */
  readonly warnings: readonly string[];
}

/** Options of {@link startTokenNode}. */
export interface TokenNodeOptions {
  readonly config: Pick<MandateConfig, 'server' | 'identity' | 'tokens' | 'resources' | 'spiffe' | 'dpop' | 'clientAuth'>;
  readonly store: Pick<Store, 'principals' | 'signingKeys' | 'tokens' | 'replay' | 'tasks' | 'users' | 'lockdown'>;
  /** The workflows tasks run against (reloaded with the policy set); absent: no tasks. */
  readonly workflows?: () => ReadonlyMap<string, Workflow>;
  /** Sensitivity and dataset of data resources (the policy directory's entities), for workflow ceilings. */
  readonly resourceLookup?: ResourceLookup;
  /** Told of every task closed by the token service (signals). */
  readonly onTasksClosed?: (tasks: readonly TaskRecord[]) => void;
  readonly engine: DecisionPoint;
  readonly clock: Clock;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  /** Replaces the guarded fetch (tests that need a resolver); default: `createFetchJson(config.identity.outbound)`. */
  readonly fetchJson?: FetchJson;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
const MAX_CACHED_KEY_SOURCES = 10_000;
/** How the gateway appears in the `act` chain of the tokens it mints for upstreams. */
export const GATEWAY_ACTOR = 'mandate-gateway';
const BEARER_OR_DPOP = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * Starts the token service of a node: loads the KEK (rejects with the KEK errors when it is missing, malformed or
 * not the one that sealed the store), makes sure a signing key exists, starts the IdP key caches and bundles.
 */
export async function startTokenNode(options: TokenNodeOptions): Promise<TokenNode> {
  const { config, store, engine, clock, logger } = options;
  const configuredIssuer = config.tokens.issuer?.replace(/\/+$/, '');
  if (configuredIssuer === undefined && !LOOPBACK_HOSTS.has(config.server.host)) {
    throw new ConfigInvalidError(
      `tokens.issuer is required when server.host (${config.server.host}) is not a loopback address: set it to Mandate's public base URL, e.g. https://mandate.example.com`,
    );
  }
  let listenUrl: string | undefined;
  const issuer = (): string => {
    const value = configuredIssuer ?? listenUrl;
    if (value === undefined) throw new NotReadyError('the token service is starting; retry shortly');
    return value;
  };

  const kek = await loadKek({ env: options.env, ...(config.tokens.kekFile === undefined ? {} : { kekFile: config.tokens.kekFile }) });
  const keys = createKeyManager({
    store: store.signingKeys,
    kek,
    clock,
    alg: config.tokens.signingAlgorithm,
    overlapMs: overlapForTokenLifetime(config.tokens.maxLifetimeSeconds, MANDATE_CLOCK_TOLERANCE_SECONDS),
    auditEvent: (change) => signingKeyEvent(change, clock),
  });
  await keys.ensureActiveKey();

  const fetchJson = options.fetchJson ?? createFetchJson(config.identity.outbound);
  const users: UserAuthenticator = createUserAuthenticator({ issuers: config.identity.issuers, fetchJson, clock });
  await users.start();

  const bundles = new Map<string, SpiffeBundleSource>();
  for (const td of config.spiffe.trustDomains) {
    const source = createBundleSource({
      trustDomain: td.trustDomain,
      ...(td.bundleUrl === undefined ? {} : { url: td.bundleUrl, fetchJson }),
      ...(td.bundleFile === undefined ? {} : { file: td.bundleFile }),
      ...(td.bundle === undefined ? {} : { bundle: td.bundle }),
      clock,
      defaultRefreshSeconds: config.spiffe.defaultRefreshSeconds,
      maxStaleSeconds: config.spiffe.maxStaleSeconds,
    });
    // An unreachable bundle does not stop the node: its SVIDs fail closed and /readyz says why.
    await source.refresh().catch((err: unknown) => logger.warn({ trustDomain: td.trustDomain, err: err instanceof Error ? err.message : String(err) }, 'SPIFFE bundle not loaded'));
    bundles.set(td.trustDomain, source);
  }

  // One key source per registered credential, rebuilt when the registration changes (the key is its content).
  const keySources = new Map<string, KeySource>();
  const keySourceFor = (credential: KeyCredential, principal: RegisteredPrincipal): KeySource => {
    const cacheKey = `${principal.id}\n${JSON.stringify(credential)}`;
    const cached = keySources.get(cacheKey);
    if (cached !== undefined) return cached;
    const source =
      credential.type === 'jwks'
        ? createStaticKeySource(credential.jwks, { source: `registered keys of ${principal.id}` })
        : createRemoteKeySource({ url: credential.uri, fetchJson, clock });
    if (keySources.size >= MAX_CACHED_KEY_SOURCES) keySources.delete(keySources.keys().next().value as string);
    keySources.set(cacheKey, source);
    return source;
  };

  const principals: PrincipalLookup = principalLookup(store.principals);
  let clients: ClientAuthenticator | undefined;
  const clientAuthenticator = (): ClientAuthenticator => {
    clients ??= createClientAuthenticator({
      issuer: issuer(),
      tokenEndpoint: `${issuer()}/oauth/token`,
      principals,
      replay: store.replay,
      keySourceFor,
      ...(bundles.size > 0 ? { spiffe: { bundles } } : {}),
      clock,
      maxAssertionLifetimeSeconds: config.clientAuth.maxAssertionLifetimeSeconds,
      clockToleranceSeconds: config.clientAuth.clockToleranceSeconds,
      algorithms: config.clientAuth.algorithms,
      ...(config.clientAuth.allowSharedSecrets
        ? {
            sharedSecrets: {
              // Every registered hash is checked (constant time each), so timing does not tell which one matched.
              async verify(principal: RegisteredPrincipal, secret: string) {
                let ok = false;
                for (const c of principal.credentials) if (c.type === 'client_secret' && verifyCredential(secret, c.hash)) ok = true;
                return ok;
              },
            },
          }
        : {}),
    });
    return clients;
  };

  const dpop = createDpopVerifier({
    replay: store.replay,
    clock,
    algorithms: config.dpop.algorithms,
    maxAgeSeconds: config.dpop.maxAgeSeconds,
    skewSeconds: config.dpop.skewSeconds,
    ...(config.dpop.nonce === 'off'
      ? {}
      : { nonce: { secret: await deriveKekSecret(kek, 'dpop-nonce-v1'), windowSeconds: config.dpop.nonceWindowSeconds, required: true } }),
  });

  const touch = (client: AuthenticatedClient) =>
    store.principals.touch(client.principal.id, clock.now()).catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err), principal: client.principal.id }, 'could not record last use'));

  const service = createTokenService({
    issuer,
    async authenticateClient(form, ctx: OAuthRequestContext) {
      let client: AuthenticatedClient;
      try {
        client = await clientAuthenticator().authenticate(form, {
          ...(ctx.authorizationHeader === undefined ? {} : { authorizationHeader: ctx.authorizationHeader }),
          ...(ctx.peerCertificate === undefined ? {} : { peerCertificate: ctx.peerCertificate }),
        });
      } catch (err) {
        // RFC 6749 §5.2: a client that tried HTTP Basic authentication gets the matching challenge.
        if (err instanceof InvalidClientError && /^basic(\s|$)/i.test(ctx.authorizationHeader ?? '')) {
          throw new InvalidClientError(err.description, { cause: err, challenge: 'Basic realm="mandate"', ...(err.detail === undefined ? {} : { detail: err.detail }) });
        }
        throw err;
      }
      await touch(client);
      return client;
    },
    authenticateUser: (token) => users.authenticate(token),
    async verifyActorToken(token, tokenType) {
      if (tokenType !== TOKEN_TYPE_JWT && tokenType !== TOKEN_TYPE_ACCESS_TOKEN) {
        throw new InvalidGrantError(`actor_token_type must be ${TOKEN_TYPE_JWT} (a JWT-SVID or a signed assertion of the agent)`);
      }
      // The actor token is the agent's own proof: a JWT-SVID, or a JWT signed with its registered key and shaped
      // like a client assertion (iss = sub = its id, aud = this issuer, single-use jti).
      let spiffe: boolean;
      try {
        const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
        spiffe = typeof payload.sub === 'string' && payload.sub.startsWith('spiffe://');
      } catch {
        throw new InvalidGrantError('the actor_token is not a JWT');
      }
      if (spiffe) {
        // A JWT-SVID as actor_token may be addressed to this issuer or to one of spiffe.audiences (a workload's
        // SVID for its own platform); it is verified by SPIFFE's rules and must map to a registered principal.
        if (bundles.size === 0) throw new InvalidGrantError('the actor_token is a JWT-SVID, but no SPIFFE trust domain is configured');
        let svid;
        try {
          svid = await verifyJwtSvid(token, {
            audiences: [issuer(), ...config.spiffe.audiences],
            bundles,
            clock,
            clockToleranceSeconds: config.clientAuth.clockToleranceSeconds,
            algorithms: config.clientAuth.algorithms.filter((a) => (JWT_SVID_ALGORITHMS as readonly string[]).includes(a)),
          });
        } catch (err) {
          if (err instanceof SvidVerificationError) {
            if (err.reason === 'unavailable') throw new KeysUnavailableError(`the actor_token cannot be verified now: ${err.message}`, { cause: err });
            throw new InvalidGrantError(`the actor_token was refused: ${err.message}`, { cause: err, ...(err.detail === undefined ? {} : { detail: err.detail }) });
          }
          throw err;
        }
        const principal = await principals.bySpiffeId(svid.spiffeId.id);
        if (principal === undefined) throw new InvalidGrantError('the actor_token names a SPIFFE ID that no registered agent holds');
        if (principal.status !== 'active') throw new InvalidGrantError(`the actor_token names ${principal.id}, which is ${principal.status}`);
        return { principalId: principal.id, expiresAt: svid.expiresAt };
      }
      try {
        const actor = await clientAuthenticator().authenticate({
          client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
          client_assertion: token,
        });
        // Like the client's own credential: a JWT-SVID's expiry bounds the mandate, an assertion's does not.
        return { principalId: actor.principal.id, ...(actor.expiresAt === undefined || actor.method !== 'spiffe_jwt' ? {} : { expiresAt: actor.expiresAt }) };
      } catch (err) {
        if (err instanceof InvalidClientError) {
          throw new InvalidGrantError(`the actor_token was refused: ${err.description}`, { cause: err, ...(err.detail === undefined ? {} : { detail: err.detail }) });
        }
        throw err;
      }
    },
    verifyDpop: (proof, ctx) => dpop.verify(proof, { method: ctx.method, url: ctx.url, site: 'token' }),
    keys,
    tokens: store.tokens,
    principals,
    engine,
    resources: config.resources,
    clock,
    settings: {
      lifetimeSeconds: config.tokens.lifetimeSeconds,
      maxLifetimeSeconds: config.tokens.maxLifetimeSeconds,
      maxDelegationDepth: config.tokens.maxDelegationDepth,
    },
    apiScopes: MANDATE_API_SCOPES,
    ...(options.workflows === undefined
      ? {}
      : {
          tasks: {
            store: store.tasks,
            users: store.users,
            lockdown: store.lockdown,
            workflows: options.workflows,
            ...(options.resourceLookup === undefined ? {} : { lookup: options.resourceLookup }),
            ...(options.onTasksClosed === undefined ? {} : { onClosed: options.onTasksClosed }),
          },
        }),
  });

  const refuseToken = (description: string, detail?: string) =>
    new InvalidTokenError(description, { ...(detail === undefined ? {} : { detail }), scheme: 'Bearer' });

  const authenticateApiCaller = async (request: ApiRequest): Promise<ApiCaller> => {
    const m = BEARER_OR_DPOP.exec(request.authorization);
    if (m === null) throw refuseToken('the Authorization header must be "Bearer <mandate>" or "DPoP <mandate>"');
    const scheme = (m[1] as string).toLowerCase();
    const token = m[2] as string;
    let verified;
    try {
      verified = await service.verifyMandate(token);
    } catch (err) {
      if (err instanceof InvalidGrantError) throw refuseToken('the access token is not valid here: expired, revoked, altered or not issued by this server', err.detail ?? err.description);
      throw err;
    }
    const { claims } = verified;
    if (claims.aud !== issuer()) throw refuseToken(`the access token is for ${String(claims.aud).slice(0, 200)}, not for this server's API (${issuer()})`);
    if (claims.on_behalf_of !== 'none') throw refuseToken("a mandate issued for a user cannot call Mandate's own API; services use client_credentials");
    const principal = await principals.byId(claims.client_id);
    if (principal === undefined || principal.kind !== 'service' || principal.status !== 'active') {
      throw refuseToken(`client ${claims.client_id} is not an active registered service`);
    }
    if (claims.cnf?.jkt !== undefined) {
      if (scheme !== 'dpop') throw new InvalidDpopProofError('this access token is DPoP-bound: send it as "Authorization: DPoP <token>" with a DPoP proof', { site: 'resource', algs: dpop.algorithms });
      await dpop.verify(request.dpop, { method: request.method, url: `${issuer()}${request.path}`, accessToken: token, expectedJkt: claims.cnf.jkt, site: 'resource' });
    } else if (scheme === 'dpop') {
      throw refuseToken('this access token is not DPoP-bound: send it as "Authorization: Bearer <token>"');
    }
    const granted = parseScope(claims.scope).filter((s) => (MANDATE_API_SCOPES as readonly string[]).includes(s) && principal.apiScopes.includes(s));
    return { id: principal.id, scopes: granted };
  };

  const authenticateResource = async (req: GatewayAuthRequest): Promise<GatewayCaller> => {
    const m = BEARER_OR_DPOP.exec(req.authorization ?? '');
    if (m === null) throw new InvalidTokenError('a mandate for this resource is required: Authorization: Bearer|DPoP <mandate>', { credentialMissing: req.authorization === undefined });
    const scheme = (m[1] as string).toLowerCase();
    const token = m[2] as string;
    let verified;
    try {
      verified = await service.verifyMandate(token);
    } catch (err) {
      if (err instanceof InvalidGrantError) throw refuseToken(`the mandate is not valid: ${err.description}`, err.detail);
      throw err;
    }
    const { claims, record } = verified;
    if (claims.aud !== req.resource) throw refuseToken('the mandate is for another resource');
    const principal = await principals.byId(claims.client_id);
    if (principal === undefined || principal.status !== 'active') throw refuseToken(`client ${claims.client_id} is not an active registered principal`);
    if (claims.cnf?.jkt !== undefined) {
      if (scheme !== 'dpop') throw new InvalidDpopProofError('this mandate is DPoP-bound: send it as "Authorization: DPoP <mandate>" with a DPoP proof', { site: 'resource', algs: dpop.algorithms });
      await dpop.verify(req.dpop, { method: req.method, url: req.url, accessToken: token, expectedJkt: claims.cnf.jkt, site: 'resource' });
    } else if (scheme === 'dpop') {
      throw refuseToken('this mandate is not DPoP-bound: send it as "Authorization: Bearer <mandate>"');
    } else if (principal.dpop === 'required') {
      throw refuseToken(`client ${principal.id} is registered to use DPoP-bound mandates only`);
    }
    return {
      ...(claims.on_behalf_of === 'user' ? { userSub: claims.sub } : {}),
      ...(claims.on_behalf_of === 'user' && claims.sub_id?.iss !== undefined ? { userIss: claims.sub_id.iss } : {}),
      clientId: claims.client_id,
      actors: claims.act === undefined ? [] : actorList(claims.act),
      ...(record.taskId === undefined ? {} : { taskId: record.taskId }),
      scopes: parseScope(claims.scope),
      mandateJti: claims.jti,
      ...(claims.cnf?.jkt === undefined ? {} : { dpopJkt: claims.cnf.jkt }),
      expiresAt: claims.exp,
    };
  };

  const upstreamTokens = new Map<string, { token: string; exp: number }>();
  const mintUpstreamToken = async (caller: GatewayCaller, audience: string): Promise<string> => {
    const key = `${caller.mandateJti}\n${audience}`;
    const nowS = Math.floor(clock.now() / 1000);
    const cached = upstreamTokens.get(key);
    if (cached !== undefined && cached.exp - 10 > nowS) return cached.token;
    const exp = Math.min(nowS + 120, caller.expiresAt);
    if (exp <= nowS) throw refuseToken('the mandate expires now');
    const jti = randomUUID();
    const actors = [GATEWAY_ACTOR, ...caller.actors];
    const { kid, alg, key: signingKey } = await keys.signer();
    const token = await new SignJWT({
      sub: caller.userSub ?? caller.clientId,
      aud: audience,
      client_id: GATEWAY_ACTOR,
      scope: caller.scopes.join(' '),
      act: actClaim(actors),
      jti,
      on_behalf_of: caller.userSub === undefined ? 'none' : 'user',
    })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .setIssuer(issuer())
      .setIssuedAt(nowS)
      .setExpirationTime(exp)
      .sign(signingKey);
    await store.tokens.record(
      { jti, clientId: GATEWAY_ACTOR, subject: caller.userSub ?? caller.clientId, actors, audience, scope: caller.scopes.join(' '), ...(caller.taskId === undefined ? {} : { taskId: caller.taskId }), parentJti: caller.mandateJti, issuedAt: nowS * 1000, expiresAt: exp * 1000 },
      createAuditEvent({ type: 'token.issue', outcome: 'success', actor: GATEWAY_ACTOR, subject: `User::"${caller.userSub ?? caller.clientId}"`, resource: audience, data: { grant: 'gateway_exchange', jti, parentJti: caller.mandateJti, exp } }, { clock }),
    );
    if (upstreamTokens.size >= 10_000) upstreamTokens.delete(upstreamTokens.keys().next().value as string);
    upstreamTokens.set(key, { token, exp });
    return token;
  };

  const userStatuses = (): KeySourceStatus[] => users.status();
  const readiness = (): TokenReadinessCheck => {
    const sources = [...userStatuses(), ...[...bundles.values()].map((b) => b.status())];
    const failed = sources.filter((s) => s.state === 'failed');
    const detail = sources.map((s) => ({ source: s.source, state: s.state, ...(s.reason === undefined ? {} : { reason: s.reason }) }));
    if (failed.length > 0) {
      return { ok: false, reason: `keys unavailable from ${failed.map((s) => s.source).join(', ')}: tokens they sign are refused`, detail };
    }
    return { ok: true, detail };
  };

  const warnings = [...workloadConfigWarnings({ clientAuth: config.clientAuth, spiffe: config.spiffe })];
  const secretHolders = (await store.principals.list()).filter((p) => p.status === 'active' && p.credentials.some((c) => c.type === 'client_secret')).map((p) => p.id);
  if (secretHolders.length > 0) {
    warnings.push(
      config.clientAuth.allowSharedSecrets
        ? `principals authenticating with long-lived shared secrets: ${secretHolders.join(', ')}; move them to private_key_jwt or SPIFFE`
        : `principals with a registered shared secret that is refused (clientAuth.allowSharedSecrets is off): ${secretHolders.join(', ')}`,
    );
  }


  return {
    issuer,
    setListenUrl(url) {
      listenUrl = url.replace(/\/+$/, '');
    },
    service,
    keys,
    dpop,
    assertionAlgorithms: config.clientAuth.algorithms,
    authMethods: [
      'private_key_jwt',
      ...(bundles.size > 0 && config.server.tls?.clientCertificates === 'request' ? ['tls_client_auth'] : []),
      ...(config.clientAuth.allowSharedSecrets ? ['client_secret_basic', 'client_secret_post'] : []),
    ],
    scopes: [...new Set(config.resources.flatMap((r) => Object.keys(r.scopes)))],
    authenticateApiCaller,
    authenticateUser: (token) => users.authenticate(token),
    authenticateResource,
    mintUpstreamToken,
    seal: (purpose, plaintext) => sealSecret(kek, purpose, plaintext),
    open: (purpose, sealed) => openSecret(kek, purpose, sealed),
    fetchJson,
    principals,
    readiness,
    warnings,
  };
}
