import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFetchJson, isBlockedAddress, isJsonContentType, OutboundFetchError, OutboundRefusedError, type HostResolver } from './outbound.ts';
import { OutboundConfigSchema } from './identity-config.ts';
import type { OutboundPolicy } from './types.ts';

const SECRET_BODY_MARKER = 'body-secret-7f3a';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ server: Server; origin: string; hits: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = createServer((req, res) => {
    count += 1;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    hits: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const loopbackPolicy: OutboundPolicy = { timeoutMs: 5000, maxBytes: 1024, allowPrivateNetworks: true, allowHosts: [], allowHttp: true };

function json(res: ServerResponse, body: unknown, type = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function refusal(promise: Promise<unknown>): Promise<OutboundFetchError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OutboundFetchError, `expected OutboundFetchError, got ${String(error)}`);
    assert.ok(!error.description.includes(SECRET_BODY_MARKER), 'description must not echo the body');
    assert.ok(!(error.detail ?? '').includes(SECRET_BODY_MARKER), 'detail must not echo the body');
    return error;
  }
  assert.fail('expected the fetch to be refused');
}

test('config schema: defaults', () => {
  assert.deepEqual(OutboundConfigSchema.parse(undefined), {
    timeoutMs: 5000,
    maxBytes: 1024 * 1024,
    allowPrivateNetworks: false,
    allowHosts: [],
    allowHttp: false,
  });
  assert.equal(OutboundConfigSchema.safeParse({ timeoutMs: 'soon' }).success, false);
  assert.equal(OutboundConfigSchema.safeParse({ surprise: true }).success, false);
});

test('isBlockedAddress: special-use ranges, IPv6 forms of them, and public addresses', () => {
  const blocked = [
    '0.0.0.0',
    '10.1.2.3',
    '100.64.0.1',
    '100.127.255.254',
    '127.0.0.1',
    '127.255.255.255',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '[::1]',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::a00:1',
    '64:ff9b::127.0.0.1',
    '::127.0.0.1',
    'not-an-ip',
  ];
  for (const address of blocked) assert.equal(isBlockedAddress(address), true, address);
  const allowed = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'];
  for (const address of allowed) assert.equal(isBlockedAddress(address), false, address);
});

test('isJsonContentType: application/json and application/*+json only', () => {
  for (const t of ['application/json', 'application/json; charset=utf-8', 'application/jwk-set+json', 'APPLICATION/JSON']) {
    assert.equal(isJsonContentType(t), true, t);
  }
  for (const t of [undefined, '', 'text/html', 'text/json', 'application/jsonx', 'application/octet-stream', 'application/+json']) {
    assert.equal(isJsonContentType(t), false, String(t));
  }
});

test('fetches a JSON document from an allowed loopback peer, with headers', async (t) => {
  const peer = await serve((req, res) => {
    assert.equal(req.headers.accept, 'application/jwk-set+json');
    res.setHeader('cache-control', 'max-age=60');
    json(res, { keys: [] }, 'application/jwk-set+json');
  });
  t.after(peer.close);
  const fetchJson = createFetchJson(loopbackPolicy);
  const { json: body, headers } = await fetchJson(`${peer.origin}/jwks`, { accept: 'application/jwk-set+json' });
  assert.deepEqual(body, { keys: [] });
  assert.equal(headers.get('cache-control'), 'max-age=60');
});

test('refuses non-http(s) schemes, URLs with credentials, and plain http unless allowed', async (t) => {
  const peer = await serve((_req, res) => json(res, {}));
  t.after(peer.close);
  const strict = createFetchJson({ ...loopbackPolicy, allowHttp: false });
  const e1 = await refusal(strict(`${peer.origin}/`));
  assert.ok(e1 instanceof OutboundRefusedError);
  assert.equal(e1.code, 'ERR_OUTBOUND_REFUSED');
  assert.equal(e1.reason, 'scheme');
  const open = createFetchJson(loopbackPolicy);
  assert.equal((await refusal(open('file:///etc/passwd'))).reason, 'scheme');
  assert.equal((await refusal(open('ftp://127.0.0.1/x'))).reason, 'scheme');
  assert.equal((await refusal(open(peer.origin.replace('http://', 'http://user:pw@')))).reason, 'bad_url');
  assert.equal((await refusal(open('not a url'))).reason, 'bad_url');
  assert.equal(peer.hits(), 0);
});

