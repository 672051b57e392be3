/**
 * DEMO ONLY — a stand-in for the demo's CRM MCP server (`https://crm.acme.example/mcp`, where nothing listens):
 * an MCP server on 127.0.0.1 with one tool, `crm.search`, behind an HTTP layer that checks each request as a
 * resource server must — the mandate verified against Mandate's JWKS (RFC 9068: `typ` `at+jwt`, `iss`, `aud` =
 * this resource, `exp`) and, for a DPoP-bound mandate, its proof (RFC 9449 §7: `htm`, `htu`, `ath`, the key =
 * `cnf.jkt`). A real server would also introspect (RFC 7662) to see revocations at once.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { base64url, calculateJwkThumbprint, createRemoteJWKSet, decodeProtectedHeader, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import { z } from 'zod';

/** Checks the request's mandate; resolves the user it acts for, or a `WWW-Authenticate` challenge. */
async function check(req: IncomingMessage, opts: { issuer: string; resource: string; selfUrl: string; jwks: ReturnType<typeof createRemoteJWKSet> }): Promise<{ sub: string } | { challenge: string }> {
  const m = /^(DPoP|Bearer) (\S+)$/.exec(req.headers.authorization ?? '');
  if (m === null) return { challenge: 'DPoP error="invalid_request"' };
  const [, scheme, token] = m as unknown as [string, string, string];
  try {
    const { payload } = await jwtVerify(token, opts.jwks, { issuer: opts.issuer, audience: opts.resource, typ: 'at+jwt' });
    const jkt = (payload.cnf as { jkt?: string } | undefined)?.jkt;
    if (jkt !== undefined) {
      if (scheme !== 'DPoP' || typeof req.headers.dpop !== 'string') return { challenge: 'DPoP error="invalid_token", error_description="DPoP-bound: send the proof"' };
      const { payload: proof } = await jwtVerify(req.headers.dpop, EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: '60s' });
      const ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
      const url = new URL(req.url ?? '/', opts.selfUrl);
      const key = decodeProtectedHeader(req.headers.dpop).jwk as JWK;
      if (proof.htm !== req.method || proof.htu !== `${url.origin}${url.pathname}` || proof.ath !== ath || (await calculateJwkThumbprint(key)) !== jkt) return { challenge: 'DPoP error="invalid_dpop_proof"' };
    }
    return { sub: String(payload.sub) };
  } catch {
    return { challenge: `${scheme} error="invalid_token"` };
  }
}

/** Starts the stand-in CRM on 127.0.0.1; resolves its MCP endpoint URL and a `close()`. */
export async function startDemoCrm(issuer: string, resource: string): Promise<{ url: string; close(): Promise<void> }> {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/oauth/jwks`));
  let selfUrl = '';
  const http = createServer((req, res) => {
    void (async () => {
      const who = await check(req, { issuer, resource, selfUrl, jwks });
      if ('challenge' in who) return void res.writeHead(401, { 'www-authenticate': who.challenge }).end();
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const server = new McpServer({ name: 'acme-crm-demo', version: '1.0.0' });
      server.registerTool('crm.search', { description: 'Find leads', inputSchema: { query: z.string() } }, async ({ query }) => ({
        content: [{ type: 'text', text: `crm-lead-1001 ${query} (searched for ${who.sub})` }],
      }));
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      res.on('close', () => void server.close());
      await transport.handleRequest(req, res, JSON.parse(Buffer.concat(chunks).toString('utf8')));
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  selfUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url: `${selfUrl}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}
