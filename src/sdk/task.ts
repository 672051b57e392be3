/**
 * A task an agent runs for a user (issue 5): its mandates, renewed from the task's grant (a rotating refresh
 * token) shortly before they expire, and never once the task has ended.
 *
 * Every request with the refresh token goes through one queue: the token rotates at each use, and a second
 * use of an old one revokes the task (RFC 9700 §4.14.2), so two renewals must never race. Callers that want
 * the same mandate at the same time share one renewal.
 */
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { MandateOAuthError, TaskEndedError } from './errors.ts';
import type { DpopKey } from './keys.ts';
import type { AuthorizationServerMetadata, TokenResponseBody } from './mandate-client.ts';
import { createMcpAuthProvider, type McpAuthProviderOptions } from './mcp-auth-provider.ts';

/**
 * Which resource a URL belongs to: URL prefixes (an origin, or an origin and a path) to a resource identifier
 * (or to a resource and the scope to ask for there), or a function returning the resource.
 */
export type ResourceMap = Readonly<Record<string, string | { resource: string; scope?: string }>> | ((url: URL) => string | undefined);

/** What a task needs from its client (a narrow port; the client implements it). */
export interface TaskPort {
  tokenRequest(params: Record<string, string>, dpop: DpopKey | undefined): Promise<TokenResponseBody>;
  revoke(token: string, hint: 'access_token' | 'refresh_token'): Promise<void>;
  dpopProof(key: DpopKey, method: string, url: string | URL, accessToken?: string): Promise<string>;
  noteNonce(url: string | URL, response: Response): boolean;
  clientAuthParams(): Promise<Record<string, string>>;
  metadata(): Promise<AuthorizationServerMetadata>;
  readonly clientId: string;
  readonly issuer: string;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  readonly renewBeforeSeconds: number;
  readonly resources?: ResourceMap;
}

/** A mandate as the task holds it. */
export interface HeldMandate {
  accessToken: string;
  tokenType: 'DPoP' | 'Bearer';
  /** The scopes granted (may be fewer than asked). */
  scope: string;
  /** Expiry by the task's clock, ms. */
  expiresAt: number;
  /** Lifetime, ms. */
  lifetimeMs: number;
}

/** The right to use the task's refresh token once, outside the task (the MCP SDK's own token request). */
export interface GrantLease {
  readonly refreshToken: string;
  /** The token response that used it: the rotated refresh token and the new mandate for `resource`/`scope`. */
  complete(body: TokenResponseBody, resource: string, scope: string): void;
  /** The request failed; `serverRefused` when Mandate said `invalid_grant` (the task has ended). */
  fail(serverRefused: boolean): void;
}

interface TaskInit {
  id: string;
  workflow: string;
  purpose: string;
  resource: string;
  scope: string;
  response: TokenResponseBody;
  refreshToken: string;
  dpop: DpopKey | undefined;
}

const normaliseScope = (scope: string): string => [...new Set(scope.split(/\s+/).filter((s) => s !== ''))].sort().join(' ');

/** Whether `url` lies under `prefix` (same origin; path equal or below at a segment boundary). */
function under(url: URL, prefix: string): boolean {
  let p: URL;
  try {
    p = new URL(prefix);
  } catch {
    return false;
  }
  if (p.origin !== url.origin) return false;
  const base = p.pathname.replace(/\/$/, '');
  return base === '' || url.pathname === base || url.pathname.startsWith(`${base}/`);
}

/** Parses `WWW-Authenticate` far enough to read `error` (RFC 6750 §3, RFC 9449 §7.1). */
function challengeError(response: Response): string | undefined {
  const header = response.headers.get('www-authenticate');
  return header === null ? undefined : /\berror="([^"]*)"/.exec(header)?.[1];
}

/**
 * One run of a workflow by this agent for a user. Created by {@link MandateClient.startTask}.
 */
