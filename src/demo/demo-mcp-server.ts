/**
 * DEMO ONLY — Acme's tool server for `mandate demo`: a stock MCP server (`@modelcontextprotocol/sdk`,
 * Streamable HTTP, stateless) on 127.0.0.1 with in-memory data, fronted by Mandate's gateway at `/mcp/crm`.
 *
 * | tool              | does                                          | in the example policies                 |
 * | ----------------- | --------------------------------------------- | --------------------------------------- |
 * | `crm.search`      | finds CRM records (each labelled `sensitivity`) | `call Tool::"crm.search"`             |
 * | `crm.get_record`  | one CRM record by id                          | `read Dataset::"crm"`                   |
 * | `email.send`      | "sends" an e-mail (kept in memory)            | `send Tool::"email.send"`               |
 * | `payments.refund` | "refunds" a ticket                            | `trigger Tool::"payments.refund"`       |
 * | `tickets.create`  | opens a support ticket                        | not configured at the gateway: unreachable |
 *
 * Like a real upstream it trusts no caller token but one Mandate minted for it: every request must carry
 * `Authorization: Bearer <jwt>` signed by a key in Mandate's JWKS, with `iss` = Mandate, `aud` = this server's
 * configured audience and `typ` = `at+jwt` (RFC 9068). An agent's own mandate (its `aud` is the gateway's
 * resource) is refused here, so the demo shows that the gateway never passes the caller's token through.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

/** The audience the gateway's tokens for this server carry (an identifier, not where it listens). */
export const DEMO_MCP_AUDIENCE = 'https://tools.acme.example/mcp';

/** The `_meta` key of a tool result saying which token reached this server (claims only, never the token). */
export const DEMO_CALLER_META_KEY = 'io.mandate.demo/upstream_token';

/** A CRM record of the demo. `sensitivity` is what the gateway's result filter reads. */
export interface DemoCrmRecord {
  readonly id: string;
  readonly kind: 'lead' | 'account' | 'note';
  readonly company: string;
  readonly title: string;
  readonly sensitivity: 'public' | 'internal' | 'confidential' | 'restricted';
}

/** The CRM's records: the lead-followup workflow may read up to confidential; the legal note is restricted. */
export const DEMO_CRM_RECORDS: readonly DemoCrmRecord[] = [
  { id: 'crm-lead-4711', kind: 'lead', company: 'ACME Rockets', title: 'Lead: 40 rocket skates, contact jane@globex.example', sensitivity: 'confidential' },
  { id: 'crm-account-17', kind: 'account', company: 'ACME Rockets', title: 'Account: ACME Rockets, customer since 2019', sensitivity: 'internal' },
  { id: 'crm-note-9001', kind: 'note', company: 'ACME Rockets', title: 'Legal hold: dispute over the 2024 invoice', sensitivity: 'restricted' },
  { id: 'crm-lead-4712', kind: 'lead', company: 'Globex', title: 'Lead: Globex renewal', sensitivity: 'confidential' },
];

/** What reached the server: one entry per tool that ran, with the claims of the token it came with. */
export interface DemoToolRun {
  readonly tool: string;
  readonly args: Record<string, unknown>;
  readonly token: { iss: string; aud: string; sub: string; act: unknown; client_id: unknown };
}

/** Options of {@link startDemoMcpServer}. */
export interface DemoMcpServerOptions {
  /** The audience this server accepts (default {@link DEMO_MCP_AUDIENCE}). */
  readonly audience?: string;
  /** Port on 127.0.0.1 (default 0). */
  readonly port?: number;
}

/** A running demo MCP server. */
export interface DemoMcpServer {
  /** Its Streamable HTTP endpoint (`http://127.0.0.1:<port>/mcp`). */
  readonly url: string;
  readonly audience: string;
  /** Trusts tokens of this issuer from now on (Mandate listens only after this server does). */
  trustIssuer(issuer: string): void;
  /** Every tool run, in order. */
  readonly runs: readonly DemoToolRun[];
  /** Requests refused for their token. */
  refusedRequests(): number;
  close(): Promise<void>;
}

type Verifier = (token: string) => Promise<JWTPayload>;

async function issuerVerifier(issuer: string, audience: string): Promise<Verifier> {
  // RFC 8414 metadata names the JWKS; a fixed path would tie the demo to Mandate's route table.
  const response = await fetch(`${issuer}/.well-known/oauth-authorization-server`, { headers: { accept: 'application/json' } });
  if (response.status !== 200) throw new Error(`no authorization server metadata at ${issuer} (status ${response.status})`);
  const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (metadata.issuer !== issuer || typeof metadata.jwks_uri !== 'string') throw new Error(`the metadata at ${issuer} does not describe that issuer`);
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  return async (token) => (await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt', clockTolerance: 5 })).payload;
}

function challenge(res: ServerResponse, description: string): void {
  res.writeHead(401, { 'www-authenticate': `Bearer error="invalid_token", error_description="${description}"`, 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'invalid_token', error_description: description }));
}

