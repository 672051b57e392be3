/**
 * The upstream MCP server of the gateway benchmark: the MCP SDK's `McpServer` behind its Streamable HTTP server
 * transport, stateless (a server and transport per request, as the SDK's stateless example does) with JSON
 * responses. Its one tool, `search`, does a fixed small amount of work: it looks the query up in an in-memory
 * table of 1,000 CRM records (a `Map`) and returns the record it finds, labelled with its sensitivity so that the
 * gateway's result check has a record to hold to the task's ceiling. Prints `LISTENING <port>` when ready.
 */
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

interface LeadRecord {
  id: string;
  name: string;
  owner: string;
  status: string;
  sensitivity: string;
}

const records = new Map<string, LeadRecord>();
for (let i = 0; i < 1_000; i++) {
  const id = `crm-lead-${i}`;
  records.set(id, { id, name: `Account ${i}`, owner: 'alice', status: i % 3 === 0 ? 'qualified' : 'contacted', sensitivity: 'internal' });
}

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'crm-bench', version: '1.0.0' });
  server.registerTool('search', { description: 'Look a lead up in the CRM by id', inputSchema: { query: z.string(), limit: z.number().int().optional() } }, async ({ query }) => {
    const found = records.get(query);
    const structured = { records: found === undefined ? [] : [found] };
    return { content: [{ type: 'text' as const, text: JSON.stringify(structured) }], structuredContent: structured };
  });
  return server;
}

const http = createServer((req, res) => {
  void (async () => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body: unknown = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const server = mcpServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  })().catch(() => {
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
http.keepAliveTimeout = 60_000;
http.listen(0, '127.0.0.1', () => {
  const addr = http.address();
  console.log(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}`);
});
process.on('SIGTERM', () => http.close(() => process.exit(0)));
