/**
 * `mandate demo` (what `npm start` runs): a local node with the example policies, the embedded SQLite store
 * under `.mandate/demo/`, a credential generated for this run only, and the token service with its demo parts:
 * a demo identity provider (users alice, bob and carol the approver), two demo resources (a CRM and a wiki), the
 * example policies' agents, registered with keys generated on the first run, and a demo MCP server with Acme's
 * tools that the gateway fronts at `/mcp/crm`. Demo mode binds 127.0.0.1 and nothing else; `mandate serve` never
 * starts any of this.
 */
import { mkdir } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCredentialSecret, hashCredential, parseConfig, type MandateConfig } from '../config/index.ts';
import { DEMO_AGENTS, ensureDemoAgents } from '../demo/demo-agents.ts';
import { DEMO_GATEWAY_TOOLS, demoGatewayResource, demoGatewayResourceConfig, demoGatewayUpstream } from '../demo/demo-gateway.ts';
import { DEMO_IDP_USERS, DEMO_USER_TOKEN_AUDIENCE, DEMO_USER_TOKEN_SCOPE, startDemoIdp, type DemoIdp } from '../demo/demo-idp.ts';
import { writeDemoInfo, type DemoInfoV1 } from '../demo/demo-info.ts';
import { ensureDemoKekFile } from '../demo/demo-kek.ts';
import { startDemoMcpServer, type DemoMcpServer } from '../demo/demo-mcp-server.ts';
import { DEMO_CRM_RESOURCE, DEMO_RESOURCES } from '../demo/demo-resources.ts';
import { isMandateError } from '../core/errors.ts';
import { OidcIssuerSchema } from '../identity/identity-config.ts';
import type { PrincipalRegistration } from '../identity/registry.ts';
import { KEK_ENV_VAR } from '../tokens/key-encryption.ts';
import { EXIT_FAILURE, type CliCommand } from './command.ts';
import { describeStartupFailure, startMandate, type RunningMandate } from './start-mandate.ts';

const EXAMPLE_POLICIES = fileURLToPath(new URL('../../examples/policies', import.meta.url));

/** Requests the banner shows, one per outcome, all against the example policies. */
export const DEMO_REQUESTS: ReadonlyArray<{ title: string; body: unknown }> = [
  {
    title: "allow — bob's chat assistant reads the internal wiki for him",
    body: { subject: { type: 'user', id: 'bob' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'wiki' }, context: { delegation: { actors: [{ type: 'agent', id: 'helpdesk-assistant' }] } } },
  },
  {
    title: 'deny — bob may read the CRM, but his chat assistant may not (the intersection, never the union)',
    body: { subject: { type: 'user', id: 'bob' }, action: { name: 'read' }, resource: { type: 'dataset', id: 'crm' }, context: { delegation: { actors: [{ type: 'agent', id: 'helpdesk-assistant' }] } } },
  },
  {
    title: "approval required — alice's outreach agent emails a customer inside its task",
    body: {
      subject: { type: 'user', id: 'alice' },
      action: { name: 'send' },
      resource: { type: 'tool', id: 'email.send' },
      context: { task: { type: 'Task', id: 'task-1001' }, step: 2, args: { recipientDomain: 'customer.example' }, delegation: { actors: [{ type: 'agent', id: 'sales-outreach' }] } },
    },
  },
];

/** The demo's configuration: defaults and environment, then the demo's own parts. */
export function demoConfig(env: Readonly<Record<string, string | undefined>>, cwd: string, secret: string): MandateConfig {
  const base = parseConfig('', { source: 'demo defaults', env, baseDir: cwd, cwd });
  return {
    ...base,
    // Demo mode is loopback only, whatever MANDATE_HOST says.
    server: { ...base.server, host: '127.0.0.1' },
    store: { ...base.store, dataDir: env.MANDATE_DATA_DIR ? base.store.dataDir : join(cwd, '.mandate', 'demo') },
    policy: { ...base.policy, dir: env.MANDATE_POLICY_DIR ? base.policy.dir : EXAMPLE_POLICIES },
    authzen: { ...base.authzen, credentials: [{ id: 'demo-pep', hash: hashCredential(secret), scopes: ['evaluate', 'policy:read', 'policy:reload'] }] },
  };
}

