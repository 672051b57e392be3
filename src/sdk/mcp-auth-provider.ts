/**
 * The task as an `OAuthClientProvider` of `@modelcontextprotocol/sdk`, so that a stock MCP client
 * (`StreamableHTTPClientTransport`'s `authProvider`) presents the task's mandates unmodified:
 *
 * - `tokens()` is the task's current mandate for the resource (renewed by the task before it expires);
 * - there is no interactive flow: no redirect URL, and `redirectToAuthorization` refuses;
 * - when the MCP server answers 401, the SDK's `auth()` renews through the task's grant: the request it sends
 *   uses the task's refresh token under the task's lock (so it never races the task's own renewals), carries
 *   the agent's `private_key_jwt` assertion and, for a DPoP-bound task, a proof by the task's key; Mandate's
 *   `invalid_grant` ends the task and every later call rejects with `TaskEndedError`;
 * - `invalidateCredentials('tokens')` forgets the cached mandate for the resource.
 */
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { DpopKey } from './keys.ts';
import type { GrantLease, Task, TaskPort } from './task.ts';

/** Options of `task.mcpAuthProvider()`. */
export interface McpAuthProviderOptions {
  /** The scopes to ask for at the resource (default: the scope last asked for there). */
  scope?: string;
}

/** How long the MCP SDK may hold the task's refresh token for one token request, ms. */
const LEASE_MS = 30_000;

/** Builds the provider; see the module comment. */
export function createMcpAuthProvider(task: Task, port: TaskPort, options: { resource: string; scope: string; dpop?: DpopKey }): OAuthClientProvider {
  let lease: GrantLease | undefined;
  const clientInformation = { client_id: port.clientId, issuer: port.issuer };

  const provider: OAuthClientProvider = {
    get redirectUrl() {
      return undefined; // non-interactive: the user consented when the task was opened
    },
    get clientMetadata(): OAuthClientMetadata {
      return { redirect_uris: [], client_name: port.clientId, grant_types: ['refresh_token'], token_endpoint_auth_method: 'private_key_jwt', scope: options.scope };
    },
    clientInformation: (): OAuthClientInformationMixed => clientInformation,

    async tokens(): Promise<OAuthTokens> {
      const m = await task.mandate(options.resource, options.scope);
      // No refresh_token: the grant stays inside the task.
      return { access_token: m.accessToken, token_type: m.tokenType, expires_in: Math.max(0, Math.floor((m.expiresAt - port.now()) / 1000)), scope: m.scope, issuer: port.issuer };
    },

    saveTokens(tokens: OAuthTokens): void {
      const held = lease;
      lease = undefined;
      const type = tokens.token_type.toLowerCase();
      held?.complete(
        {
          access_token: tokens.access_token,
          token_type: type === 'dpop' ? 'DPoP' : 'Bearer',
          expires_in: tokens.expires_in ?? 60,
          scope: tokens.scope ?? '',
          ...(tokens.refresh_token === undefined ? {} : { refresh_token: tokens.refresh_token }),
        },
        options.resource,
        options.scope,
      );
    },

    // Mandate is the authorization server: no RFC 9728 discovery at the MCP server is needed.
    async discoveryState(): Promise<OAuthDiscoveryState> {
      const metadata = await port.metadata();
      return {
        authorizationServerUrl: port.issuer,
        resourceMetadata: { resource: options.resource, authorization_servers: [port.issuer] },
        authorizationServerMetadata: metadata as unknown as NonNullable<OAuthDiscoveryState['authorizationServerMetadata']>,
      };
    },
    saveDiscoveryState(): void {},
    async validateResourceURL(): Promise<URL> {
      return new URL(options.resource);
    },

    /** The MCP SDK's token request, on a 401: a renewal with the task's refresh token, under the task's lock. */
    async prepareTokenRequest(): Promise<URLSearchParams> {
      lease?.fail(false);
      lease = await task.leaseGrant(LEASE_MS);
      return new URLSearchParams({ grant_type: 'refresh_token', refresh_token: lease.refreshToken, scope: options.scope });
    },

    async addClientAuthentication(headers: Headers, params: URLSearchParams, url: string | URL): Promise<void> {
      // The resource verbatim (the SDK would send a URL's href, which may add a "/"), and private_key_jwt.
      params.set('resource', options.resource);
      for (const [k, v] of Object.entries(await port.clientAuthParams())) params.set(k, v);
      if (options.dpop !== undefined) headers.set('DPoP', await port.dpopProof(options.dpop, 'POST', url));
    },

    invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): void {
      if (scope !== 'all' && scope !== 'tokens') return;
      // auth() calls this after Mandate refused the SDK's token request with invalid_grant (or invalid_client).
      const held = lease;
      lease = undefined;
      held?.fail(scope === 'tokens');
      task.forget(options.resource);
    },

    redirectToAuthorization(): never {
      throw new TypeError('a Mandate task never starts an interactive authorization; open a new task instead');
    },
    saveCodeVerifier(): void {},
    codeVerifier(): never {
      throw new TypeError('a Mandate task has no authorization code flow');
    },
  };
  return provider;
}
