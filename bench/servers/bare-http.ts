/**
 * Baseline for the HTTP benchmark: a bare node:http server that reads the body and answers a fixed
 * AuthZEN-shaped JSON. Prints `LISTENING <port>` when ready.
 */
import { createServer } from 'node:http';

const body = JSON.stringify({ decision: true });
const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
