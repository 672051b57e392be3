/**
 * DEMO ONLY — a real OpenID Provider for `mandate demo` and the tests: `oidc-provider` on 127.0.0.1 (port 0
 * unless given), with a few users, issuing RFC 9068 JWT access tokens for configured resources (RFC 8707
 * resource indicators) through the authorization-code flow with PKCE. No mocks: what Mandate verifies is what
 * this IdP signed.
 *
 * Not an identity provider to deploy: there are no passwords (the login form takes a user id), the cookie key
 * is a constant, everything is in memory, and it listens on loopback only. `mandate serve` never starts it.
 *
 * Besides the provider's own endpoints it serves:
 * - `GET /interaction/:uid` — JSON `{ uid, prompt }` for programs, or an HTML form for browsers;
 * - `POST /interaction/:uid/login` (form field `login` = user id) and `POST /interaction/:uid/consent`;
 * - `GET /demo` — starts the browser flow; `/demo/callback` redeems the code and shows the access token.
 *
 * {@link demoUserLogin} drives the same flow with plain `fetch`, so a newcomer gets a user's token without a
 * browser.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';

/** A user of the demo IdP. */
export interface DemoIdpUser {
  /** Extra claims in the user's access tokens and ID tokens (e.g. `department`, `roles`, `email`). */
  readonly claims?: Record<string, unknown>;
}

/**
 * The demo's users, as in examples/policies: alice (sales; Mandate role admin), bob (support) and carol (IT), who
 * runs Mandate and approves what agents may not do alone (`roles` is the claim Mandate reads for `approver`).
 */
export const DEMO_IDP_USERS: Readonly<Record<string, DemoIdpUser>> = {
  alice: { claims: { department: 'sales', roles: ['admin'], email: 'alice@acme.example', name: 'Alice' } },
  bob: { claims: { department: 'support', roles: [], email: 'bob@acme.example', name: 'Bob' } },
  carol: { claims: { department: 'it', roles: ['admin', 'approver'], email: 'carol@acme.example', name: 'Carol' } },
};

/**
 * The audience of the users' access tokens in the demo: Mandate's token-exchange service, named by a fixed
 * resource indicator so that it is known before Mandate listens (the demo may run on port 0).
 */
export const DEMO_USER_TOKEN_AUDIENCE = 'urn:mandate:demo:token-exchange';

/** The scope the demo IdP offers for {@link DEMO_USER_TOKEN_AUDIENCE}. */
export const DEMO_USER_TOKEN_SCOPE = 'mandate:delegate';

/** The public client (PKCE, no secret) that logs users in; its redirect URI is never followed by a program. */
export const DEMO_IDP_CLIENT_ID = 'mandate-demo-login';
export const DEMO_IDP_REDIRECT_URI = 'http://127.0.0.1/callback';

/** Options of {@link startDemoIdp}. */
export interface DemoIdpOptions {
  /** Users by id (the `sub`); default {@link DEMO_IDP_USERS}. */
  readonly users?: Readonly<Record<string, DemoIdpUser>>;
  /** Resource indicators (RFC 8707) the IdP issues JWT access tokens for; default `[DEMO_USER_TOKEN_AUDIENCE]`. */
  readonly resources?: readonly string[];
  /** Scopes each resource offers, space-separated; default {@link DEMO_USER_TOKEN_SCOPE}. */
  readonly resourceScopes?: string;
  /** Access token lifetime in seconds (default 600). */
  readonly accessTokenTtlSeconds?: number;
  /** Signing algorithm of the access tokens: `ES256` (default), `RS256` or `EdDSA`. */
  readonly accessTokenAlg?: 'ES256' | 'RS256' | 'EdDSA';
  /** Port on 127.0.0.1 (default 0: any free port). */
  readonly port?: number;
}

/** A running demo IdP. */
export interface DemoIdp {
  /** The issuer identifier (`http://127.0.0.1:<port>`). */
  readonly issuer: string;
  /** The JWKS URL. */
  readonly jwksUri: string;
  /** The public client that logs users in, and its (never followed) redirect URI. */
  readonly clientId: string;
  readonly redirectUri: string;
  /** Where a browser starts the login flow. */
  readonly browserLoginUrl: string;
  readonly resources: readonly string[];
  readonly resourceScopes: string;
  /**
   * Generates a new signing key and publishes it first, so that new tokens are signed with it. With
   * `keepOld: false` the earlier keys are withdrawn from the JWKS. Resolves to the new key's `kid`.
   */
  rotateSigningKey(options?: { keepOld?: boolean }): Promise<string>;
  /** The `kid`s currently published. */
  publishedKids(): string[];
  /** How many requests the JWKS endpoint has served. */
  jwksRequests(): number;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------
// The slice of oidc-provider's API used here (the package ships no type declarations).

interface InteractionDetails {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, unknown> & { client_id: string };
  session?: { accountId?: string };
  grantId?: string;
}
interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options: { mergeWithLastSubmission: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): GrantInstance; find(id: string): Promise<GrantInstance | undefined> };
}
interface ProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;
  errors: { InvalidTarget: new (description?: string) => Error };
}

