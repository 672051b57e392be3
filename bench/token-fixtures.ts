/**
 * Fixtures of the token benchmarks: the bench clients' keys (a service and an agent, `private_key_jwt`), a user
 * IdP known only by a static JWKS file (never contacted), a policy directory that allows the measured scope, and
 * the client assertions, user tokens and DPoP proofs the load generator sends. Everything a request carries is
 * signed before the timed run, one per request with a unique `jti`, so that the client's signing cost is not
 * part of the figure.
 *
 * The bench process writes the public half to a JSON file and hands its path to the server processes in
 * {@link FIXTURE_ENV}; private keys never leave the bench process.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { stringify } from 'yaml';

/** The resource (RFC 8707) both servers issue tokens for, and its one scope. */
export const BENCH_RESOURCE = 'https://crm.bench.example/mcp';
export const BENCH_SCOPE = 'crm.read';
/** Client ids of the bench principals. */
export const BENCH_SERVICE_ID = 'bench-service';
export const BENCH_AGENT_ID = 'bench-agent';
/** The user IdP: an issuer identifier only, its keys come from a file. */
export const BENCH_IDP_ISSUER = 'https://idp.bench.example';
/** The audience of the users' tokens (what Mandate accepts them for). */
export const BENCH_USER_AUDIENCE = 'https://mandate.bench.example';
export const BENCH_USER = 'alice';
/** Environment variable naming the fixture file of a server process. */
export const FIXTURE_ENV = 'MANDATE_BENCH_TOKEN_FIXTURE';

/** The public half, as the server processes read it. */
export interface TokenFixtureFile {
  policyDir: string;
  idpJwksFile: string;
  /** Public JWKs (with `kid` and `alg`) of the clients' assertion keys. */
  serviceJwk: JWK;
  agentJwk: JWK;
}

/** A signing key of the bench process. */
export interface BenchKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
  alg: 'EdDSA' | 'ES256';
}

/** Everything the bench process holds. */
export interface TokenFixtures {
  /** Path of the fixture file, for {@link FIXTURE_ENV}. */
  path: string;
  file: TokenFixtureFile;
  service: BenchKey;
  agent: BenchKey;
  idp: BenchKey;
  /** The agent's DPoP key (the proof carries its public JWK). */
  dpop: BenchKey;
}

/** Generates a signing key and its public JWK (`kid` = the RFC 7638 thumbprint). */
export async function benchKey(alg: 'EdDSA' | 'ES256'): Promise<BenchKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' }, kid, alg };
}

const SCHEMA = new URL('../examples/policies/schema.cedarschema', import.meta.url).pathname;

/** Writes the policy directory: reading the CRM dataset is allowed to active services and agents and to users. */
async function writePolicyDir(dir: string): Promise<void> {
  await writeFile(join(dir, 'schema.cedarschema'), await readFile(SCHEMA, 'utf8'));
  await writeFile(join(dir, 'entities.yaml'), stringify([{ uid: { type: 'Dataset', id: 'crm-accounts' }, attrs: { sensitivity: 'internal', tenant: 'acme' }, parents: [] }]));
  await writeFile(
    join(dir, 'policies.cedar'),
    [
      '@id("services-read-crm")\npermit(principal is Service, action == Action::"read", resource == Dataset::"crm-accounts") when { principal.status == "active" };',
      '@id("agents-read-crm")\npermit(principal is Agent, action == Action::"read", resource == Dataset::"crm-accounts") when { principal.status == "active" };',
      '@id("users-read-crm")\npermit(principal is User, action == Action::"read", resource == Dataset::"crm-accounts");',
    ].join('\n\n'),
  );
}

/** Generates the keys and writes the fixture file and the policy directory. */
export async function createTokenFixtures(): Promise<TokenFixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-bench-tokens-'));
  const policyDir = await mkdtemp(join(dir, 'policies-'));
  await writePolicyDir(policyDir);
  const [service, agent, idp, dpop] = await Promise.all([benchKey('EdDSA'), benchKey('EdDSA'), benchKey('ES256'), benchKey('ES256')]);
  const idpJwksFile = join(dir, 'idp-jwks.json');
  await writeFile(idpJwksFile, JSON.stringify({ keys: [idp.publicJwk] }));
  const file: TokenFixtureFile = { policyDir, idpJwksFile, serviceJwk: service.publicJwk, agentJwk: agent.publicJwk };
  const path = join(dir, 'fixture.json');
  await writeFile(path, JSON.stringify(file));
  return { path, file, service, agent, idp, dpop };
}

/** Reads the fixture file named by {@link FIXTURE_ENV} (in a server process). */
export async function readTokenFixture(): Promise<TokenFixtureFile> {
  const path = process.env[FIXTURE_ENV];
  if (path === undefined) throw new TypeError(`${FIXTURE_ENV} must name the token bench fixture file`);
  return JSON.parse(await readFile(path, 'utf8')) as TokenFixtureFile;
}

/** A `private_key_jwt` client assertion (RFC 7523 §3) with a fresh `jti`, valid for 5 minutes. */
export function clientAssertion(key: BenchKey, clientId: string, audience: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + 290)
    .sign(key.privateKey);
}

/** A user's RFC 9068 access token from the static-JWKS IdP, for Mandate's audience. */
export function userToken(idp: BenchKey, subject = BENCH_USER, lifetimeSeconds = 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ client_id: 'bench-user-app', scope: 'openid', roles: [], email: `${subject}@acme.example`, department: 'sales', jti: randomUUID() })
    .setProtectedHeader({ alg: idp.alg, kid: idp.kid, typ: 'at+jwt' })
    .setIssuer(BENCH_IDP_ISSUER)
    .setSubject(subject)
    .setAudience(BENCH_USER_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetimeSeconds)
    .sign(idp.privateKey);
}

/** A DPoP proof (RFC 9449 §4.2) for a POST to `htu`, with a fresh `jti`. */
export function dpopProof(key: BenchKey, htu: string): Promise<string> {
  const { kid: _kid, alg: _alg, use: _use, ...jwk } = key.publicJwk;
  return new SignJWT({ jti: randomUUID(), htm: 'POST', htu })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk })
    .setIssuedAt()
    .sign(key.privateKey);
}

/** Signs `count` items in batches (WebCrypto jobs run on libuv's thread pool, so a batch uses every core). */
export async function presign<T>(count: number, make: () => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  const batch = 256;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const signed = await Promise.all(Array.from({ length: n }, make));
    for (let j = 0; j < n; j++) out[i + j] = signed[j] as T;
  }
  return out;
}
