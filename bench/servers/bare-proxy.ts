/**
 * The baseline proxy of the gateway benchmark: a bare pass-through on node:http with no checks at all. It
 * forwards each request's method, path, headers and body to the upstream named in `MANDATE_BENCH_UPSTREAM_URL`
 * over kept-alive connections, and streams the answer back with its status and headers. Hop-by-hop headers
 * (RFC 9110 §7.6.1) are not forwarded. Prints `LISTENING <port>` when ready.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { UPSTREAM_URL_ENV } from '../gateway-fixtures.ts';

const upstream = new URL(process.env[UPSTREAM_URL_ENV] ?? '');
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

const server = createServer((req, res) => {
  const up = httpRequest(
    { agent, host: upstream.hostname, port: upstream.port, method: req.method, path: upstream.pathname, headers: forwardable(req.headers) },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardable(answer.headers));
      answer.pipe(res);
    },
  );
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