let providerModule: Promise<ProviderModule> | undefined;

/**
 * Imports oidc-provider once. Its "Unsupported runtime" notice (it recommends Node 22; Node 20 works) is the
 * only message held back, and only while the module loads.
 */
function loadProvider(): Promise<ProviderModule> {
  providerModule ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      warn(...args);
    };
    try {
      const specifier = 'oidc-provider';
      return (await import(specifier)) as ProviderModule;
    } finally {
      console.warn = warn;
    }
  })();
  return providerModule;
}

/** oidc-provider's storage contract, in memory, shared across provider instances (so rotation keeps sessions). */
function memoryAdapterFactory() {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number | undefined }>();
  const live = (key: string) => {
    const entry = store.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };
  const findBy = (name: string, field: string, value: string) => {
    for (const [key] of store) {
      if (!key.startsWith(`${name}:`)) continue;
      const payload = live(key);
      if (payload?.[field] === value) return payload;
    }
    return undefined;
  };
  return class MemoryAdapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    key(id: string) {
      return `${this.name}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      store.set(this.key(id), { payload: { ...payload }, expiresAt: expiresIn === undefined ? undefined : Date.now() + expiresIn * 1000 });
    }
    async find(id: string) {
      return live(this.key(id));
    }
    async findByUid(uid: string) {
      return findBy(this.name, 'uid', uid);
    }
    async findByUserCode(userCode: string) {
      return findBy(this.name, 'userCode', userCode);
    }
    async consume(id: string) {
      const payload = live(this.key(id));
      if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function sendHtml(res: ServerResponse, status: number, title: string, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" });
  res.end(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
      '<style>body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}code,textarea{font:13px ui-monospace,monospace}' +
      'textarea{width:100%;height:9rem}.demo{background:#fde68a;padding:.4rem .7rem;border-radius:4px}</style></head><body>' +
      `<p class="demo"><strong>DEMO ONLY</strong> — Mandate's demo identity provider: no passwords, loopback only.</p><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
  );
}

const wantsHtml = (req: IncomingMessage) => (req.headers.accept ?? '').includes('text/html');