/** The token service's demo parts, added to a demo configuration. */
export function withDemoTokenService(
  config: MandateConfig,
  parts: { idpIssuer: string; kekFile: string | undefined; principals: PrincipalRegistration[]; gateway?: { mcpServerUrl: string; resource: string } },
): MandateConfig {
  const gateway = parts.gateway;
  return {
    ...config,
    identity: {
      ...config.identity,
      issuers: [demoIssuer(parts.idpIssuer)],
      // The demo IdP is plain http on loopback: allowed for that host only, never for the whole private network.
      outbound: { ...config.identity.outbound, allowHttp: true, allowHosts: [...new Set([...config.identity.outbound.allowHosts, '127.0.0.1'])] },
    },
    tokens: { ...config.tokens, ...(parts.kekFile === undefined ? {} : { kekFile: parts.kekFile }) },
    resources: [...DEMO_RESOURCES.map((r) => ({ ...r, scopes: { ...r.scopes } })), ...(gateway === undefined ? [] : [demoGatewayResourceConfig(gateway.resource)])],
    // The demo agents may also ask for mandates for the gateway.
    principals: gateway === undefined ? parts.principals : parts.principals.map((p) => (p.kind === 'agent' ? { ...p, audiences: [...(p.audiences ?? []), gateway.resource] } : p)),
    // The demo MCP server behind the gateway at /mcp/crm.
    ...(gateway === undefined ? {} : { gateway: { ...config.gateway, upstreams: [demoGatewayUpstream(gateway.mcpServerUrl, gateway.resource)] } }),
  };
}

function demoIssuer(issuer: string): MandateConfig['identity']['issuers'][number] {
  return OidcIssuerSchema.parse({ issuer, discovery: true, audiences: [DEMO_USER_TOKEN_AUDIENCE] });
}

/** Options of {@link startDemo}. */
export interface StartDemoOptions {
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** The AuthZEN credential of this run; default a new one. */
  secret?: string;
  /** Mandate's port, overriding MANDATE_PORT (tests pass 0). */
  port?: number;
  /** Let `startMandate` handle SIGTERM, SIGINT and SIGHUP (the command does; in-process tests do not). */
  handleSignals?: boolean;
}

/** A running demo. */
export interface RunningDemo {
  node: RunningMandate;
  idp: DemoIdp;
  /** The demo MCP server behind the gateway. */
  mcp: DemoMcpServer;
  info: DemoInfoV1;
  /** Where `demo.json` was written. */
  infoFile: string;
  secret: string;
  /** The text the command prints. */
  banner: string;
  /** Stops the node, then the IdP and the MCP server. */
  stop(): Promise<void>;
}

/** A free port on 127.0.0.1 (the gateway resource names Mandate's URL, so the port is chosen before listening). */
async function freeLoopbackPort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function idpPort(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env.MANDATE_DEMO_IDP_PORT;
  if (raw === undefined || raw === '') return 0;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new TypeError(`MANDATE_DEMO_IDP_PORT=${raw.slice(0, 20)}: expected an integer 0..65535`);
  return port;
}

/**
 * Starts the demo: its key-encryption key and agent keys (created on the first run), the demo IdP, then the node
 * with the token service; writes `demo.json` for the client script and builds the banner.
 */
