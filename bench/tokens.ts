/**
 * Token service benchmarks (`--only tokens`):
 * - issuance over HTTP: Mandate's `client_credentials` with `private_key_jwt` beside `oidc-provider` doing the
 *   same grant with the same client authentication and a JWT access token for one resource indicator;
 * - token exchange (RFC 8693) over HTTP, without and with DPoP, beside Mandate's own `client_credentials`
 *   (oidc-provider has no token exchange grant, so there is no outside baseline);
 * - the per-request cost of verifying a mandate in-process (`verifyMandate`: signature, claims, the jti's
 *   record in the store) beside a bare `jose.jwtVerify` of the same token with the same key.
 *
 * Every request carries its own client assertion (and DPoP proof), signed before the timed run. The targets of
 * one comparison run in alternating rounds (A, B, A, B) so that a neighbour's burst does not land on one only.
 */
import { mkdtemp } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { systemClock } from '../src/core/ports.ts';
import type { RegisteredPrincipal } from '../src/identity/types.ts';
import { PolicyEngine } from '../src/policy/policy-engine.ts';
import { openStore } from '../src/store/open-store.ts';
import { generateKek, kekFromBase64url } from '../src/tokens/key-encryption.ts';
import { createKeyManager, overlapForTokenLifetime } from '../src/tokens/signing-keys.ts';
import { createTokenService, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN } from '../src/tokens/token-service.ts';
import { startServer, type BenchServer, type HttpTargetResult } from './http.ts';
import { measureInterleavedAsync, ratio, round, type LatencyResult } from './stats.ts';
import {
  BENCH_AGENT_ID,
  BENCH_RESOURCE,
  BENCH_SCOPE,
  BENCH_SERVICE_ID,
  clientAssertion,
  createTokenFixtures,
  dpopProof,
  FIXTURE_ENV,
  presign,
  userToken,
  type TokenFixtures,
} from './token-fixtures.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const CONNECTIONS = 32;

/** One load target: where it posts, and how one request is made (signed ahead of the run). */
interface TokenTarget {
  name: string;
  url: string;
  /** Signs the body (and headers) of one request. */
  make(): Promise<{ body: string; headers?: Record<string, string> }>;
}

/** A load result with the count of requests sent after the pre-signed pool ran out (each refused, so 0 is expected). */
export interface TokenHttpResult extends HttpTargetResult {
  /** 2xx responses. */
  ok: number;
  /** Requests sent after the pool of pre-signed requests ran out; non-zero means the pool was too small. */
  poolExhausted: number;
}

/** Results of the token benchmark. */
export interface TokenBenchResult {
  issuance: { mandate: TokenHttpResult; oidcProvider: TokenHttpResult; ratio: string; p50Ratio: string };
  exchange: { clientCredentials: TokenHttpResult; exchange: TokenHttpResult; exchangeDpop: TokenHttpResult; ratio: string; dpopRatio: string };
  verification: { raw: LatencyResult; mandate: LatencyResult; store: LatencyResult; ratio: string; storeShare: string; tokensInStore: number };
  load: string;
  rounds: number;
}

function form(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

/**
 * Runs autocannon on `url` for `seconds`, each request taking the next pre-signed item of `pool`. Should the pool
 * run out, the run is stopped, the rate is computed up to that moment, and the shortfall is reported.
 */
async function loadPool(name: string, url: string, pool: ReadonlyArray<{ body: string; headers?: Record<string, string> }>, seconds: number): Promise<TokenHttpResult> {
  let next = 0;
  let exhausted = 0;
  let instance: autocannon.Instance | undefined;
  let ranOutAt: number | undefined;
  const options: autocannon.Options = {
    url,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          let item = pool[next++];
          if (item === undefined) {
            // A used item is refused (its jti was seen), so what is sent after this shows as non-2xx.
            if (exhausted++ === 0) {
              ranOutAt = performance.now();
              instance?.stop();
            }
            item = pool[pool.length - 1] as (typeof pool)[number];
          }
          return { ...request, body: item.body, headers: { ...request.headers, ...item.headers } };
        },
      },
    ],
  };
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(options, (err: unknown, res: autocannon.Result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)));
  });
  return {
    name,
    // autocannon stops at its next tick, up to a second later; what it sent meanwhile was refused.
    requestsPerSecond: Math.round(result['2xx'] / (ranOutAt === undefined ? result.duration || seconds : (ranOutAt - started) / 1000)),
    p50Ms: round(result.latency.p50),
    p99Ms: round(result.latency.p99),
    errors: result.errors,
    non2xx: result.non2xx,
    ok: result['2xx'],
    poolExhausted: exhausted,
  };
}