async function signingKey(alg: 'ES256' | 'RS256' | 'EdDSA', kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

const pkceChallenge = (verifier: string) => createHash('sha256').update(verifier).digest('base64url');

/**
 * Starts the demo IdP on 127.0.0.1.
 *
 * @example
 * const idp = await startDemoIdp();
 * const { accessToken } = await demoUserLogin(idp.issuer, 'alice', { resource: DEMO_USER_TOKEN_AUDIENCE });
 * await idp.close();
 */
export async function startDemoIdp(options: DemoIdpOptions = {}): Promise<DemoIdp> {
  const { Provider, errors } = await loadProvider();
  const users = options.users ?? DEMO_IDP_USERS;
  const resources = options.resources ?? [DEMO_USER_TOKEN_AUDIENCE];
  const resourceScopes = options.resourceScopes ?? DEMO_USER_TOKEN_SCOPE;
  const accessTokenAlg = options.accessTokenAlg ?? 'ES256';
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 600;
  const Adapter = memoryAdapterFactory();
  // Browser logins in flight, by state: the PKCE verifier stays here, never in the browser. Bounded.
  const browserLogins = new Map<string, { verifier: string; resource: string; startedAt: number }>();

  let provider: ProviderInstance | undefined;
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let jwksCount = 0;
  let issuer = '';

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://idp');
    const path = url.pathname;
    if (path === '/jwks') jwksCount += 1;
    const p = provider;
    const interaction = /^\/interaction\/([^/]+)\/(login|consent)$/.exec(path);
    if (interaction !== null && req.method === 'POST' && p !== undefined) {
      void handleInteraction(p, interaction[2] as 'login' | 'consent', req, res).catch((error: unknown) => {
        if (!res.headersSent) sendJson(res, 400, { error: 'interaction_failed', error_description: error instanceof Error ? error.message : 'failed' });
      });
      return;
    }
    if (/^\/interaction\/[^/]+$/.test(path) && req.method === 'GET' && p !== undefined) {
      void p.interactionDetails(req, res).then(
        (details) => (wantsHtml(req) ? interactionPage(res, details) : sendJson(res, 200, { uid: details.uid, prompt: details.prompt.name })),
        () => sendJson(res, 400, { error: 'interaction_not_found' }),
      );
      return;
    }
    if (path === '/demo' && req.method === 'GET') {
      startBrowserLogin(url, res);
      return;
    }
    if (path === '/demo/callback' && req.method === 'GET') {
      void finishBrowserLogin(url, res).catch(() => sendHtml(res, 502, 'Login failed', '<p>The token endpoint did not answer as expected.</p>'));
      return;
    }
    if (handler === undefined) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  issuer = `http://127.0.0.1:${port}`;
  const browserRedirectUri = `${issuer}/demo/callback`;

  function interactionPage(res: ServerResponse, details: InteractionDetails): void {
    const action = `/interaction/${encodeURIComponent(details.uid)}/${details.prompt.name === 'login' ? 'login' : 'consent'}`;
    if (details.prompt.name === 'login') {
      const choices = Object.keys(users)
        .map((id) => `<button name="login" value="${escapeHtml(id)}">${escapeHtml(id)}</button> `)
        .join('');
      sendHtml(res, 200, 'Sign in', `<form method="post" action="${action}"><p>Sign in as: ${choices}</p></form>`);
      return;
    }
    const missing = details.prompt.details.missingResourceScopes ?? {};
    const list = Object.entries(missing)
      .map(([r, s]) => `<li><code>${escapeHtml(r)}</code>: <code>${escapeHtml(s.join(' '))}</code></li>`)
      .join('');
    sendHtml(res, 200, 'Allow access?', `<p>${escapeHtml(details.params.client_id)} asks for:</p><ul>${list}</ul><form method="post" action="${action}"><button>Allow</button></form>`);
  }

  function startBrowserLogin(url: URL, res: ServerResponse): void {
    const resource = url.searchParams.get('resource') ?? resources[0] ?? '';
    if (!resources.includes(resource)) {
      sendHtml(res, 400, 'Unknown resource', `<p>This IdP issues tokens for: ${resources.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')}</p>`);
      return;
    }
    const now = Date.now();
    for (const [state, entry] of browserLogins) if (now - entry.startedAt > 600_000 || browserLogins.size > 1000) browserLogins.delete(state);
    const state = randomBytes(16).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    browserLogins.set(state, { verifier, resource, startedAt: now });
    const authorize = new URL(`${issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: DEMO_IDP_CLIENT_ID,
      response_type: 'code',
      redirect_uri: browserRedirectUri,
      scope: `openid profile email ${resourceScopes}`,
      resource,
      code_challenge: pkceChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      prompt: 'login',
    }).toString();
    res.writeHead(303, { location: authorize.href, 'cache-control': 'no-store' }).end();
  }

  async function finishBrowserLogin(url: URL, res: ServerResponse): Promise<void> {
    const state = url.searchParams.get('state') ?? '';
    const pending = browserLogins.get(state);
    browserLogins.delete(state);
    const code = url.searchParams.get('code');
    if (pending === undefined || code === null) {
      sendHtml(res, 400, 'Login failed', `<p>${escapeHtml(url.searchParams.get('error_description') ?? 'Unknown or expired login; start again at /demo.')}</p>`);
      return;
    }
    const tokens = await redeemCode(`${issuer}/token`, { code, verifier: pending.verifier, redirectUri: browserRedirectUri, resource: pending.resource });
    sendHtml(
      res,
      200,
      'Your access token',
      `<p>An RFC 9068 access token for <code>${escapeHtml(pending.resource)}</code>, valid ${tokens.expiresIn} s. ` +
        'An agent exchanges it at Mandate\'s token endpoint for a mandate (RFC 8693).</p>' +
        `<textarea readonly>${escapeHtml(tokens.accessToken)}</textarea><p>In a shell: <code>export USER_TOKEN=…</code> (paste it).</p>`,
    );
  }

  async function handleInteraction(p: ProviderInstance, action: 'login' | 'consent', req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const details = await p.interactionDetails(req, res);
    if (details.prompt.name !== action) throw new Error(`expected prompt ${details.prompt.name}`);
    if (action === 'login') {
      const login = form.get('login') ?? '';
      if (!Object.hasOwn(users, login)) {
        sendJson(res, 401, { error: 'unknown_user', error_description: `no such demo user; try one of: ${Object.keys(users).join(', ')}` });
        return;
      }
      await p.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    const accountId = details.session?.accountId;
    if (accountId === undefined) throw new Error('no session');
    const grant = (details.grantId === undefined ? undefined : await p.Grant.find(details.grantId)) ?? new p.Grant({ accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    await p.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  }

  const rsaKey = await signingKey('RS256', 'idp-rs256-1'); // ID tokens (RS256 is the OIDC default)
  let keys: JWK[] = [await signingKey(accessTokenAlg, `idp-${accessTokenAlg.toLowerCase()}-1`)];
  if (accessTokenAlg === 'RS256') keys = [rsaKey];
  let generation = 1;

  function build(): void {
    const jwks = { keys: accessTokenAlg === 'RS256' ? keys : [...keys, rsaKey] };
    const p = new Provider(issuer, {
      adapter: Adapter,
      clients: [
        {
          client_id: DEMO_IDP_CLIENT_ID,
          token_endpoint_auth_method: 'none',
          redirect_uris: [DEMO_IDP_REDIRECT_URI, browserRedirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
        },
      ],
      jwks,
      cookies: { keys: ['demo-idp-cookie-key-not-secret'] },
      claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
      scopes: ['openid', 'profile', 'email'],
      pkce: { required: () => true },
      ttl: { AccessToken: accessTokenTtl, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600, Grant: 3600 },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      features: {
        devInteractions: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string) => oneOf ?? resources[0],
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            if (!resources.includes(resource)) throw new errors.InvalidTarget();
            return { scope: resourceScopes, audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: accessTokenTtl, jwt: { sign: { alg: accessTokenAlg } } };
          },
        },
      },
      findAccount: (_ctx: unknown, id: string) => (Object.hasOwn(users, id) ? { accountId: id, claims: async () => ({ sub: id, ...users[id]?.claims }) } : undefined),
      extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) =>
        token.accountId !== undefined && Object.hasOwn(users, token.accountId) ? { ...users[token.accountId]?.claims } : undefined,
    });
    provider = p;
    handler = p.callback();
  }
  build();

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    clientId: DEMO_IDP_CLIENT_ID,
    redirectUri: DEMO_IDP_REDIRECT_URI,
    browserLoginUrl: `${issuer}/demo`,
    resources,
    resourceScopes,
    async rotateSigningKey(rotation = {}) {
      generation += 1;
      const fresh = await signingKey(accessTokenAlg, `idp-${accessTokenAlg.toLowerCase()}-${generation}`);
      keys = rotation.keepOld === false ? [fresh] : [fresh, ...keys];
      build();
      return fresh.kid as string;
    },
    publishedKids: () => [...keys, ...(accessTokenAlg === 'RS256' ? [] : [rsaKey])].map((k) => k.kid as string),
    jwksRequests: () => jwksCount,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Logging in without a browser.

/** A minimal cookie jar: by name, latest wins, expired ones dropped (enough for one IdP on one origin). */
class CookieJar {
  private readonly cookies = new Map<string, string>();
  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [k = '', v = ''] = a.split('=').map((s) => s.trim());
        return (k.toLowerCase() === 'max-age' && Number(v) <= 0) || (k.toLowerCase() === 'expires' && Date.parse(v) <= Date.now());
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/**
 * Follows an authorization request through the demo IdP's login (as `userId`) and consent, with plain `fetch`,
 * until the IdP redirects to `redirectUri`; resolves to that redirect (it carries `code`, `state`, `iss`).
 * Works only against this demo IdP, whose interactions answer programs in JSON.
 */
export async function completeDemoAuthorization(authorizationUrl: URL, userId: string, redirectUri: string): Promise<URL> {
  const jar = new CookieJar();
  const origin = authorizationUrl.origin;
  let next = authorizationUrl.href;
  for (let step = 0; step < 12; step += 1) {
    const response = await fetch(next, { redirect: 'manual', headers: { cookie: jar.header(), accept: 'application/json' } });
    jar.store(response);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel();
      const target = new URL(location, next);
      if (target.href.startsWith(redirectUri)) return target;
      if (target.origin !== origin) throw new Error(`demo IdP: unexpected redirect to ${target.origin}`);
      next = target.href;
      continue;
    }
    const body = (await response.json().catch(() => ({}))) as { uid?: string; prompt?: string; error?: string; error_description?: string };
    if (response.status !== 200 || body.uid === undefined || (body.prompt !== 'login' && body.prompt !== 'consent')) {
      throw new Error(`demo IdP: unexpected answer during the flow (status ${response.status}, ${body.error_description ?? body.error ?? body.prompt ?? 'no prompt'})`);
    }
    const submit = await fetch(`${origin}/interaction/${encodeURIComponent(body.uid)}/${body.prompt}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(body.prompt === 'login' ? { login: userId } : {}).toString(),
    });
    jar.store(submit);
    const after = submit.headers.get('location');
    if (submit.status < 300 || submit.status >= 400 || after === null) {
      const failure = (await submit.json().catch(() => ({}))) as { error?: string; error_description?: string };
      throw new Error(`demo IdP: ${body.prompt} refused (${failure.error_description ?? failure.error ?? submit.status})`);
    }
    await submit.body?.cancel();
    next = new URL(after, origin).href;
  }
  throw new Error('demo IdP: the flow did not reach the redirect URI');
}