const text = (value: unknown) => [{ type: 'text' as const, text: JSON.stringify(value) }];

/**
 * Starts the demo's MCP server on 127.0.0.1. Tokens are refused (503) until {@link DemoMcpServer.trustIssuer}
 * names Mandate.
 */
export async function startDemoMcpServer(options: DemoMcpServerOptions = {}): Promise<DemoMcpServer> {
  const audience = options.audience ?? DEMO_MCP_AUDIENCE;
  const runs: DemoToolRun[] = [];
  let refused = 0;
  let verifier: Promise<Verifier> | undefined;
  let issuer: string | undefined;
  let nextMessage = 1;

  const build = (token: DemoToolRun['token']): McpServer => {
    const server = new McpServer({ name: 'acme-tools-demo', version: '1.0.0' });
    const ran = (tool: string, args: Record<string, unknown>) => {
      runs.push({ tool, args, token });
      return { [DEMO_CALLER_META_KEY]: { iss: token.iss, aud: token.aud, sub: token.sub, act: token.act, client_id: token.client_id } };
    };
    server.registerTool(
      'crm.search',
      { description: 'Search CRM records by company or text', inputSchema: { query: z.string().min(1).max(200), limit: z.number().int().min(1).max(50).optional() } },
      async ({ query, limit }) => {
        const q = query.toLowerCase();
        const records = DEMO_CRM_RECORDS.filter((r) => r.company.toLowerCase().includes(q) || r.title.toLowerCase().includes(q)).slice(0, limit ?? 50);
        const result = { records };
        return { content: text(result), structuredContent: result, _meta: ran('crm.search', { query, ...(limit === undefined ? {} : { limit }) }) };
      },
    );
    server.registerTool('crm.get_record', { description: 'Read one CRM record by id', inputSchema: { recordId: z.string().min(1).max(100) } }, async ({ recordId }) => {
      const meta = ran('crm.get_record', { recordId });
      const record = DEMO_CRM_RECORDS.find((r) => r.id === recordId);
      if (record === undefined) return { content: [{ type: 'text' as const, text: `no record ${recordId}` }], isError: true, _meta: meta };
      return { content: text(record), structuredContent: { ...record }, _meta: meta };
    });
    server.registerTool(
      'email.send',
      {
        description: 'Send an e-mail',
        inputSchema: { recipient: z.string().max(320), recipientDomain: z.string().max(253), subject: z.string().max(200), body: z.string().max(20000) },
      },
      async (args) => {
        const meta = ran('email.send', { ...args });
        const sent = { messageId: `msg-${nextMessage++}`, to: args.recipient, status: 'sent' };
        return { content: text(sent), structuredContent: sent, _meta: meta };
      },
    );
    server.registerTool('tickets.create', { description: 'Open a support ticket', inputSchema: { title: z.string().max(200), body: z.string().max(20000) } }, async (args) => {
      const meta = ran('tickets.create', { ...args });
      return { content: text({ ticketId: 'T-1001', status: 'open' }), _meta: meta };
    });
    server.registerTool(
      'payments.refund',
      { description: 'Refund a customer for a ticket', inputSchema: { ticketId: z.string().max(20), amount: z.number().int().min(1), currency: z.enum(['EUR', 'USD']) } },
      async (args) => {
        const meta = ran('payments.refund', { ...args });
        return { content: text({ refunded: args.amount, currency: args.currency }), _meta: meta };
      },
    );
    return server;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const authorization = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(authorization);
    if (match === null) {
      refused++;
      return challenge(res, 'a Bearer token minted by Mandate is required');
    }
    if (issuer === undefined) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
      return;
    }
    let verify: Verifier;
    try {
      verify = await (verifier ??= issuerVerifier(issuer, audience));
    } catch {
      verifier = undefined; // Mandate not reachable yet: tried again at the next request
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
      return;
    }
    let claims: JWTPayload;
    try {
      claims = await verify(match[1] as string);
    } catch {
      refused++;
      // Which check failed stays here: the caller only learns the token is not one for this server.
      return challenge(res, `not a token Mandate minted for ${audience}`);
    }
    const token = { iss: issuer, aud: audience, sub: String(claims.sub), act: claims.act, client_id: claims.client_id };
    const body: unknown = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const server = build(token);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    res.on('close', () => void server.close());
    await transport.handleRequest(req, res, body);
  };

  const http = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"server_error"}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  return {
    url,
    audience,
    trustIssuer(value: string) {
      issuer = value.replace(/\/+$/, '');
      verifier = undefined;
    },
    runs,
    refusedRequests: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}
