/**
 * Fixtures of the gateway benchmark: the example policies and workflows (`examples/policies`), with the
 * `lead-followup` workflow's step budget raised so that a task can make a benchmark's worth of calls (the
 * policies, tools, ceiling and step check are unchanged); a user IdP known only by a static JWKS file (never
 * contacted); the autonomous `sales-outreach` agent (`private_key_jwt`, bearer mandates); and the node's
 * configuration with one gateway upstream, `/mcp/crm`, whose `search` tool is the workflow's `crm.search`.
 *
 * The bench process writes the public half to a JSON file and hands its path to the node in
 * {@link GATEWAY_FIXTURE_ENV}; private keys never leave the bench process.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { stringify } from 'yaml';
import { BENCH_IDP_ISSUER, BENCH_USER_AUDIENCE, type BenchKey } from './token-fixtures.ts';

/** The gateway resource (RFC 8707): the `aud` of the task's mandates, and where the gateway serves it. */
export const GATEWAY_RESOURCE = 'https://mandate.bench.example/mcp/crm';
/** The upstream id: the gateway route is `/mcp/<id>`. */
export const GATEWAY_UPSTREAM_ID = 'crm';
/** The audience of the token the gateway mints for the upstream. */
export const UPSTREAM_AUDIENCE = 'https://crm.bench.internal';
export const GATEWAY_SCOPE = 'crm.search';
export const GATEWAY_WORKFLOW = 'lead-followup';
export const GATEWAY_AGENT_ID = 'sales-outreach';
/** In the sales group of the example directory, so she may run `lead-followup`. */
export const GATEWAY_USER = 'alice';
/** Environment variable naming the fixture file of the node. */
export const GATEWAY_FIXTURE_ENV = 'MANDATE_BENCH_GATEWAY_FIXTURE';
/** Environment variable with the upstream's URL, for the node and the bare proxy. */
export const UPSTREAM_URL_ENV = 'MANDATE_BENCH_UPSTREAM_URL';

/** The `authorization_details` (RFC 9396) that open a task. */
export const GATEWAY_TASK_DETAILS = JSON.stringify([{ type: 'mandate_task', workflow: GATEWAY_WORKFLOW, purpose: 'look up ACME leads (gateway bench)' }]);

/** The public half, as the node reads it. */
export interface GatewayFixtureFile {
  policyDir: string;
  idpJwksFile: string;
  agentJwk: JWK;
}

/** Everything the bench process holds. */
export interface GatewayFixtures {
  path: string;
  file: GatewayFixtureFile;
  idp: BenchKey;
  agent: BenchKey;
}

const EXAMPLES = new URL('../examples/policies', import.meta.url).pathname;

async function newKey(alg: 'EdDSA' | 'ES256'): Promise<BenchKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' }, kid, alg };
}

/** Generates the keys, copies the example policies (raising the workflow's step budget) and writes the fixture file. */
export async function createGatewayFixtures(): Promise<GatewayFixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-bench-gateway-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const workflow = join(policyDir, 'workflows', `${GATEWAY_WORKFLOW}.yaml`);
  const text = await readFile(workflow, 'utf8');
  // 20 steps at 10 a minute is right for an agent and far too few for a load test; the budget is still checked.
  const raised = text.replace(/^steps:\n(?: {2}.*\n)+/m, 'steps:\n  max: 1000000\n');
  if (raised === text) throw new Error(`${workflow}: no steps section to raise`);
  await writeFile(workflow, raised);
  // The directory's Workflow entity must say what the file says (the catalog refuses a mismatch).
  const entities = join(policyDir, 'entities.yaml');
  const directory = await readFile(entities, 'utf8');
  const entity = new RegExp(`(- uid: \\{ type: Workflow, id: ${GATEWAY_WORKFLOW} \\}\\n(?: {2,}.*\\n)*? {4}maxSteps: )\\d+`);
  const raisedEntity = directory.replace(entity, '$11000000');
  if (raisedEntity === directory) throw new Error(`${entities}: no maxSteps on Workflow::"${GATEWAY_WORKFLOW}" to raise`);
  await writeFile(entities, raisedEntity);
  const [idp, agent] = await Promise.all([newKey('ES256'), newKey('EdDSA')]);
  const idpJwksFile = join(dir, 'idp-jwks.json');
  await writeFile(idpJwksFile, JSON.stringify({ keys: [idp.publicJwk] }));
  const file: GatewayFixtureFile = { policyDir, idpJwksFile, agentJwk: agent.publicJwk };
  const path = join(dir, 'fixture.json');
  await writeFile(path, JSON.stringify(file));
  return { path, file, idp, agent };
}

/** Reads the fixture file named by {@link GATEWAY_FIXTURE_ENV} (in the node's process). */
export async function readGatewayFixture(): Promise<GatewayFixtureFile> {
  const path = process.env[GATEWAY_FIXTURE_ENV];
  if (path === undefined) throw new TypeError(`${GATEWAY_FIXTURE_ENV} must name the gateway bench fixture file`);
  return JSON.parse(await readFile(path, 'utf8')) as GatewayFixtureFile;
}

/**
 * The node's configuration (YAML text for `parseConfig`): the gateway fronting `upstreamUrl` at `/mcp/crm` with a
 * token-exchange credential (the upstream sees a token Mandate minted, never the caller's), log level `warn`, the
 * per-client rate limit lifted because the load generator is a single client. Defaults elsewhere.
 */
export function gatewayNodeConfig(file: GatewayFixtureFile, dataDir: string, upstreamUrl: string): string {
  return stringify({
    server: { host: '127.0.0.1' },
    store: { dataDir },
    policy: { dir: file.policyDir, watch: false },
    log: { level: 'warn' },
    rateLimit: { decisionsPerSecondPerClient: 1_000_000, burst: 10_000_000 },
    identity: { issuers: [{ issuer: BENCH_IDP_ISSUER, jwksFile: file.idpJwksFile, audiences: [BENCH_USER_AUDIENCE], algorithms: ['ES256'] }] },
    resources: [{ uri: GATEWAY_RESOURCE, name: 'CRM via the gateway (bench)', scopes: { [GATEWAY_SCOPE]: [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }] } }],
    principals: [
      {
        id: GATEWAY_AGENT_ID,
        kind: 'agent',
        mode: 'autonomous',
        name: 'Outreach (bench)',
        owner: 'alice',
        workflows: [GATEWAY_WORKFLOW],
        audiences: [GATEWAY_RESOURCE],
        dpop: 'optional',
        credentials: [{ type: 'jwks', jwks: { keys: [file.agentJwk] } }],
      },
    ],
    gateway: {
      upstreams: [
        {
          id: GATEWAY_UPSTREAM_ID,
          url: upstreamUrl,
          resource: GATEWAY_RESOURCE,
          credential: { type: 'token_exchange', audience: UPSTREAM_AUDIENCE },
          tools: { search: { action: 'call', resource: { type: 'Tool', id: 'crm.search' } } },
        },
      ],
    },
  });
}