async function redeemCode(tokenEndpoint: string, grant: { code: string; verifier: string; redirectUri: string; resource: string }): Promise<DemoUserTokens> {
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: DEMO_IDP_CLIENT_ID,
      code: grant.code,
      code_verifier: grant.verifier,
      redirect_uri: grant.redirectUri,
      resource: grant.resource,
    }).toString(),
  });
  const body = (await response.json().catch(() => ({}))) as { access_token?: unknown; id_token?: unknown; expires_in?: unknown; error?: string; error_description?: string };
  if (response.status !== 200 || typeof body.access_token !== 'string') {
    throw new Error(`demo IdP: the token endpoint refused the code (${body.error_description ?? body.error ?? response.status})`);
  }
  return {
    accessToken: body.access_token,
    ...(typeof body.id_token === 'string' ? { idToken: body.id_token } : {}),
    expiresIn: typeof body.expires_in === 'number' ? body.expires_in : 0,
  };
}

/** Options of {@link demoUserLogin}. */
export interface DemoUserLoginOptions {
  /** The resource indicator (RFC 8707) the access token is for; default {@link DEMO_USER_TOKEN_AUDIENCE}. */
  readonly resource?: string;
  /** Scope besides `openid`; default {@link DEMO_USER_TOKEN_SCOPE}. */
  readonly scope?: string;
}

