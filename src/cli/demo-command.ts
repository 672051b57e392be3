/**
 * `mandate demo` (what `npm start` runs): a local node with the example policies, the embedded SQLite store
 * under `.mandate/demo/`, and a credential generated for this run only. Demo mode binds 127.0.0.1 and
 * nothing else; `mandate serve` never starts any of this.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCredentialSecret, hashCredential, parseConfig, type MandateConfig } from '../config/index.ts';
import { EXIT_FAILURE, type CliCommand } from './command.ts';
import { describeStartupFailure, startMandate } from './start-mandate.ts';

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

/** The `demo` command. */
export const demoCommand: CliCommand = {
  summary: 'Run the local demo (bound to 127.0.0.1)',
  usage: '',
  description: `Starts Mandate with the example policies (examples/policies), the embedded SQLite store under
.mandate/demo/ and a credential generated for this run, bound to 127.0.0.1 only, then prints curl lines
that ask for decisions. Demo only: use \`mandate serve\` with a mandate.yaml for anything else.
MANDATE_PORT, MANDATE_POLICY_DIR, MANDATE_DATA_DIR and MANDATE_LOG_LEVEL apply.`,
  positionals: [],
  options: {},
  exitCodes: ['0  stopped by a signal', '1  refused to start', '2  usage error'],
  examples: ['npm start', 'MANDATE_PORT=9090 mandate demo'],
  async run(_args, io) {
    const secret = generateCredentialSecret();
    let node;
    try {
      const config = demoConfig(io.env, io.cwd, secret);
      if (io.env.MANDATE_HOST && io.env.MANDATE_HOST !== '127.0.0.1') io.stderr(`mandate demo: ignoring MANDATE_HOST=${io.env.MANDATE_HOST}; the demo binds 127.0.0.1 only\n`);
      node = await startMandate(config, { handleSignals: true });
    } catch (err) {
      for (const line of describeStartupFailure(err)) io.stderr(`${line}\n`);
      return EXIT_FAILURE;
    }
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const lines = [
      '',
      '  Mandate demo — DEMO ONLY: example policies, a credential made for this run, bound to 127.0.0.1',
      '',
      `  listening   ${node.url}`,
      `  ready?      curl -s ${node.url}/readyz`,
      `  metrics     curl -s ${node.url}/metrics`,
      `  credential  export MANDATE_CREDENTIAL=${secret}`,
      '',
      '  Ask for a decision (OpenID AuthZEN 1.0):',
    ];
    for (const r of DEMO_REQUESTS) {
      lines.push('', `  # ${r.title}`);
      lines.push(`  curl -s ${node.url}/access/v1/evaluation -H "authorization: Bearer ${secret}" -H 'content-type: application/json' -d ${q(JSON.stringify(r.body))}`);
    }
    lines.push('', '  Policies: examples/policies — try `npx mandate policy test examples/policies`. Ctrl-C stops.', '');
    io.stdout(`${lines.join('\n')}\n`);
    return new Promise<number>(() => undefined);
  },
};