export async function startDemo(options: StartDemoOptions): Promise<RunningDemo> {
  const secret = options.secret ?? generateCredentialSecret();
  let config = demoConfig(options.env, options.cwd, secret);
  if (options.port !== undefined) config = { ...config, server: { ...config.server, port: options.port } };
  if (config.server.port === 0) config = { ...config, server: { ...config.server, port: await freeLoopbackPort() } };
  const dataDir = config.store.dataDir;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // MANDATE_KEK wins when set (Mandate refuses two KEK sources); otherwise the demo's own file.
  const kekFile = options.env[KEK_ENV_VAR] ? undefined : (await ensureDemoKekFile(join(dataDir, 'kek'))).path;
  const agents = await ensureDemoAgents(join(dataDir, 'agents'));
  const idp = await startDemoIdp({ port: idpPort(options.env) });
  let mcp: DemoMcpServer;
  try {
    mcp = await startDemoMcpServer();
  } catch (err) {
    await idp.close();
    throw err;
  }
  let node: RunningMandate;
  try {
    const gatewayResource = demoGatewayResource(`http://127.0.0.1:${config.server.port}`);
    config = withDemoTokenService(config, { idpIssuer: idp.issuer, kekFile, principals: agents.registrations, gateway: { mcpServerUrl: mcp.url, resource: gatewayResource } });
    node = await startMandate(config, { handleSignals: options.handleSignals ?? false, env: options.env });
  } catch (err) {
    await mcp.close();
    await idp.close();
    throw err;
  }
  const issuer = config.tokens.issuer ?? node.url;
  mcp.trustIssuer(issuer);
  const info: DemoInfoV1 = {
    version: 1,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    mandate: { url: node.url, issuer },
    idp: {
      issuer: idp.issuer,
      clientId: idp.clientId,
      userTokenAudience: DEMO_USER_TOKEN_AUDIENCE,
      userTokenScope: DEMO_USER_TOKEN_SCOPE,
      browserLoginUrl: idp.browserLoginUrl,
      users: Object.keys(DEMO_IDP_USERS),
    },
    resources: DEMO_RESOURCES.map((r) => ({ uri: r.uri, ...(r.name === undefined ? {} : { name: r.name }), scopes: Object.keys(r.scopes) })),
    agents: DEMO_AGENTS.map((a) => ({ id: a.id, name: a.name, owner: a.owner, mode: a.mode, privateJwkFile: agents.keyFiles[a.id] as string })),
    gateway: {
      url: config.gateway.upstreams[0]?.resource ?? demoGatewayResource(node.url),
      resource: config.gateway.upstreams[0]?.resource ?? demoGatewayResource(node.url),
      upstream: mcp.url,
      tools: Object.keys(DEMO_GATEWAY_TOOLS),
      approvers: Object.entries(DEMO_IDP_USERS).filter(([, u]) => Array.isArray(u.claims?.roles) && u.claims.roles.includes('approver')).map(([id]) => id),
    },
  };
  let infoFile: string;
  try {
    infoFile = await writeDemoInfo(dataDir, info);
  } catch (err) {
    await node.stop().catch(() => undefined);
    await mcp.close();
    await idp.close();
    throw err;
  }
  const stop = async () => {
    await node.stop();
    await mcp.close();
    await idp.close();
  };
  const shown = (path: string) => {
    const rel = relative(options.cwd, path);
    return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel;
  };
  const banner = renderBanner(node.url, info, secret, { infoFile: shown(infoFile), agentsDir: shown(join(dataDir, 'agents')), customDataDir: Boolean(options.env.MANDATE_DATA_DIR) });
  return { node, idp, mcp, info, infoFile, secret, banner, stop };
}