test('refuses loopback and private targets unless allowPrivateNetworks, without connecting', async (t) => {
  const peer = await serve((_req, res) => json(res, {}));
  t.after(peer.close);
  const guarded = createFetchJson({ ...loopbackPolicy, allowPrivateNetworks: false });
  const e = await refusal(guarded(`${peer.origin}/`));
  assert.equal(e.reason, 'private_address');
  assert.equal(e.status, 502);
  const port = new URL(peer.origin).port;
  assert.equal((await refusal(guarded(`http://[::1]:${port}/`))).reason, 'private_address');
  assert.equal((await refusal(guarded(`http://[::ffff:127.0.0.1]:${port}/`))).reason, 'private_address');
  assert.equal((await refusal(guarded(`http://169.254.169.254/latest/meta-data`))).reason, 'private_address');
  // A name is resolved and refused when ANY of its addresses is private, even if another one is public.
  const resolve: HostResolver = async () => [
    { address: '93.184.215.14', family: 4 },
    { address: '10.0.0.7', family: 4 },
  ];
  const named = createFetchJson({ ...loopbackPolicy, allowPrivateNetworks: false }, { resolve });
  assert.equal((await refusal(named('http://mixed.example.test/x'))).reason, 'private_address');
  assert.equal(peer.hits(), 0);
});

test('an allowed host name connects to the address that was checked (pinned lookup, no second resolution)', async (t) => {
  const peer = await serve((req, res) => json(res, { host: req.headers.host }));
  t.after(peer.close);
  const port = new URL(peer.origin).port;
  const answers: string[][] = [];
  // The first answer is the checked one; a rebinding second answer would point elsewhere, but is never asked for.
  let calls = 0;
  const resolve: HostResolver = async (hostname) => {
    calls += 1;
    answers.push([hostname]);
    return calls === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }];
  };
  const fetchJson = createFetchJson({ ...loopbackPolicy, allowPrivateNetworks: false, allowHosts: ['IdP.Internal.Test'] }, { resolve });
  const { json: body } = await fetchJson(`http://idp.internal.test:${port}/doc`);
  assert.deepEqual(body, { host: `idp.internal.test:${port}` });
  assert.equal(calls, 1);
  // Not in allowHosts: refused.
  const other = createFetchJson({ ...loopbackPolicy, allowPrivateNetworks: false, allowHosts: ['idp.internal.test'] }, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
  assert.equal((await refusal(other(`http://other.internal.test:${port}/doc`))).reason, 'private_address');
});

test('enforces the size limit while streaming, before the body ends', async (t) => {
  // Sends more than maxBytes and then never finishes: only a streaming check can refuse this.
  const peer = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(`{"pad":"${SECRET_BODY_MARKER}${'x'.repeat(4096)}`);
  });
  t.after(peer.close);
  const fetchJson = createFetchJson({ ...loopbackPolicy, timeoutMs: 60_000 });
  const e = await refusal(fetchJson(`${peer.origin}/big`));
  assert.equal(e.reason, 'too_large');
  assert.equal(e.code, 'ERR_OUTBOUND_REFUSED');
});

test('refuses a declared Content-Length over the limit', async (t) => {
  const peer = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 5000 });
    res.end(`"${'y'.repeat(4998)}"`);
  });
  t.after(peer.close);
  assert.equal((await refusal(createFetchJson(loopbackPolicy)(`${peer.origin}/`))).reason, 'too_large');
});

test('times out a peer that never answers (whole-request deadline)', async (t) => {
  const peer = await serve(() => {
    // never answers
  });
  t.after(peer.close);
  const e = await refusal(createFetchJson({ ...loopbackPolicy, timeoutMs: 200 })(`${peer.origin}/slow`));
  assert.equal(e.reason, 'timeout');
  assert.equal(e.code, 'ERR_OUTBOUND_FAILED');
  assert.equal(e.status, 504);
});

