/**
 * `mandate gateway tools <upstream>`: tool pinning for administrators. Connects to a configured upstream MCP server
 * (launching it when it is a local `stdio` one) with the MCP SDK client, lists its tools with the hash of each
 * definition, compares them with the configured `pinnedHash`es, and prints the YAML lines that approve them.
 *
 * The command connects as an administrator's tool, with no caller's mandate. An upstream reached with a token
 * Mandate mints per caller (`credential: token_exchange`) is not contacted: there is no caller to mint it for.
 */
import { isAbsolute, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { NotFoundError } from '../core/errors.ts';
import type { GatewayUpstream } from '../gateway/gateway-config.ts';
import { resolveStdioEnv } from '../gateway/stdio-upstream.ts';
import { checkPinned } from '../gateway/tool-pins.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliCommand, type CliIo } from './command.ts';
import { CONFIG_OPTION, loadCliConfig, renderTable, terminalSafe } from './store-context.ts';

const TIMEOUT_MS = 30_000;
const MAX_PAGES = 100;
/** Tool names the `tools` section accepts (gateway-config.ts `NAME`). */
const CONFIGURABLE = /^[A-Za-z0-9_.-]{1,128}$/;

/** The state of one tool against the configuration. */
export type ToolPinStatus = 'approved' | 'changed' | 'unpinned' | 'new' | 'duplicated' | 'missing';

/** One row of the report. */
export interface ToolPinRow {
  name: string;
  status: ToolPinStatus;
  /** The hash of the definition the upstream lists now. */
  hash?: string;
  /** The configured hash, when there is one. */
  pinnedHash?: string;
  /** The listed definition's description, for review (what the model will read). */
  description?: string;
}

/** The `gateway tools` command. */
export const gatewayToolsCommand: CliCommand = {
  summary: "List an upstream's tools and their pinning state, with the YAML that approves them",
  usage: '<upstream> [--json] [--config FILE]',
  description: `Connects to the configured upstream MCP server (a local stdio one is launched for the occasion),
lists its tools with the hash of each definition (name, description, input schema), and compares them with
gateway.upstreams[].tools.<name>.pinnedHash: approved (hash matches), changed (it no longer does), unpinned
(configured, no hash yet), new (not configured), duplicated (listed twice), missing (configured, not listed).
Then prints the tools: lines that approve what it saw; paste them into the upstream's entry in mandate.yaml
(with pinning: enforce) after reviewing the definitions. An upstream reached with credential token_exchange is
not contacted: its token is minted per caller, and the command has none.`,
  positionals: [{ name: 'upstream', description: 'the id of an entry of gateway.upstreams' }],
  options: { config: CONFIG_OPTION, json: { type: 'boolean', description: 'Print JSON' } },
  exitCodes: ['0  every listed tool is approved', '1  some tool needs approval, or the upstream cannot be reached', '2  usage error'],
  examples: ['mandate gateway tools crm', 'mandate gateway tools files --json | jq .tools'],
  async run(args, io) {
    const id = args.positionals[0];
    if (id === undefined) throw new CliUsageError('name the upstream: mandate gateway tools <upstream>');
    const config = await loadCliConfig(args, io);
    const upstream = config.gateway.upstreams.find((u) => u.id === id);
    if (upstream === undefined) {
      const known = config.gateway.upstreams.map((u) => u.id);
      throw new NotFoundError(`no upstream ${JSON.stringify(id.slice(0, 64))} in gateway.upstreams${known.length === 0 ? '' : `; configured: ${known.join(', ')}`}`);
    }
    if (upstream.url !== undefined && upstream.credential.type !== 'none') {
      io.stderr(
        `mandate gateway tools: upstream ${upstream.id} is reached with a per-caller credential (${upstream.credential.type === 'vault' ? "the user's own, from the vault" : 'a token Mandate mints for each caller'}); ` +
          'this command has no caller and does not contact it. List its tools from its own administration, or through the gateway with a mandate.\n',
      );
      return EXIT_FAILURE;
    }
    let listed: unknown[];
    try {
      listed = await listUpstreamTools(upstream, io);
    } catch (err) {
      io.stderr(`mandate gateway tools: upstream ${upstream.id} could not be listed: ${terminalSafe(err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err)).slice(0, 300)}\n`);
      return EXIT_FAILURE;
    }
    const rows = pinRows(upstream, listed);
    const yaml = approvalYaml(upstream, rows);
    if (args.values.json) {
      io.stdout(`${JSON.stringify({ upstream: upstream.id, pinning: upstream.pinning, tools: rows, yaml }, null, 2)}\n`);
    } else {
      io.stdout(renderTable(['TOOL', 'STATUS', 'HASH'], rows.map((r) => [r.name, r.status, r.hash ?? r.pinnedHash ?? ''])));
      const review = rows.filter((r) => r.status === 'changed' || r.status === 'new' || r.status === 'unpinned');
      if (review.length > 0) {
        io.stdout('\nTo review (the description is what the model reads; --json shows it whole):\n');
        for (const r of review) io.stdout(`  ${terminalSafe(r.name)} (${r.status}): ${terminalSafe((r.description ?? '(no description)').slice(0, 300))}\n`);
      }
      if (upstream.pinning !== 'enforce') io.stdout(`\nNote: pinning is ${upstream.pinning} for ${upstream.id}; set pinning: enforce to refuse new and changed tools.\n`);
      io.stdout(`\n# Paste under gateway.upstreams (id: ${upstream.id}) in mandate.yaml, after reviewing the definitions:\n${terminalSafe(yaml)}`);
    }
    return rows.every((r) => r.status === 'approved' || r.status === 'missing') ? EXIT_OK : EXIT_FAILURE;
  },
};

/** Connects to the upstream as an administrator's tool and returns every tool it lists (all pages). */
async function listUpstreamTools(upstream: GatewayUpstream, io: CliIo): Promise<unknown[]> {
  let transport: Transport;
  if (upstream.stdio !== undefined) {
    const { stdio } = upstream;
    transport = new StdioClientTransport({
      command: stdio.command,
      args: [...stdio.args],
      env: resolveStdioEnv(upstream.id, stdio, io.env),
      ...(stdio.cwd === undefined ? {} : { cwd: isAbsolute(stdio.cwd) ? stdio.cwd : resolve(io.cwd, stdio.cwd) }),
      // The server's own log is noise here, unless one is debugging it.
      stderr: io.env.MANDATE_DEBUG === '1' ? 'inherit' : 'ignore',
    });
  } else {
    transport = new StreamableHTTPClientTransport(new URL(upstream.url as string));
  }
  const client = new Client({ name: 'mandate-gateway-tools', version: '1' });
  try {
    await client.connect(transport, { timeout: TIMEOUT_MS });
    const tools: unknown[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const result = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: TIMEOUT_MS });
      tools.push(...result.tools);
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
    return tools;
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** The report rows: what {@link checkPinned} found, one row per tool, in the upstream's listing order. */
export function pinRows(upstream: GatewayUpstream, listed: readonly unknown[]): ToolPinRow[] {
  const check = checkPinned(new Map(Object.entries(upstream.tools)), listed);
  const rows: ToolPinRow[] = [
    ...check.approved.map((name) => ({ name, status: 'approved' as const, pinnedHash: upstream.tools[name]?.pinnedHash as string, hash: upstream.tools[name]?.pinnedHash as string })),
    ...check.changed.map((c) => ({ name: c.name, status: 'changed' as const, hash: c.hash, pinnedHash: c.pinnedHash })),
    ...check.unpinned.map((c) => ({ name: c.name, status: 'unpinned' as const, hash: c.hash })),
    ...check.new.map((c) => ({ name: c.name, status: 'new' as const, hash: c.hash })),
    ...check.duplicated.map((name) => ({ name, status: 'duplicated' as const })),
  ];
  const order = new Map<string, number>();
  listed.forEach((t, i) => {
    const name = (t as { name?: unknown } | null)?.name;
    if (typeof name === 'string' && !order.has(name)) order.set(name, i);
  });
  rows.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
  for (const r of rows) {
    const description = (listed[order.get(r.name) ?? -1] as { description?: unknown } | undefined)?.description;
    if (typeof description === 'string') r.description = description;
  }
  return [...rows, ...check.missing.map((name) => ({ name, status: 'missing' as const, ...(upstream.tools[name]?.pinnedHash === undefined ? {} : { pinnedHash: upstream.tools[name]?.pinnedHash as string }) }))];
}

/**
 * The `tools:` lines that approve every listed tool as it is now: configured entries keep their action and
 * resource; new tools get a placeholder (`call` on `Tool::"<upstream>.<name>"`) to review. Strings are written as
 * JSON strings, which YAML reads as double-quoted scalars, so an upstream's odd names cannot break the file.
 */
export function approvalYaml(upstream: GatewayUpstream, rows: readonly ToolPinRow[]): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = ['tools:'];
  for (const r of rows) {
    if (r.status === 'missing' || r.status === 'duplicated' || r.hash === undefined) continue;
    if (!CONFIGURABLE.test(r.name)) {
      lines.push(`  # ${q(r.name)}: a name the configuration cannot hold (letters, digits, ".", "_", "-"): it stays uncallable`);
      continue;
    }
    const entry = upstream.tools[r.name];
    const action = entry?.action ?? 'call';
    const resource = entry?.resource ?? { type: 'Tool', id: `${upstream.id}.${r.name}` };
    const note = r.status === 'new' ? '  # new: review action and resource' : r.status === 'changed' ? `  # changed: was ${r.pinnedHash ?? ''}` : '';
    lines.push(`  ${q(r.name)}: { action: ${q(action)}, resource: { type: ${q(resource.type)}, id: ${q(resource.id)} }, pinnedHash: ${q(r.hash)} }${note}`);
  }
  for (const r of rows) if (r.status === 'duplicated') lines.push(`  # ${q(r.name)} is listed more than once by the upstream: it stays uncallable`);
  return `${lines.join('\n')}\n`;
}