export class Task {
  /** The task's id in Mandate (`task_…`). */
  readonly id: string;
  /** The workflow it runs. */
  readonly workflow: string;
  /** The stated purpose. */
  readonly purpose: string;
  /** The resource named at `startTask`: the default of `token()`. */
  readonly resource: string;
  /** Whether its mandates are DPoP-bound (RFC 9449); otherwise they are Bearer tokens. */
  readonly dpopBound: boolean;
  /** The RFC 7638 thumbprint of the task's DPoP key (`cnf.jkt` of its mandates), when bound. */
  readonly dpopJkt: string | undefined;

  readonly #port: TaskPort;
  readonly #dpop: DpopKey | undefined;
  #refreshToken: string;
  /** Scope asked for per resource (the last one named). */
  readonly #scopes = new Map<string, string>();
  /** Mandates by resource and normalised scope. */
  readonly #held = new Map<string, HeldMandate>();
  readonly #pending = new Map<string, Promise<HeldMandate>>();
  #queue: Promise<void> = Promise.resolve();
  #ended: TaskEndedError | undefined;
  #ending: Promise<void> | undefined;

  /** @internal Use {@link MandateClient.startTask}. */
  constructor(port: TaskPort, init: TaskInit) {
    this.#port = port;
    this.id = init.id;
    this.workflow = init.workflow;
    this.purpose = init.purpose;
    this.resource = init.resource;
    this.#dpop = init.dpop;
    this.dpopBound = init.dpop !== undefined && init.response.token_type === 'DPoP';
    this.dpopJkt = this.dpopBound ? init.dpop?.jkt : undefined;
    this.#refreshToken = init.refreshToken;
    this.#scopes.set(init.resource, init.scope);
    this.#held.set(this.#key(init.resource, init.scope), this.#hold(init.response));
  }

  /** Whether the task has ended (by `end()` or because Mandate refused its grant). */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /**
   * A valid mandate for `resource` (default: the task's first resource) with `scope` (default: the scope last
   * asked for there). Renews it from the task's grant shortly before it expires. Rejects with
   * {@link TaskEndedError} once the task has ended, whatever is cached.
   */
  async token(resource: string = this.resource, scope?: string): Promise<string> {
    return (await this.mandate(resource, scope)).accessToken;
  }