test('times out a body that trickles in', async (t) => {
  const peer = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"a":');
  });
  t.after(peer.close);
  assert.equal((await refusal(createFetchJson({ ...loopbackPolicy, timeoutMs: 200 })(`${peer.origin}/`))).reason, 'timeout');
});

test('refuses non-JSON content types, bad JSON and error statuses without echoing the body', async (t) => {
  const peer = await serve((req, res) => {
    if (req.url === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<p>${SECRET_BODY_MARKER}</p>`);
    } else if (req.url === '/bad-json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"${SECRET_BODY_MARKER}": `);
    } else if (req.url === '/latin1') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(Buffer.from([0x22, 0xff, 0x22]));
    } else if (req.url === '/gzip') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end('{}');
    } else {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: SECRET_BODY_MARKER }));
    }
  });
  t.after(peer.close);
  const fetchJson = createFetchJson(loopbackPolicy);
  assert.equal((await refusal(fetchJson(`${peer.origin}/html`))).reason, 'content_type');
  assert.equal((await refusal(fetchJson(`${peer.origin}/bad-json`))).reason, 'json');
  assert.equal((await refusal(fetchJson(`${peer.origin}/latin1`))).reason, 'json');
  assert.equal((await refusal(fetchJson(`${peer.origin}/gzip`))).reason, 'encoding');
  const e = await refusal(fetchJson(`${peer.origin}/error`));
  assert.equal(e.reason, 'status');
  assert.match(e.description, /HTTP 500/);
});

test('follows a bounded number of redirects and re-checks each target', async (t) => {
  const peer = await serve((req, res) => {
    if (req.url === '/hop') {
      res.writeHead(302, { location: '/final' });
      res.end();
    } else if (req.url === '/loop') {
      res.writeHead(307, { location: '/loop' });
      res.end();
    } else if (req.url === '/to-metadata') {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' });
      res.end();
    } else if (req.url?.startsWith('/to-loopback')) {
      res.writeHead(301, { location: `http://127.0.0.1:${(peer.server.address() as AddressInfo).port}/final` });
      res.end();
    } else {
      json(res, { final: true });
    }
  });
  t.after(peer.close);
  const open = createFetchJson(loopbackPolicy);
  assert.deepEqual((await open(`${peer.origin}/hop`)).json, { final: true });
  assert.equal((await refusal(open(`${peer.origin}/loop`))).reason, 'redirect');
  assert.equal((await refusal(createFetchJson(loopbackPolicy, { maxRedirects: 0 })(`${peer.origin}/hop`))).reason, 'redirect');

  // The first host is explicitly allowed; the redirect's target is not, so it is refused.
  const port = new URL(peer.origin).port;
  const guarded = createFetchJson(
    { ...loopbackPolicy, allowPrivateNetworks: false, allowHosts: ['idp.internal.test'] },
    { resolve: async () => [{ address: '127.0.0.1', family: 4 }] },
  );
  assert.equal((await refusal(guarded(`http://idp.internal.test:${port}/to-metadata`))).reason, 'private_address');
  assert.equal((await refusal(guarded(`http://idp.internal.test:${port}/to-loopback`))).reason, 'private_address');
  // A redirect away from allowed http is refused when http is not allowed at all.
  const noHttp = createFetchJson({ ...loopbackPolicy, allowHttp: false });
  assert.equal((await refusal(noHttp(`${peer.origin}/hop`))).reason, 'scheme');
});

test('an unreachable peer is a network failure', async (t) => {
  const peer = await serve((_req, res) => json(res, {}));
  const origin = peer.origin;
  await peer.close();
  t.after(() => undefined);
  const e = await refusal(createFetchJson(loopbackPolicy)(`${origin}/`));
  assert.equal(e.reason, 'network');
  assert.equal(e.code, 'ERR_OUTBOUND_FAILED');
});
