/**
 * DEMO ONLY — the resources (RFC 8707) the demo issues mandates for, and what their scopes mean in the example
 * policies' terms (examples/policies: its schema, entities and permits). Chosen so that the intersection shows:
 *
 * | scope         | stands for                                        | alice / bob | helpdesk-assistant (chat) |
 * | ------------- | ------------------------------------------------- | ----------- | ------------------------- |
 * | `crm.search`  | call `Tool::"crm.search"` (a read tool)           | allowed     | allowed                   |
 * | `crm.read`    | read `Dataset::"crm"` (confidential)              | allowed     | denied: chat reads ≤ internal |
 * | `crm.write`   | call `crm.update` + write `Dataset::"crm"`        | allowed     | denied: chat never acts   |
 * | `wiki.search` | call `Tool::"wiki.search"`                        | allowed     | allowed                   |
 * | `wiki.read`   | read `Dataset::"wiki"` (internal)                 | allowed     | allowed                   |
 *
 * The autonomous `sales-outreach` agent is granted nothing outside an open task of its workflow
 * (autonomous.cedar), so its exchanges are refused until tasks reach the token service.
 */
import type { ResourceConfig } from '../tokens/resources.ts';

/** The demo CRM's MCP server (an identifier only: nothing listens there). */
export const DEMO_CRM_RESOURCE = 'https://crm.acme.example/mcp';
/** The demo wiki's MCP server (an identifier only). */
export const DEMO_WIKI_RESOURCE = 'https://wiki.acme.example/mcp';

/** The `resources` section of the demo configuration. */
export const DEMO_RESOURCES: readonly ResourceConfig[] = [
  {
    uri: DEMO_CRM_RESOURCE,
    name: 'Acme CRM (MCP server, demo)',
    scopes: {
      'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
      'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
      'crm.write': [
        { action: 'call', resource: { type: 'Tool', id: 'crm.update' } },
        { action: 'write', resource: { type: 'Dataset', id: 'crm' } },
      ],
    },
  },
  {
    uri: DEMO_WIKI_RESOURCE,
    name: 'Acme wiki (MCP server, demo)',
    scopes: {
      'wiki.search': [{ action: 'call', resource: { type: 'Tool', id: 'wiki.search' } }],
      'wiki.read': [{ action: 'read', resource: { type: 'Dataset', id: 'wiki' } }],
    },
  },
];