/** Sums the rounds of one target: req/s over the whole time, percentiles as the mean of the rounds'. */
function combine(rounds: readonly TokenHttpResult[]): TokenHttpResult {
  const first = rounds[0] as TokenHttpResult;
  const mean = (f: (r: TokenHttpResult) => number) => round(rounds.reduce((s, r) => s + f(r), 0) / rounds.length);
  const sum = (f: (r: TokenHttpResult) => number) => rounds.reduce((s, r) => s + f(r), 0);
  return {
    name: first.name,
    requestsPerSecond: Math.round(mean((r) => r.requestsPerSecond)),
    p50Ms: mean((r) => r.p50Ms),
    p99Ms: mean((r) => r.p99Ms),
    errors: sum((r) => r.errors),
    non2xx: sum((r) => r.non2xx),
    ok: sum((r) => r.ok),
    poolExhausted: sum((r) => r.poolExhausted),
  };
}

/**
 * Loads each target in alternating rounds. A 2-second warm-up per target (JIT, connection set-up, SQLite pages)
 * measures its rate; each round's pool is sized from the best rate seen and signed just before the round, so
 * that DPoP proofs are seconds old when they arrive, as they would be.
 */
async function runAlternating(targets: readonly TokenTarget[], seconds: number, rounds: number): Promise<TokenHttpResult[]> {
  const rates: number[] = [];
  for (const t of targets) {
    const warm = await loadPool(`${t.name} (warm-up)`, t.url, await presign(6_000, t.make), 2);
    if (warm.ok === 0) throw new Error(`${t.name}: the warm-up got no 2xx answer (${warm.non2xx} non-2xx, ${warm.errors} errors)`);
    rates.push(warm.requestsPerSecond);
  }
  const perRound = Math.max(2, Math.round(seconds / rounds));
  const results: TokenHttpResult[][] = targets.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, t] of targets.entries()) {
      // A round may run much faster than the warm-up (a colder JIT, a busier neighbour then): three times the
      // best rate seen so far, plus a margin. Signing is ≈ 15,000 requests/s here, so this costs seconds.
      const size = Math.min(250_000, Math.ceil((rates[i] as number) * perRound * 3) + 5_000);
      const pool = await presign(size, t.make);
      const result = await loadPool(t.name, t.url, pool, perRound);
      (results[i] as TokenHttpResult[]).push(result);
      rates[i] = Math.max(rates[i] as number, result.requestsPerSecond);
    }
  }
  return results.map(combine);
}

