/**
 * `MandateClient`: an agent's OAuth client for Mandate. It discovers the server (RFC 8414), authenticates with
 * `private_key_jwt` (RFC 7523; `aud` = the issuer, draft-ietf-oauth-rfc7523bis), binds mandates to a DPoP key
 * (RFC 9449, one key pair per task by default; it retries once on `use_dpop_nonce`), and opens tasks
 * (RFC 8693 token exchange carrying RFC 9396 `mandate_task` authorization details).
 *
 * Plain `fetch` + jose: the few requests an agent makes need no OAuth library.
 */
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT, type CryptoKey, type JWK } from 'jose';
import { MandateOAuthError, MandateResponseError } from './errors.ts';
import { accessTokenHash, dpopKey, registeredKey, type CryptoKeyPair, type DpopKey, type SigningKey } from './keys.ts';
import { Task, type TaskPort, type ResourceMap } from './task.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_RESPONSE_BYTES = 256 * 1024;

/** What the SDK reads of Mandate's RFC 8414 metadata. */
export interface AuthorizationServerMetadata {
  issuer: string;
  token_endpoint: string;
  revocation_endpoint?: string;
  introspection_endpoint?: string;
  grant_types_supported?: string[];
  dpop_signing_alg_values_supported?: string[];
  token_endpoint_auth_signing_alg_values_supported?: string[];
  [member: string]: unknown;
}

/** Options of {@link MandateClient}. */
export interface MandateClientOptions {
  /** Mandate's issuer identifier (`tokens.issuer`, e.g. `https://mandate.example.com`). */
  issuer: string;
  /** The agent's registered principal id: its OAuth `client_id`. */
  clientId: string;
  /** The agent's registered private key (WebCrypto or Node `KeyObject`). Give this or `jwk`. */
  privateKey?: CryptoKey | KeyObject;
  /** The agent's registered key as a private JWK. Give this or `privateKey`. */
  jwk?: JWK;
  /** The `kid` of the registered key (default: the JWK's `kid`). */
  kid?: string;
  /** The client assertion's algorithm (default: from the key). */
  alg?: string;
  /**
   * DPoP (RFC 9449): `true` (default) binds each task's mandates to a new key pair of its own; a key pair binds
   * every task to that pair; `false` asks for Bearer mandates (allowed only for agents registered `dpop: optional`).
   */
  dpop?: boolean | CryptoKeyPair;
  /**
   * Which resource a URL belongs to, for `task.fetch`: URL prefixes (an origin, or an origin and a path) to a
   * resource identifier, or a function. A URL under a resource identifier itself needs no entry. A URL that
   * maps to no resource gets no mandate: `task.fetch` throws a `TypeError` rather than send one elsewhere.
   */
  resources?: ResourceMap;
  /** Renew a mandate this many seconds before it expires (default 30; at most half its lifetime). */
  renewBeforeSeconds?: number;
  /** The clock that decides when a mandate is due for renewal, in ms (default `Date.now`). Proofs always use the real clock. */
  now?: () => number;
  /** Timeout of each request to Mandate, ms (default 10 000). */
  timeoutMs?: number;
  /** The `fetch` used for every request to Mandate and by `task.fetch` (default the global one). */
  fetch?: typeof fetch;
}

/** Options of {@link MandateClient.startTask}. */
export interface StartTaskOptions {
  /** The user's access token from their IdP: the agent acts for this user. */
  userToken: string;
  /** The approved workflow this task runs (its id in Mandate). */
  workflow: string;
  /** Why the task runs, in words the user and an auditor understand. */
  purpose: string;
  /** The first resource the task needs a mandate for (RFC 8707). */
  resource: string;
  /** The scopes wanted there, space-separated (what policy and the workflow allow is what you get). */
  scope: string;
  /** Override the client's `dpop` for this task. */
  dpop?: boolean | CryptoKeyPair;
}

/** A parsed successful token response (RFC 6749 §5.1 + RFC 9396 `authorization_details`). */
export interface TokenResponseBody {
  access_token: string;
  token_type: 'DPoP' | 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
  authorization_details?: Array<Record<string, unknown>>;
}

/** RFC 8414 §3.1: the well-known path goes between the host and the issuer's path. */
function metadataUrl(issuer: string): URL {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return new URL(`/.well-known/oauth-authorization-server${path}`, url.origin);
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text.length > MAX_RESPONSE_BYTES) throw new MandateResponseError(`Mandate's response is larger than ${MAX_RESPONSE_BYTES} bytes`, response.status);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new MandateResponseError(`Mandate answered ${response.status} with a body that is not JSON`, response.status);
  }
}

function oauthError(body: unknown, status: number): MandateOAuthError | MandateResponseError {
  const b = body as { error?: unknown; error_description?: unknown } | null;
  if (typeof b?.error !== 'string') return new MandateResponseError(`Mandate answered ${status} without an OAuth error`, status);
  return new MandateOAuthError({ error: b.error, ...(typeof b.error_description === 'string' ? { error_description: b.error_description } : {}), status });
}