/** What {@link demoUserLogin} obtained. */
export interface DemoUserTokens {
  readonly accessToken: string;
  readonly idToken?: string;
  readonly expiresIn: number;
}

/**
 * DEMO ONLY: logs `userId` in at the demo IdP and returns their RFC 9068 access token — the real
 * authorization-code flow with PKCE (RFC 7636), driven with plain `fetch` instead of a browser. The ID token is
 * returned as is, unverified: Mandate verifies the access token, which is what an agent exchanges.
 *
 * @example
 * const { accessToken } = await demoUserLogin('http://127.0.0.1:8081', 'alice');
 */
export async function demoUserLogin(issuer: string, userId: string, options: DemoUserLoginOptions = {}): Promise<DemoUserTokens> {
  const metadataResponse = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { accept: 'application/json' } });
  if (metadataResponse.status !== 200) throw new Error(`demo IdP: no OpenID Provider metadata at ${issuer} (status ${metadataResponse.status})`);
  const metadata = (await metadataResponse.json()) as { issuer?: string; authorization_endpoint?: string; token_endpoint?: string };
  if (metadata.issuer !== issuer || metadata.authorization_endpoint === undefined || metadata.token_endpoint === undefined) {
    throw new Error(`demo IdP: the metadata at ${issuer} does not describe that issuer`);
  }
  const resource = options.resource ?? DEMO_USER_TOKEN_AUDIENCE;
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const authorize = new URL(metadata.authorization_endpoint);
  authorize.search = new URLSearchParams({
    client_id: DEMO_IDP_CLIENT_ID,
    response_type: 'code',
    redirect_uri: DEMO_IDP_REDIRECT_URI,
    scope: `openid ${options.scope ?? DEMO_USER_TOKEN_SCOPE}`,
    resource,
    code_challenge: pkceChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }).toString();
  const callback = await completeDemoAuthorization(authorize, userId, DEMO_IDP_REDIRECT_URI);
  const error = callback.searchParams.get('error');
  if (error !== null) throw new Error(`demo IdP: ${error}: ${callback.searchParams.get('error_description') ?? ''}`);
  // RFC 9207: the response names its issuer; and the state must be ours (RFC 6749 §10.12).
  if (callback.searchParams.get('iss') !== issuer || callback.searchParams.get('state') !== state) throw new Error('demo IdP: the authorization response is not for this request');
  const code = callback.searchParams.get('code');
  if (code === null) throw new Error('demo IdP: no authorization code');
  return redeemCode(metadata.token_endpoint, { code, verifier, redirectUri: DEMO_IDP_REDIRECT_URI, resource });
}