  /** Like {@link token}, with the token type, granted scope and expiry. `forceRenewal` skips a cached one. */
  async mandate(resource: string = this.resource, scope?: string, forceRenewal = false): Promise<HeldMandate> {
    this.#assertOpen();
    const wanted = scope ?? this.#scopes.get(resource);
    if (wanted === undefined || normaliseScope(wanted) === '') throw new TypeError(`name the scope to ask for at ${resource} (token(resource, scope))`);
    const key = this.#key(resource, wanted);
    const held = this.#held.get(key);
    if (!forceRenewal && held !== undefined && !this.#due(held)) return held;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      const stale = held;
      pending = this.#serial(() => this.#renew(resource, wanted, stale, forceRenewal)).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const fresh = await pending;
    this.#assertOpen(); // ended while the renewal ran: its result is not handed out
    this.#scopes.set(resource, wanted); // the default for this resource from now on (only once granted)
    return fresh;
  }

  /**
   * `fetch` with the task's mandate for the URL's resource: `Authorization: DPoP <mandate>` and a `DPoP` proof
   * with `ath` (RFC 9449 §7), or `Authorization: Bearer` for an unbound task. Retries once on a server's
   * `use_dpop_nonce`, and once with a renewed mandate on `invalid_token` (rejecting with {@link TaskEndedError}
   * if the task has ended). A request to Mandate itself goes out as it is; any other URL no resource is mapped to
   * gets no mandate: `TypeError`.
   */
  fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const target = this.#resourceFor(url);
    // Mandate's own endpoints (e.g. the MCP SDK's token request when this is a transport's fetch) carry their own authentication.
    if (target === undefined) return this.#port.fetch(request);
    const { resource, scope } = target;
    let renew = false;
    for (let attempt = 0; ; attempt++) {
      const m = await this.mandate(resource, scope, renew);
      const sent = request.clone();
      const bound = m.tokenType === 'DPoP' && this.#dpop !== undefined;
      sent.headers.set('authorization', `${bound ? 'DPoP' : 'Bearer'} ${m.accessToken}`);
      if (bound && this.#dpop !== undefined) sent.headers.set('dpop', await this.#port.dpopProof(this.#dpop, request.method, url, m.accessToken));
      else sent.headers.delete('dpop');
      const response = await this.#port.fetch(sent);
      const freshNonce = this.#port.noteNonce(url, response);
      if (response.status !== 401 || attempt > 0) return response;
      const error = challengeError(response);
      if (error === 'use_dpop_nonce' && freshNonce) renew = false;
      else if (error === 'invalid_token') renew = true;
      else return response;
      await response.body?.cancel();
    }
  };

  /**
   * An `OAuthClientProvider` for `@modelcontextprotocol/sdk` clients (e.g. `StreamableHTTPClientTransport`'s
   * `authProvider`): `tokens()` is the task's current mandate for `resource`; it never starts an interactive
   * flow. The MCP SDK sends `Authorization: Bearer`; for a DPoP-bound task also give the transport
   * `fetch: task.fetch`, which presents the mandate with its proof.
   */
  mcpAuthProvider(resource: string = this.resource, options: McpAuthProviderOptions = {}): OAuthClientProvider {
    const scope = options.scope ?? this.#scopes.get(resource);
    if (scope === undefined) throw new TypeError(`name the scope to ask for at ${resource} (mcpAuthProvider(resource, { scope }))`);
    this.#scopes.set(resource, scope);
    return createMcpAuthProvider(this, this.#port, { resource, scope, ...(this.#dpop === undefined || !this.dpopBound ? {} : { dpop: this.#dpop }) });
  }

  /**
   * Ends the task: revokes its grant (RFC 7009, `token_type_hint=refresh_token`), which ends the task at
   * Mandate and revokes every mandate it holds. Idempotent; from its first call on, `token()` rejects.
   * If the revocation request fails, `end()` rejects and may be called again.
   */
  end(): Promise<void> {
    this.#ended ??= new TaskEndedError(this.id, 'client');
    this.#held.clear();
    this.#ending ??= this.#serial(async () => {
      const token = this.#refreshToken;
      if (token === '') return; // Mandate already refused the grant: nothing left to revoke
      await this.#port.revoke(token, 'refresh_token');
      this.#refreshToken = '';
    }).catch((err: unknown) => {
      this.#ending = undefined;
      throw err;
    });
    return this.#ending;
  }

  /** @internal The refresh token for one request made outside the task (the MCP SDK's own `auth()`). */
  leaseGrant(timeoutMs: number): Promise<GrantLease> {
    return new Promise<GrantLease>((resolve, reject) => {
      void this.#serial(
        () =>
          new Promise<void>((release) => {
            if (this.#ended !== undefined || this.#refreshToken === '') {
              release();
              reject(this.#ended ?? new TaskEndedError(this.id, 'server'));
              return;
            }
            let done = false;
            const finish = () => {
              if (done) return;
              done = true;
              clearTimeout(timer);
              release();
            };
            // The MCP SDK does not tell us of every failure; the queue moves on after this long regardless.
            const timer = setTimeout(finish, timeoutMs);
            timer.unref();
            resolve({
              refreshToken: this.#refreshToken,
              complete: (body, resource, scope) => {
                if (!done) this.#accept(body, resource, scope);
                finish();
              },
              fail: (serverRefused) => {
                if (!done && serverRefused) this.#endByServer(new MandateOAuthError({ error: 'invalid_grant', status: 400 }));
                finish();
              },
            });
          }),
      );
    });
  }

