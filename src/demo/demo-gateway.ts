/**
 * DEMO ONLY — the gateway section of the demo: Mandate fronts the demo MCP server (demo-mcp-server.ts) at
 * `/mcp/crm`. Agents get mandates whose `aud` is that gateway URL (the gateway checks DPoP proofs' `htu`
 * against it, so it is where Mandate really listens); the gateway calls the server with a token it mints for
 * {@link DEMO_MCP_AUDIENCE}.
 *
 * Each tool means what examples/policies says it means (entities.yaml's `Tool` ids and workflows' tool lists):
 * the lead-followup workflow lists `crm.search`, `crm.update` and `email.send` and reads data up to
 * confidential, so `payments.refund` is out of its plan and a restricted record never reaches its agent.
 * `tickets.create` has no entry: the gateway neither lists nor forwards it.
 */
import { GatewayUpstreamSchema, type GatewayUpstream } from '../gateway/gateway-config.ts';
import { DEMO_MCP_AUDIENCE } from './demo-mcp-server.ts';
import type { ResourceConfig } from '../tokens/resources.ts';
import { DEMO_RESOURCES, DEMO_CRM_RESOURCE } from './demo-resources.ts';

/** The gateway's id of the demo MCP server: it is served at `/mcp/crm`. */
export const DEMO_UPSTREAM_ID = 'crm';

/** The gateway path of the demo MCP server, under Mandate's URL. */
export const DEMO_GATEWAY_PATH = `/mcp/${DEMO_UPSTREAM_ID}`;

/** The catalog: the server's tool names → Cedar action and resource. */
export const DEMO_GATEWAY_TOOLS: GatewayUpstream['tools'] = {
  'crm.search': { action: 'call', resource: { type: 'Tool', id: 'crm.search' } },
  // Reading one record is reading the CRM dataset; the record's own label is checked on the way back.
  'crm.get_record': { action: 'read', resource: { type: 'Dataset', id: 'crm' } },
  'email.send': { action: 'send', resource: { type: 'Tool', id: 'email.send' } },
  'payments.refund': { action: 'trigger', resource: { type: 'Tool', id: 'payments.refund' } },
};

/** The gateway resource of a demo whose Mandate listens at `mandateUrl` (`http://127.0.0.1:<port>`). */
export function demoGatewayResource(mandateUrl: string): string {
  return `${mandateUrl.replace(/\/+$/, '')}${DEMO_GATEWAY_PATH}`;
}

/** The `resources` entry of the gateway resource: the CRM's scopes (the gateway decides each call anyway). */
export function demoGatewayResourceConfig(resource: string): ResourceConfig {
  const crm = DEMO_RESOURCES.find((r) => r.uri === DEMO_CRM_RESOURCE) as ResourceConfig;
  return { uri: resource, name: "Acme's tools through Mandate's MCP gateway (demo)", scopes: { ...crm.scopes } };
}

/** The demo's upstream: the MCP server listening at `url`, fronted for mandates for `resource`. */
export function demoGatewayUpstream(url: string, resource: string): GatewayUpstream {
  // Parsed, so that the section's defaults apply as they would to a mandate.yaml.
  return GatewayUpstreamSchema.parse({
    id: DEMO_UPSTREAM_ID,
    url,
    resource,
    credential: { type: 'token_exchange', audience: DEMO_MCP_AUDIENCE },
    tools: DEMO_GATEWAY_TOOLS,
  });
}
