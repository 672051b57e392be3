/**
 * Baseline of the token issuance benchmark: `oidc-provider` (a certified OpenID/OAuth server) configured for
 * the same work as Mandate's `client_credentials` grant — the bench service authenticates with
 * `private_key_jwt` (EdDSA assertion, single-use `jti` through the provider's replay detection) and gets an
 * RFC 9068 `at+jwt` access token for one resource indicator (RFC 8707), EdDSA-signed, 5 minutes.
 *
 * What it does not do that Mandate does: decide the scope by policy, write the token's record and its audit
 * event to a database before answering. oidc-provider does not store JWT access tokens at all, and its replay
 * detection uses its in-memory adapter (the default). Prints `ISSUER <url>` and `LISTENING <port>` when ready.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import { BENCH_RESOURCE, BENCH_SCOPE, BENCH_SERVICE_ID, readTokenFixture } from '../token-fixtures.ts';

// The slice of oidc-provider's API used here (the package ships no type declarations).
interface ProviderModule {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => { callback(): (req: IncomingMessage, res: ServerResponse) => void; proxy: boolean };
  errors: { InvalidTarget: new (description?: string) => Error };
}

const fixture = await readTokenFixture();
const specifier = 'oidc-provider';
const { Provider, errors } = (await import(specifier)) as ProviderModule;

// The issuer needs the port, so the provider is built once the server listens and then attached to it.
const server = createServer();
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: 'bench-op-eddsa-1', alg: 'EdDSA', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: BENCH_SERVICE_ID,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'EdDSA',
      id_token_signed_response_alg: 'EdDSA',
      jwks: { keys: [fixture.serviceJwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: BENCH_SCOPE,
    },
  ],
  jwks: { keys: [signingJwk] },
  clientAuthMethods: ['private_key_jwt'],
  enabledJWA: { clientAuthSigningAlgValues: ['EdDSA', 'ES256'], idTokenSigningAlgValues: ['EdDSA'] },
  scopes: [BENCH_SCOPE],
  cookies: { keys: ['bench-cookie-key-not-secret'] },
  ttl: { ClientCredentials: 300 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => BENCH_RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx: unknown, resource: string) => {
        if (resource !== BENCH_RESOURCE) throw new errors.InvalidTarget();
        return { scope: BENCH_SCOPE, audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 300, jwt: { sign: { alg: 'EdDSA' } } };
      },
    },
  },
});
server.on('request', provider.callback());

console.log(`ISSUER ${issuer}`);
console.log(`LISTENING ${port}`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
