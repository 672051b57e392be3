/**
 * Fixtures of the task benchmarks: the example policies and workflows (`examples/policies`, copied as they are),
 * a user IdP known only by a static JWKS file (never contacted), and three registered principals — the
 * autonomous `sales-outreach` agent, registered for the `lead-followup` workflow that policy lets people in sales
 * run; the `helpdesk-assistant` chat agent, which may exchange a user's token for a read-tool mandate outside any
 * task (the plain exchange the task figures are compared with); and a `gateway` service that asks for decisions
 * over AuthZEN (the PEP of a step check). The CRM resource maps its scopes to the example tools and dataset.
 *
 * The bench process writes the public half to a JSON file and hands its path to server processes in
 * {@link TASK_FIXTURE_ENV}; private keys never leave the bench process.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { stringify } from 'yaml';
import { benchKey, BENCH_IDP_ISSUER, BENCH_USER_AUDIENCE, type BenchKey } from './token-fixtures.ts';

/** The resource (RFC 8707) tasks get mandates for, as in the task scenarios of the tests. */
export const TASK_RESOURCE = 'https://crm.bench.example/mcp';
/** The scope asked for, by a task and by the plain exchange alike (a read tool both may use). */
export const TASK_SCOPE = 'crm.search';
export const TASK_WORKFLOW = 'lead-followup';
export const TASK_AGENT_ID = 'sales-outreach';
export const CHAT_AGENT_ID = 'helpdesk-assistant';
export const PEP_SERVICE_ID = 'gateway';
/** The user the agents act for: in the sales group of the example directory. */
export const TASK_USER = 'alice';
/** Environment variable naming the fixture file of a server process. */
export const TASK_FIXTURE_ENV = 'MANDATE_BENCH_TASK_FIXTURE';

/** The `authorization_details` (RFC 9396) that open a task. */
export const TASK_DETAILS = JSON.stringify([{ type: 'mandate_task', workflow: TASK_WORKFLOW, purpose: 'follow up the ACME lead (bench)' }]);

/** The public half, as server processes read it. */
export interface TaskFixtureFile {
  policyDir: string;
  idpJwksFile: string;
  outreachJwk: JWK;
  chatJwk: JWK;
  gatewayJwk: JWK;
}

/** Everything the bench process holds. */
export interface TaskFixtures {
  /** Path of the fixture file, for {@link TASK_FIXTURE_ENV}. */
  path: string;
  file: TaskFixtureFile;
  idp: BenchKey;
  outreach: BenchKey;
  chat: BenchKey;
  gateway: BenchKey;
}

const EXAMPLES = new URL('../examples/policies', import.meta.url).pathname;

/** Generates the keys, copies the example policies and writes the fixture file. */
export async function createTaskFixtures(): Promise<TaskFixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-bench-tasks-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const [idp, outreach, chat, gateway] = await Promise.all([benchKey('ES256'), benchKey('EdDSA'), benchKey('EdDSA'), benchKey('EdDSA')]);
  const idpJwksFile = join(dir, 'idp-jwks.json');
  await writeFile(idpJwksFile, JSON.stringify({ keys: [idp.publicJwk] }));
  const file: TaskFixtureFile = { policyDir, idpJwksFile, outreachJwk: outreach.publicJwk, chatJwk: chat.publicJwk, gatewayJwk: gateway.publicJwk };
  const path = join(dir, 'fixture.json');
  await writeFile(path, JSON.stringify(file));
  return { path, file, idp, outreach, chat, gateway };
}

/** Reads the fixture file named by {@link TASK_FIXTURE_ENV} (in a server process). */
export async function readTaskFixture(): Promise<TaskFixtureFile> {
  const path = process.env[TASK_FIXTURE_ENV];
  if (path === undefined) throw new TypeError(`${TASK_FIXTURE_ENV} must name the task bench fixture file`);
  return JSON.parse(await readFile(path, 'utf8')) as TaskFixtureFile;
}

/**
 * The configuration of a task bench node (YAML text for `parseConfig`): data in `dataDir`, log level `warn`, the
 * per-client rate limit lifted because the load generator is a single client. Defaults elsewhere.
 */
export function taskNodeConfig(file: TaskFixtureFile, dataDir: string): string {
  const jwks = (jwk: JWK) => [{ type: 'jwks', jwks: { keys: [jwk] } }];
  return stringify({
    server: { host: '127.0.0.1' },
    store: { dataDir },
    policy: { dir: file.policyDir, watch: false },
    log: { level: 'warn' },
    rateLimit: { decisionsPerSecondPerClient: 1_000_000, burst: 10_000_000 },
    identity: { issuers: [{ issuer: BENCH_IDP_ISSUER, jwksFile: file.idpJwksFile, audiences: [BENCH_USER_AUDIENCE], algorithms: ['ES256'] }] },
    resources: [
      {
        uri: TASK_RESOURCE,
        name: 'CRM (bench)',
        scopes: {
          'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
          'crm.update': [{ action: 'call', resource: { type: 'Tool', id: 'crm.update' } }],
          'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
        },
      },
    ],
    principals: [
      { id: TASK_AGENT_ID, kind: 'agent', mode: 'autonomous', name: 'Outreach (bench)', owner: 'alice', workflows: [TASK_WORKFLOW], audiences: [TASK_RESOURCE], dpop: 'optional', credentials: jwks(file.outreachJwk) },
      { id: CHAT_AGENT_ID, kind: 'agent', mode: 'chat', name: 'Helpdesk (bench)', owner: 'bob', audiences: [TASK_RESOURCE], dpop: 'optional', credentials: jwks(file.chatJwk) },
      { id: PEP_SERVICE_ID, kind: 'service', name: 'Gateway PEP (bench)', owner: 'carol', apiScopes: ['evaluate'], dpop: 'optional', credentials: jwks(file.gatewayJwk) },
    ],
  });
}