function tokenBody(body: unknown, status: number): TokenResponseBody {
  const b = body as Record<string, unknown> | null;
  const type = typeof b?.token_type === 'string' ? b.token_type.toLowerCase() : '';
  if (typeof b?.access_token !== 'string' || (type !== 'dpop' && type !== 'bearer') || typeof b.expires_in !== 'number') {
    throw new MandateResponseError('the token response lacks access_token, a DPoP or Bearer token_type, or expires_in', status);
  }
  return {
    access_token: b.access_token,
    token_type: type === 'dpop' ? 'DPoP' : 'Bearer',
    expires_in: b.expires_in,
    scope: typeof b.scope === 'string' ? b.scope : '',
    ...(typeof b.refresh_token === 'string' ? { refresh_token: b.refresh_token } : {}),
    ...(Array.isArray(b.authorization_details) ? { authorization_details: b.authorization_details as Array<Record<string, unknown>> } : {}),
  };
}

/**
 * An agent's client for Mandate.
 *
 * @example
 * const mandate = new MandateClient({ issuer: 'https://mandate.example.com', clientId: 'sales-outreach', jwk: agentPrivateJwk });
 * const task = await mandate.startTask({ userToken, workflow: 'lead-followup', purpose: 'follow up ACME', resource: CRM, scope: 'crm.search' });
 * const res = await task.fetch('https://crm.example.com/mcp', { method: 'POST', body });
 * await task.end();
 */
export class MandateClient {
  readonly issuer: string;
  readonly clientId: string;
  readonly #options: MandateClientOptions;
  readonly #fetch: typeof fetch;
  #metadata: Promise<AuthorizationServerMetadata> | undefined;
  #key: Promise<SigningKey> | undefined;
  /** The latest DPoP nonce each origin gave (RFC 9449 §8, §9). */
  readonly #nonces = new Map<string, string>();

  constructor(options: MandateClientOptions) {
    if (typeof options.issuer !== 'string' || !/^https?:\/\//.test(options.issuer)) throw new TypeError('issuer must be an http(s) URL');
    if (typeof options.clientId !== 'string' || options.clientId === '') throw new TypeError('clientId is required');
    if ((options.privateKey === undefined) === (options.jwk === undefined)) throw new TypeError('give exactly one of privateKey and jwk');
    this.issuer = options.issuer.replace(/\/$/, '');
    this.clientId = options.clientId;
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Mandate's RFC 8414 metadata (fetched once; a failed fetch is retried at the next call). */
  metadata(): Promise<AuthorizationServerMetadata> {
    this.#metadata ??= this.#discover().catch((err: unknown) => {
      this.#metadata = undefined;
      throw err;
    });
    return this.#metadata;
  }