function renderBanner(url: string, info: DemoInfoV1, secret: string, paths: { infoFile: string; agentsDir: string; customDataDir: boolean }): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [
    '',
    '  Mandate demo — DEMO ONLY: example policies, a demo IdP, demo agents and a credential made for this run, bound to 127.0.0.1',
    '',
    `  listening   ${url}`,
    `  ready?      curl -s ${url}/readyz`,
    `  metrics     curl -s ${url}/metrics`,
    `  credential  export MANDATE_CREDENTIAL=${secret}`,
    '',
    '  Ask for a decision (OpenID AuthZEN 1.0):',
  ];
  for (const r of DEMO_REQUESTS) {
    lines.push('', `  # ${r.title}`);
    lines.push(`  curl -s ${url}/access/v1/evaluation -H "authorization: Bearer ${secret}" -H 'content-type: application/json' -d ${q(JSON.stringify(r.body))}`);
  }
  const agentLine = info.agents.map((a) => `${a.id} (${a.mode}, owner ${a.owner})`).join(', ');
  lines.push(
    '',
    '  Mandates — OAuth token exchange (RFC 8693): an agent trades a user\'s IdP token for a short-lived,',
    '  DPoP-bound token for ONE resource, with the scopes policy allows the user AND the agent:',
    '',
    `  token service  ${info.mandate.issuer}   metadata: curl -s ${info.mandate.issuer}/.well-known/oauth-authorization-server`,
    `  demo IdP       ${info.idp.issuer}   DEMO ONLY, no passwords — users ${info.idp.users.join(', ')}`,
    `  demo agents    ${agentLine}; private keys in ${paths.agentsDir}/`,
  );
  for (const r of info.resources) lines.push(`  resource       ${r.uri}   scopes: ${r.scopes.join(' ')}`);
  lines.push(
    '',
    '  The whole story, in another terminal (alice logs in, her help desk assistant gets a CRM mandate,',
    '  it is introspected, a refused exchange, revocation):',
    '    npm run demo:exchange',
    '',
    '  Step by step:',
    `    1. log in as alice: open ${info.idp.browserLoginUrl} in a browser, or without one:`,
    '         export USER_TOKEN=$(npm run -s demo:exchange -- token alice)',
    '    2. helpdesk-assistant exchanges $USER_TOKEN (private_key_jwt client authentication, a DPoP proof):',
    `         export MANDATE_TOKEN=$(npm run -s demo:exchange -- exchange --agent helpdesk-assistant --resource ${DEMO_CRM_RESOURCE} --scope 'crm.search crm.read')`,
    '    3. verify it and explain every claim, then ask the token service about it (RFC 7662):',
    `         npx mandate token inspect "$MANDATE_TOKEN" --issuer ${info.mandate.issuer}`,
    '         npm run -s demo:exchange -- introspect "$MANDATE_TOKEN" --agent helpdesk-assistant',
    '    4. revoke it, then introspect again (active: false):',
    '         npm run -s demo:exchange -- revoke "$MANDATE_TOKEN" --agent helpdesk-assistant',
    `  (The script reads ${paths.infoFile}: URLs and key file paths, no secrets.${paths.customDataDir ? ' Give it the same MANDATE_DATA_DIR.' : ''})`,
    '',
    '  The gateway — an agent\'s MCP client calls Acme\'s tools through Mandate, one decision per call:',
    '',
    ...(info.gateway === undefined
      ? []
      : [
          `  MCP gateway    ${info.gateway.url}   mandates for ${info.gateway.resource}; tools ${info.gateway.tools.join(', ')}`,
          `  demo MCP server ${info.gateway.upstream}   DEMO ONLY: accepts only tokens Mandate minted for it, never the agent's`,
          `  approvers      ${info.gateway.approvers.join(', ')} (role approver at the demo IdP)`,
        ]),
    '',
    '  The agent\'s story, in another terminal (alice\'s outreach agent opens a task: an allowed read, a restricted',
    '  record withheld, an out-of-plan tool denied, an e-mail that waits for carol\'s approval, the task ends):',
    '    npm run demo:agent',
    '',
    '  Policies: examples/policies — try `npx mandate policy test examples/policies`. Ctrl-C stops.',
    '',
  );
  return `${lines.join('\n')}\n`;
}

/** The `demo` command. */
export const demoCommand: CliCommand = {
  summary: 'Run the local demo (bound to 127.0.0.1)',
  usage: '',
  description: `Starts Mandate with the example policies (examples/policies), the embedded SQLite store under
.mandate/demo/ and a credential generated for this run, bound to 127.0.0.1 only, then prints curl lines
that ask for decisions. Also starts the token service with a DEMO ONLY identity provider (users alice, bob
and carol, no passwords), two demo resources and the example agents, whose keys (and the key-encryption key)
are created under .mandate/demo/ on the first run, and a DEMO ONLY MCP server that the gateway fronts at
/mcp/crm; \`npm run demo:exchange\` then walks through a token exchange, \`npm run demo:agent\` through an
agent's task.
Demo only: use \`mandate serve\` with a mandate.yaml for anything else.
MANDATE_PORT, MANDATE_POLICY_DIR, MANDATE_DATA_DIR, MANDATE_LOG_LEVEL, MANDATE_KEK and MANDATE_DEMO_IDP_PORT apply.`,
  positionals: [],
  options: {},
  exitCodes: ['0  stopped by a signal', '1  refused to start', '2  usage error'],
  examples: ['npm start', 'MANDATE_PORT=9090 mandate demo', 'npm run demo:exchange', 'npm run demo:agent'],
  async run(_args, io) {
    let demo: RunningDemo;
    try {
      if (io.env.MANDATE_HOST && io.env.MANDATE_HOST !== '127.0.0.1') io.stderr(`mandate demo: ignoring MANDATE_HOST=${io.env.MANDATE_HOST}; the demo binds 127.0.0.1 only\n`);
      demo = await startDemo({ env: io.env, cwd: io.cwd, handleSignals: true });
    } catch (err) {
      // The demo's own set-up (key files, the IdP's port) fails with plain errors whose message says what to do.
      const lines = isMandateError(err) || !(err instanceof Error) ? describeStartupFailure(err) : [`mandate demo: ${err.message}`];
      for (const line of lines) io.stderr(`${line}\n`);
      return EXIT_FAILURE;
    }
    io.stdout(demo.banner);
    return new Promise<number>(() => undefined);
  },
};