async function postForm(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/**
 * Checks that a target does the work it is credited with before it is measured: one request gets an `at+jwt`
 * for the resource, and the same client assertion sent again is refused (single-use jti).
 */
async function sanityCheck(target: TokenTarget): Promise<void> {
  const { body, headers } = await target.make();
  const first = await postForm(target.url, body, headers);
  const token = first.json.access_token;
  if (first.status !== 200 || typeof token !== 'string') throw new Error(`${target.name}: expected a token, got ${first.status} ${JSON.stringify(first.json).slice(0, 300)}`);
  const header = decodeProtectedHeader(token);
  if (header.typ !== 'at+jwt') throw new Error(`${target.name}: the token is typed ${String(header.typ)}, not at+jwt`);
  const replay = await postForm(target.url, body, headers);
  if (replay.status < 400) throw new Error(`${target.name}: a replayed client assertion was accepted`);
}

interface Metadata {
  issuer: string;
  token_endpoint: string;
}

async function mandateMetadata(server: BenchServer): Promise<Metadata> {
  const res = await fetch(`http://127.0.0.1:${server.port}/.well-known/oauth-authorization-server`);
  if (!res.ok) throw new Error(`the Mandate node answered ${res.status} for its OAuth metadata: is the token service started?`);
  return (await res.json()) as Metadata;
}

function clientCredentialsTarget(name: string, fixtures: TokenFixtures, audience: string, tokenEndpoint: string): TokenTarget {
  return {
    name,
    url: tokenEndpoint,
    make: async () => ({
      body: form({
        grant_type: GRANT_CLIENT_CREDENTIALS,
        scope: BENCH_SCOPE,
        resource: BENCH_RESOURCE,
        client_id: BENCH_SERVICE_ID,
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await clientAssertion(fixtures.service, BENCH_SERVICE_ID, audience),
      }),
    }),
  };
}

function exchangeTarget(name: string, fixtures: TokenFixtures, meta: Metadata, subjectToken: string, dpop: boolean): TokenTarget {
  return {
    name,
    url: meta.token_endpoint,
    make: async () => {
      const [assertion, proof] = await Promise.all([
        clientAssertion(fixtures.agent, BENCH_AGENT_ID, meta.issuer),
        dpop ? dpopProof(fixtures.dpop, meta.token_endpoint) : Promise.resolve(undefined),
      ]);
      return {
        body: form({
          grant_type: GRANT_TOKEN_EXCHANGE,
          subject_token: subjectToken,
          subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
          requested_token_type: TOKEN_TYPE_ACCESS_TOKEN,
          scope: BENCH_SCOPE,
          resource: BENCH_RESOURCE,
          client_id: BENCH_AGENT_ID,
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion,
        }),
        ...(proof === undefined ? {} : { headers: { dpop: proof } }),
      };
    },
  };
}

/** Issuance and exchange over HTTP; both servers run side by side (an idle one costs no CPU). */
async function benchHttpTokens(fixtures: TokenFixtures, seconds: number, rounds: number) {
  const env = { [FIXTURE_ENV]: fixtures.path };
  const op = await startServer('oidc-provider-cc.ts', env);
  let mandate: BenchServer | undefined;
  try {
    mandate = await startServer('mandate-token-server.ts', env);
    const opIssuer = op.info.ISSUER as string;
    const meta = await mandateMetadata(mandate);
    const opTarget = clientCredentialsTarget('oidc-provider client_credentials (private_key_jwt, JWT AT)', fixtures, opIssuer, `${opIssuer}/token`);
    const mandateCc = clientCredentialsTarget('mandate client_credentials (private_key_jwt, mandate)', fixtures, meta.issuer, meta.token_endpoint);
    const subjectToken = await userToken(fixtures.idp);
    const exchange = exchangeTarget('mandate token exchange (user token → mandate)', fixtures, meta, subjectToken, false);
    const exchangeDpop = exchangeTarget('mandate token exchange + DPoP (bound mandate)', fixtures, meta, subjectToken, true);
    for (const t of [opTarget, mandateCc, exchange, exchangeDpop]) await sanityCheck(t);

    const [oidcProvider, mandateIssuance] = (await runAlternating([opTarget, mandateCc], seconds, rounds)) as [TokenHttpResult, TokenHttpResult];
    const [cc, ex, exDpop] = (await runAlternating([mandateCc, exchange, exchangeDpop], seconds, rounds)) as [TokenHttpResult, TokenHttpResult, TokenHttpResult];
    return {
      issuance: {
        mandate: mandateIssuance,
        oidcProvider,
        ratio: ratio(mandateIssuance.requestsPerSecond, oidcProvider.requestsPerSecond),
        p50Ratio: ratio(mandateIssuance.p50Ms, oidcProvider.p50Ms),
      },
      exchange: {
        clientCredentials: cc,
        exchange: ex,
        exchangeDpop: exDpop,
        ratio: ratio(ex.requestsPerSecond, cc.requestsPerSecond),
        dpopRatio: ratio(exDpop.requestsPerSecond, cc.requestsPerSecond),
      },
    };
  } finally {
    op.child.kill('SIGTERM');
    mandate?.child.kill('SIGTERM');
  }
}

/**
 * In-process verification of one mandate: the token service's `verifyMandate` (signature with the key manager's
 * key, issuer, `typ`, lifetime, required claims, then the jti's record in SQLite: known, not revoked) against a
 * bare `jose.jwtVerify` of the same token with the same public key and the same checks, and the store lookup
 * alone (its share of the whole).
 */
export async function benchVerification(fixtures: TokenFixtures, iterations: number): Promise<TokenBenchResult['verification']> {
  const issuer = 'https://mandate.bench.example';
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-bench-verify-'));
  const store = await openStore({ driver: 'sqlite', dataDir, sqlite: { file: 'bench.db' } });
  try {
    const keys = createKeyManager({ store: store.signingKeys, kek: await kekFromBase64url(generateKek(), 'bench'), clock: systemClock, overlapMs: overlapForTokenLifetime(900, 5) });
    await keys.ensureActiveKey();
    const engine = new PolicyEngine({ engine: 'compiled' });
    await engine.loadDirectory(fixtures.file.policyDir);
    const principal: RegisteredPrincipal = {
      id: BENCH_SERVICE_ID,
      kind: 'service',
      name: 'bench service',
      owner: 'ops@acme.example',
      workflows: [],
      audiences: [BENCH_RESOURCE],
      credentials: [{ type: 'jwks', jwks: { keys: [fixtures.file.serviceJwk] } }],
      status: 'active',
      dpop: 'optional',
      apiScopes: [],
      createdAt: Date.now(),
    };
    const refuse = () => Promise.reject(new Error('not used by the verification benchmark'));
    const service = createTokenService({
      issuer: () => issuer,
      // The client was authenticated already: this benchmark is about verifying what was issued.
      authenticateClient: async () => ({ kind: 'service', principal, method: 'private_key_jwt' }),
      authenticateUser: refuse,
      verifyActorToken: refuse,
      verifyDpop: refuse,
      keys,
      tokens: store.tokens,
      principals: { byId: async () => principal, bySpiffeId: async () => undefined },
      engine,
      resources: [{ uri: BENCH_RESOURCE, scopes: { [BENCH_SCOPE]: [{ action: 'read', resource: { type: 'Dataset', id: 'crm-accounts' } }] } }],
      clock: systemClock,
      settings: { lifetimeSeconds: 300, maxLifetimeSeconds: 900, maxDelegationDepth: 4 },
    });
    // A table with some history, so that the lookup is an index search and not a one-row scan.
    const tokensInStore = 2_000;
    let token = '';
    for (let i = 0; i < tokensInStore; i++) {
      const { response } = await service.token(
        { grant_type: GRANT_CLIENT_CREDENTIALS, scope: BENCH_SCOPE, resource: BENCH_RESOURCE },
        { method: 'POST', url: `${issuer}/oauth/token`, requestId: `bench-${i}` },
      );
      if (i === tokensInStore / 2) token = response.access_token;
    }
    const header = decodeProtectedHeader(token);
    const publicKey = await keys.getVerificationKey(header);
    const verifyOptions = {
      issuer,
      typ: 'at+jwt',
      algorithms: ['EdDSA', 'ES256'],
      clockTolerance: 0,
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'aud', 'client_id'],
    };
    const { payload } = await jwtVerify(token, publicKey, verifyOptions);
    const jti = String(payload.jti);
    if ((await service.verifyMandate(token)).record.jti !== jti) throw new Error('verifyMandate must find the record of the mandate');
    const r = await measureInterleavedAsync(
      {
        raw: () => jwtVerify(token, publicKey, verifyOptions),
        mandate: () => service.verifyMandate(token),
        store: () => store.tokens.get(jti),
      },
      iterations,
      4,
      Math.min(2_000, iterations / 4),
    );
    const raw = { ...(r.raw as LatencyResult), name: 'jose.jwtVerify (same token, same key, same checks)' };
    const mandate = { ...(r.mandate as LatencyResult), name: 'mandate verifyMandate (signature + claims + store record)' };
    const lookup = { ...(r.store as LatencyResult), name: 'store lookup of the jti alone (SQLite)' };
    return {
      raw,
      mandate,
      store: lookup,
      ratio: ratio(mandate.p50Micros, raw.p50Micros),
      storeShare: `${Math.round((lookup.p50Micros / (mandate.p50Micros || 1)) * 100)} %`,
      tokensInStore,
    };
  } finally {
    await store.close();
  }
}

/**
 * Runs the token benchmarks: `seconds` of load per target (split over `rounds` alternating rounds) and
 * `iterations` in-process verifications per variant.
 */
export async function benchTokens(seconds: number, iterations: number, rounds = 2): Promise<TokenBenchResult> {
  const fixtures = await createTokenFixtures();
  const before = loadavg().map((n) => n.toFixed(2)).join(' ');
  const http = await benchHttpTokens(fixtures, seconds, rounds);
  const verification = await benchVerification(fixtures, iterations);
  const after = loadavg().map((n) => n.toFixed(2)).join(' ');
  return { ...http, verification, load: `load average ${before} before, ${after} after`, rounds };
}