  async #discover(): Promise<AuthorizationServerMetadata> {
    const response = await this.#fetch(metadataUrl(this.issuer), { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.#timeout()), redirect: 'error' });
    const body = (await readJson(response)) as Partial<AuthorizationServerMetadata> | null;
    if (!response.ok) throw new MandateResponseError(`Mandate's metadata answered ${response.status}`, response.status);
    // RFC 8414 §3.3: the document must name the issuer it was fetched for.
    if (body?.issuer?.replace(/\/$/, '') !== this.issuer) throw new MandateResponseError(`the metadata names the issuer ${String(body?.issuer).slice(0, 200)}, not ${this.issuer}`, response.status);
    if (typeof body.token_endpoint !== 'string') throw new MandateResponseError('the metadata has no token_endpoint', response.status);
    return body as AuthorizationServerMetadata;
  }

  #timeout(): number {
    return this.#options.timeoutMs ?? 10_000;
  }

  #signingKey(): Promise<SigningKey> {
    this.#key ??= registeredKey(this.#options);
    return this.#key;
  }

  /** A fresh `private_key_jwt` client assertion (single-use `jti`, 60 s). @see RFC 7523 §3 */
  async clientAssertion(): Promise<string> {
    const [{ key, alg, kid }, meta] = await Promise.all([this.#signingKey(), this.metadata()]);
    const supported = meta.token_endpoint_auth_signing_alg_values_supported;
    // EdDSA and Ed25519 (RFC 9864) name the same algorithm for an Ed25519 key; use the name Mandate lists.
    const useAlg = alg === 'EdDSA' && supported !== undefined && !supported.includes('EdDSA') && supported.includes('Ed25519') ? 'Ed25519' : alg;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: useAlg, ...(kid === undefined ? {} : { kid }) })
      .setIssuer(this.clientId)
      .setSubject(this.clientId)
      .setAudience(meta.issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(key);
  }

  /** The client-authentication parameters for one request. */
  async clientAuthParams(): Promise<Record<string, string>> {
    return { client_id: this.clientId, client_assertion_type: JWT_BEARER, client_assertion: await this.clientAssertion() };
  }

  /** A DPoP proof for a request (RFC 9449 §4), with the origin's latest nonce and, for a resource, `ath`. */
  async dpopProof(key: DpopKey, method: string, url: string | URL, accessToken?: string): Promise<string> {
    const u = new URL(url);
    const htu = `${u.origin}${u.pathname}`;
    const nonce = this.#nonces.get(u.origin);
    return new SignJWT({
      htm: method.toUpperCase(),
      htu,
      jti: randomUUID(),
      ...(nonce === undefined ? {} : { nonce }),
      ...(accessToken === undefined ? {} : { ath: await accessTokenHash(accessToken) }),
    })
      .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
      .setIssuedAt()
      .sign(key.privateKey);
  }

  /** Remembers a `DPoP-Nonce` a server sent (RFC 9449 §8.2: a server may rotate it on any response). */
  noteNonce(url: string | URL, response: Response): boolean {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce === null || nonce === '') return false;
    const origin = new URL(url).origin;
    const changed = this.#nonces.get(origin) !== nonce;
    this.#nonces.set(origin, nonce);
    return changed;
  }

  /**
   * POSTs a grant to the token endpoint with client authentication and, when `dpop` is given, a proof (one
   * retry on `use_dpop_nonce`). Rejects with {@link MandateOAuthError} for an OAuth error.
   */
  async tokenRequest(params: Record<string, string>, dpop: DpopKey | undefined): Promise<TokenResponseBody> {
    const meta = await this.metadata();
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
      if (dpop !== undefined) headers.dpop = await this.dpopProof(dpop, 'POST', meta.token_endpoint);
      const response = await this.#fetch(meta.token_endpoint, {
        method: 'POST',
        headers,
        body: new URLSearchParams({ ...params, ...(await this.clientAuthParams()) }),
        signal: AbortSignal.timeout(this.#timeout()),
        redirect: 'error',
      });
      const fresh = this.noteNonce(meta.token_endpoint, response);
      const body = await readJson(response);
      if (response.ok) return tokenBody(body, response.status);
      const err = oauthError(body, response.status);
      if (err instanceof MandateOAuthError && err.error === 'use_dpop_nonce' && dpop !== undefined && fresh && attempt === 0) continue;
      throw err;
    }
  }

  /** RFC 7009 revocation of a token this client holds. */
  async revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<void> {
    const meta = await this.metadata();
    if (meta.revocation_endpoint === undefined) throw new MandateResponseError('the metadata has no revocation_endpoint', 200);
    const response = await this.#fetch(meta.revocation_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token, token_type_hint: hint, ...(await this.clientAuthParams()) }),
      signal: AbortSignal.timeout(this.#timeout()),
      redirect: 'error',
    });
    if (response.ok) {
      await response.body?.cancel();
      return;
    }
    throw oauthError(await readJson(response), response.status);
  }

  /**
   * Opens a task: exchanges the user's token (RFC 8693) with an RFC 9396 `mandate_task` authorization detail for
   * the task's first mandate and its grant (a refresh token, kept inside the task).
   * @see RFC 8693 §2.1, RFC 9396 §2
   */
  async startTask(options: StartTaskOptions): Promise<Task> {
    for (const name of ['userToken', 'workflow', 'purpose', 'resource', 'scope'] as const) {
      if (typeof options[name] !== 'string' || options[name] === '') throw new TypeError(`startTask: ${name} is required`);
    }
    const meta = await this.metadata();
    const dpopSetting = options.dpop ?? this.#options.dpop ?? true;
    const key = dpopSetting === false ? undefined : await dpopKey(dpopSetting === true ? undefined : dpopSetting, meta.dpop_signing_alg_values_supported);
    const body = await this.tokenRequest(
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: options.userToken,
        subject_token_type: ACCESS_TOKEN,
        requested_token_type: ACCESS_TOKEN,
        resource: options.resource,
        scope: options.scope,
        authorization_details: JSON.stringify([{ type: 'mandate_task', workflow: options.workflow, purpose: options.purpose }]),
      },
      key,
    );
    const detail = body.authorization_details?.find((d) => d.type === 'mandate_task');
    if (typeof detail?.task_id !== 'string' || body.refresh_token === undefined) {
      throw new MandateResponseError('Mandate did not open a task: the response has no mandate_task task_id or no refresh_token', 200);
    }
    const port: TaskPort = {
      tokenRequest: (params, dpop) => this.tokenRequest(params, dpop),
      revoke: (token, hint) => this.revoke(token, hint),
      dpopProof: (k, method, url, token) => this.dpopProof(k, method, url, token),
      noteNonce: (url, response) => this.noteNonce(url, response),
      clientAuthParams: () => this.clientAuthParams(),
      metadata: () => this.metadata(),
      clientId: this.clientId,
      issuer: this.issuer,
      fetch: this.#fetch,
      now: this.#options.now ?? Date.now,
      renewBeforeSeconds: this.#options.renewBeforeSeconds ?? 30,
      ...(this.#options.resources === undefined ? {} : { resources: this.#options.resources }),
    };
    return new Task(port, {
      id: detail.task_id,
      workflow: typeof detail.workflow === 'string' ? detail.workflow : options.workflow,
      purpose: options.purpose,
      resource: options.resource,
      scope: options.scope,
      response: body,
      refreshToken: body.refresh_token,
      dpop: key,
    });
  }
}