  /** @internal Forgets the cached mandates for a resource (the MCP SDK's `invalidateCredentials('tokens')`). */
  forget(resource: string): void {
    for (const key of [...this.#held.keys()]) if (key.startsWith(`${resource} `)) this.#held.delete(key);
  }

  #key(resource: string, scope: string): string {
    return `${resource} ${normaliseScope(scope)}`;
  }

  #hold(body: TokenResponseBody): HeldMandate {
    const lifetimeMs = body.expires_in * 1000;
    return { accessToken: body.access_token, tokenType: body.token_type, scope: body.scope, expiresAt: this.#port.now() + lifetimeMs, lifetimeMs };
  }

  #due(m: HeldMandate): boolean {
    const before = Math.min(this.#port.renewBeforeSeconds * 1000, m.lifetimeMs / 2);
    return this.#port.now() >= m.expiresAt - before;
  }

  #assertOpen(): void {
    if (this.#ended !== undefined) throw this.#ended;
  }

  #endByServer(cause: MandateOAuthError): TaskEndedError {
    this.#ended ??= new TaskEndedError(this.id, 'server', { cause });
    this.#held.clear();
    this.#refreshToken = '';
    return this.#ended;
  }

  #accept(body: TokenResponseBody, resource: string, scope: string): HeldMandate {
    if (body.refresh_token !== undefined) this.#refreshToken = body.refresh_token;
    const held = this.#hold(body);
    this.#held.set(this.#key(resource, scope), held);
    return held;
  }

  /** Runs `fn` after every earlier use of the refresh token has settled. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #renew(resource: string, scope: string, stale: HeldMandate | undefined, force: boolean): Promise<HeldMandate> {
    this.#assertOpen();
    if (this.#refreshToken === '') throw new TaskEndedError(this.id, 'server');
    // Another renewal (or the MCP SDK's) may have produced a fresh one while this waited.
    const current = this.#held.get(this.#key(resource, scope));
    if (current !== undefined && current !== stale && !this.#due(current)) return current;
    if (current !== undefined && current === stale && !force && !this.#due(current)) return current;
    let body: TokenResponseBody;
    try {
      body = await this.#port.tokenRequest({ grant_type: 'refresh_token', refresh_token: this.#refreshToken, resource, scope }, this.dpopBound ? this.#dpop : undefined);
    } catch (err) {
      // RFC 6749 §5.2: invalid_grant — the grant is gone (ended, revoked, expired, reused): so is the task.
      if (err instanceof MandateOAuthError && err.error === 'invalid_grant') throw this.#endByServer(err);
      throw err;
    }
    if (body.refresh_token === undefined) throw this.#endByServer(new MandateOAuthError({ error: 'invalid_grant', error_description: 'the renewal returned no refresh token', status: 200 }));
    return this.#accept(body, resource, scope);
  }

  #resourceFor(url: URL): { resource: string; scope: string | undefined } | undefined {
    const map = this.#port.resources;
    let resource: string | undefined;
    let scope: string | undefined;
    if (typeof map === 'function') resource = map(url);
    else if (map !== undefined) {
      let best = -1;
      for (const [prefix, target] of Object.entries(map)) {
        if (under(url, prefix) && prefix.length > best) {
          best = prefix.length;
          resource = typeof target === 'string' ? target : target.resource;
          scope = typeof target === 'string' ? undefined : target.scope;
        }
      }
    }
    if (resource === undefined) {
      // A URL under a resource identifier the task already uses.
      resource = [...this.#scopes.keys()].filter((r) => under(url, r)).sort((a, b) => b.length - a.length)[0];
    }
    if (resource === undefined && url.origin === new URL(this.#port.issuer).origin) return undefined;
    if (resource === undefined) throw new TypeError(`no resource is mapped to ${url.origin}: add it to the client's resources option; a mandate is sent only where it is meant to go`);
    return { resource, scope };
  }
}
