/**
 * `mandate token inspect` in-process: realistic at+jwt mandates signed by the store's active key (the key
 * manager's signer and jose SignJWT) are accepted; tampered, expired, foreign-key and revoked ones are refused
 * with the reason. Keys from the store, or from a running node on loopback (--issuer metadata, --jwks-url).
 * The token is never printed back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { createAuditEvent } from '../../src/audit/audit-event.ts';
import { systemClock } from '../../src/core/ports.ts';
import type { IssuedTokenRecord, TaskRecord } from '../../src/store/store.ts';
import { kekFromBase64url } from '../../src/tokens/key-encryption.ts';
import { createKeyManager, type Signer } from '../../src/tokens/signing-keys.ts';
import { createCliFixture, ISSUER, lines, type CliFixture } from './store-cli-fixtures.ts';

interface TokenFixture {
  fx: CliFixture;
  signer: Signer;
  jwks: JSONWebKeySet;
  mint(claims?: Record<string, unknown>, options?: { key?: CryptoKey; kid?: string }): Promise<string>;
}

async function withTokens(fn: (t: TokenFixture) => Promise<void>): Promise<void> {
  const fx = await createCliFixture();
  try {
    const store = await fx.openStore();
    let signer: Signer;
    let jwks: JSONWebKeySet;
    try {
      const keys = createKeyManager({ store: store.signingKeys, kek: await kekFromBase64url(fx.kek, 'test'), clock: systemClock, overlapMs: 905_000 });
      await keys.ensureActiveKey();
      signer = await keys.signer();
      jwks = await keys.jwks();
    } finally {
      await store.close();
    }
    let n = 0;
    const mint: TokenFixture['mint'] = async (claims = {}, options = {}) => {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: ISSUER,
        sub: 'alice@example.com',
        aud: 'https://crm.example/mcp',
        client_id: 'triage-bot',
        act: { sub: 'triage-bot' },
        scope: 'crm.read',
        jti: `m-${++n}`,
        iat: now - 10,
        exp: now + 290,
        cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
        on_behalf_of: 'user',
        ...claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: signer.alg, kid: options.kid ?? signer.kid, typ: 'at+jwt' }).sign(options.key ?? signer.key);
    };
    await fn({ fx, signer, jwks, mint });
  } finally {
    await fx.cleanup();
  }
}

function assertTokenNotPrinted(token: string, ...outputs: string[]): void {
  const [, payload, signature] = token.split('.');
  for (const out of outputs) {
    assert.ok(!out.includes(token), 'the token was printed');
    assert.ok(!out.includes(signature as string), 'the signature was printed');
    assert.ok(!out.includes(payload as string), 'the payload segment was printed');
  }
}

test('token inspect: a mandate signed by the store active key is accepted (argument or stdin); --json; exit 0', async () => {
  await withTokens(async ({ fx, signer, mint }) => {
    const token = await mint();
    const r = await fx.run(['token', 'inspect', token], { env: {} });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = lines(r.stdout);
    assert.equal(out[0], 'verdict: ACCEPTED');
    assert.equal(out[1], `  accepted: a valid mandate from "${ISSUER}" for "https://crm.example/mcp"`);
    assert.match(out[2] ?? '', /^signature: valid \(verified with a published Mandate key; the signature is not shown\)$/);
    assert.ok(out.some((l) => /^ {2}ok +kid +"/.test(l) && l.includes(signer.kid)));
    // Not recorded by a token service: said, not refused.
    assert.ok(out.some((l) => /^ {2}info +record +no record of this jti in the store/.test(l)), r.stdout);
    assert.match(out[out.length - 1] ?? '', /^keys: 1 published key from store .*mandate\.db; issuer https:\/\/mandate\.test \(from tokens\.issuer\)$/);
    assertTokenNotPrinted(token, r.stdout, r.stderr);

    const stdin = await fx.run(['token', 'inspect', '-', '--json'], { stdin: `Bearer ${token}\n`, env: {} });
    assert.equal(stdin.code, 0, stdin.stderr);
    const json = JSON.parse(stdin.stdout) as { verdict: string; reasons: string[]; signature: { status: string }; keys: { from: string; issuer: string } };
    assert.deepEqual([json.verdict, json.reasons, json.signature.status, json.keys.issuer], ['accepted', [], 'valid', ISSUER]);
    assertTokenNotPrinted(token, stdin.stdout);

    const wrongAudience = await fx.run(['token', 'inspect', token, '--audience', 'https://wiki.example/mcp'], { env: {} });
    assert.equal(wrongAudience.code, 1);
    assert.match(wrongAudience.stdout, /^ {2}REFUSED +aud +"https:\/\/crm\.example\/mcp"$/m);
  });
});

test('token inspect: tampered, expired, foreign-key and revoked mandates are refused with the reason (exit 1)', async () => {
  await withTokens(async ({ fx, mint, signer }) => {
    const good = await mint({ jti: 'to-tamper' });
    const [h, p, s] = good.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'crm.read crm.admin' })).toString('base64url')}.${s}`;
    const t = await fx.run(['token', 'inspect', tampered], { env: {} });
    assert.equal(t.code, 1);
    assert.equal(lines(t.stdout)[0], 'verdict: REFUSED');
    assert.match(t.stdout, /^ {2}refused: signature: does not verify with the named Mandate key: the token was forged or altered$/m);
    assert.match(t.stdout, /^warning: the signature did not verify, so nothing below is proven/m);
    assertTokenNotPrinted(tampered, t.stdout, t.stderr);

    const now = Math.floor(Date.now() / 1000);
    const expired = await mint({ iat: now - 600, exp: now - 300 });
    const e = await fx.run(['token', 'inspect', expired], { env: {} });
    assert.equal(e.code, 1);
    assert.match(e.stdout, /^ {2}refused: exp: expired \S+ \(\d+ s ago; tolerance 5 s\)$/m);

    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const foreign = await mint({}, { key: privateKey, kid: 'someone-else' });
    const f = await fx.run(['token', 'inspect', foreign], { env: {} });
    assert.equal(f.code, 1);
    assert.match(f.stdout, /^ {2}REFUSED +kid +"someone-else"\n.*↳ not in Mandate's JWKS: an unknown key, or one retired since$/m);
    // The same kid as the store's key, but another key: the signature says it.
    const impostor = await mint({}, { key: privateKey, kid: signer.kid });
    const i = await fx.run(['token', 'inspect', impostor, '--json'], { env: {} });
    assert.equal(i.code, 1);
    assert.equal((JSON.parse(i.stdout) as { signature: { status: string } }).signature.status, 'invalid');

    // Revoked: the store's record says so, and the verdict follows.
    const revoked = await mint({ jti: 'm-revoked' });
    const store = await fx.openStore();
    try {
      const at = Date.now();
      const record = { jti: 'm-revoked', clientId: 'triage-bot', subject: 'alice@example.com', actors: ['triage-bot'], audience: 'https://crm.example/mcp', scope: 'crm.read', issuedAt: at - 10_000, expiresAt: at + 290_000 };
      await store.tokens.record(record, createAuditEvent({ type: 'token.issue', outcome: 'success', actor: 'triage-bot', data: { jti: 'm-revoked' } }, { clock: systemClock }));
      await store.tokens.revoke('m-revoked', at, 'client request', createAuditEvent({ type: 'token.revoke', outcome: 'success', actor: 'triage-bot', data: { jti: 'm-revoked' } }, { clock: systemClock }));
    } finally {
      await store.close();
    }
    const r = await fx.run(['token', 'inspect', revoked], { env: {} });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^ {2}refused: revocation: revoked \(client request\): refused from then on, before it expires$/m);

    const malformed = await fx.run(['token', 'inspect', 'not.a-token'], { env: {} });
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /^mandate token inspect: ERR_INVALID_TOKEN: the token is not a mandate .*: it has 2 segments\n$/);
    const none = await fx.run(['token', 'inspect'], { env: {} });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /ERR_USAGE: give the token, or - to read it from standard input/);
    assert.equal((await fx.run(['token', 'inspect', '-'], { env: {}, stdin: '  \n' })).code, 2);
  });
});

test('token inspect with the store: walks the parentJti chain and checks the task, as the token service does', async () => {
  await withTokens(async ({ fx, mint }) => {
    const at = Date.now();
    const event = (type: 'token.issue' | 'token.revoke' | 'task.close', data: Record<string, unknown>) => createAuditEvent({ type, outcome: 'success', actor: 'triage-bot', data }, { clock: systemClock });
    const record = (jti: string, over: Partial<IssuedTokenRecord> = {}): IssuedTokenRecord => ({
      jti, clientId: 'triage-bot', subject: 'alice@example.com', actors: ['triage-bot'], audience: 'https://crm.example/mcp', scope: 'crm.read', issuedAt: at - 10_000, expiresAt: at + 290_000, ...over,
    });
    const task = (id: string, over: Partial<TaskRecord> = {}): TaskRecord => ({
      id, userIss: 'https://login.example.com', userSub: 'alice@example.com', agentId: 'triage-bot', workflowId: 'ticket-triage', workflowVersion: 'sha256:7a1e', purpose: 'triage the inbox',
      status: 'open', openedAt: at - 60_000, expiresAt: at + 3_600_000, idleTimeoutMs: 900_000, lastActivityAt: at - 5_000, stepsTaken: 2, recentSteps: [], ...over,
    });
    const child = { client_id: 'reader', act: { sub: 'reader', act: { sub: 'triage-bot' } } };
    const store = await fx.openStore();
    try {
      // triage-bot's mandate, re-exchanged by reader, re-exchanged again by summarizer.
      await store.tokens.record(record('m-root'), event('token.issue', { jti: 'm-root' }));
      await store.tokens.record(record('m-mid', { parentJti: 'm-root', clientId: 'reader', actors: ['reader', 'triage-bot'] }), event('token.issue', { jti: 'm-mid' }));
      await store.tokens.record(record('m-leaf', { parentJti: 'm-mid', clientId: 'summarizer', actors: ['summarizer', 'reader', 'triage-bot'] }), event('token.issue', { jti: 'm-leaf' }));
      // A task's first mandate and one re-delegated from it (it carries the task too); a task left idle too long.
      await store.tasks.open(task('task_open'), { hash: 'h-open', taskId: 'task_open', clientId: 'triage-bot', issuedAt: at, expiresAt: at + 3_600_000 }, record('m-task', { taskId: 'task_open' }), event('token.issue', { jti: 'm-task' }));
      await store.tokens.record(record('m-task-child', { taskId: 'task_open', parentJti: 'm-task', clientId: 'reader', actors: ['reader', 'triage-bot'] }), event('token.issue', { jti: 'm-task-child' }));
      await store.tasks.open(task('task_idle', { lastActivityAt: at - 1_200_000 }), { hash: 'h-idle', taskId: 'task_idle', clientId: 'triage-bot', issuedAt: at, expiresAt: at + 3_600_000 }, record('m-idle', { taskId: 'task_idle' }), event('token.issue', { jti: 'm-idle' }));
    } finally {
      await store.close();
    }
    const leaf = await mint({ jti: 'm-leaf', client_id: 'summarizer', act: { sub: 'summarizer', act: { sub: 'reader', act: { sub: 'triage-bot' } } } });
    const ok = await fx.run(['token', 'inspect', leaf], { env: {} });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^ {2}ok +chain +exchanged from 2 earlier mandates, none revoked$/m);

    const taskChild = await mint({ jti: 'm-task-child', task: 'task_open', ...child });
    const open = await fx.run(['token', 'inspect', taskChild], { env: {} });
    assert.equal(open.code, 0, open.stdout + open.stderr);
    assert.match(open.stdout, /^ {2}ok +task status +"open"\n.*↳ its task is open \(workflow ticket-triage, until \S+Z\)$/m);
    assert.match(open.stdout, /^ {2}ok +chain +exchanged from 1 earlier mandate, none revoked$/m);

    // Revoking the first mandate of the chain: the leaf's own record is clean, the server refuses it all the same.
    const s2 = await fx.openStore();
    try {
      await s2.tokens.revoke('m-root', Date.now(), 'client request', event('token.revoke', { jti: 'm-root' }));
      const closed = await s2.tasks.close({ taskId: 'task_open' }, 'ended', Date.now(), 'ended_by_admin', (t) => event('task.close', { taskId: t.id, status: 'ended', reason: 'ended_by_admin' }));
      assert.equal(closed.length, 1);
    } finally {
      await s2.close();
    }
    const refused = await fx.run(['token', 'inspect', leaf], { env: {} });
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /^ {2}ok +record +issued by this Mandate at \S+ to summarizer; not revoked$/m);
    assert.match(refused.stdout, /^ {2}refused: chain: an earlier mandate in its chain was revoked \(\S+Z: client request\); a mandate exchanged from a revoked one is refused with it$/m);
    assert.match(refused.stdout, /^ {2}REFUSED +chain +"m-root"$/m);
    const asJson = JSON.parse((await fx.run(['token', 'inspect', leaf, '--json'], { env: {} })).stdout) as { verdict: string; reasons: string[] };
    assert.equal(asJson.verdict, 'refused');
    assert.deepEqual(asJson.reasons.map((r) => r.split(':')[0]), ['chain']);

    // The task ended: its mandates were revoked with it, and the reason says so.
    const ended = await fx.run(['token', 'inspect', taskChild], { env: {} });
    assert.equal(ended.code, 1);
    assert.match(ended.stdout, /^ {2}refused: revocation: its task ended \(ended: ended_by_admin\): every mandate of a task is revoked when the task closes$/m);

    // An open task past its idle limit: the node ends it at its next use.
    const idle = await fx.run(['token', 'inspect', await mint({ jti: 'm-idle', task: 'task_idle' })], { env: {} });
    assert.equal(idle.code, 1);
    assert.match(idle.stdout, /^ {2}refused: task status: its task has been idle since \S+Z, beyond its idle limit of 900 s; its next use ends it$/m);
  });
});

async function serveNode(routes: (base: string) => Record<string, unknown>): Promise<{ base: string; server: Server }> {
  let base = '';
  const server = createServer((req, res) => {
    const body = routes(base)[req.url ?? ''];
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, server };
}

test('token inspect against a running node on loopback: --issuer reads the metadata then jwks_uri; --jwks-url reads a JWKS', async () => {
  await withTokens(async ({ fx, mint, jwks }) => {
    let metadataIssuer: ((base: string) => string) = (base) => base;
    let jwksUri: ((base: string) => string) = (base) => `${base}/oauth/jwks`;
    const { base, server } = await serveNode((b) => ({
      '/.well-known/oauth-authorization-server': { issuer: metadataIssuer(b), jwks_uri: jwksUri(b) },
      '/oauth/jwks': jwks,
    }));
    try {
      const token = await mint({ iss: base });
      const r = await fx.run(['token', 'inspect', token, '--issuer', `${base}/`], { env: {} });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`^keys: 1 published key from ${base}/oauth/jwks \\(jwks_uri of ${base}/\\.well-known/oauth-authorization-server\\); issuer ${base} \\(from --issuer\\)$`, 'm'));
      assert.doesNotMatch(r.stdout, /^ {2}\S+ +record /m);

      const direct = await fx.run(['token', 'inspect', token, '--jwks-url', `${base}/oauth/jwks`, '--issuer', base], { env: {} });
      assert.equal(direct.code, 0, direct.stdout + direct.stderr);
      // Issued by another issuer than the configured one: refused, and the line says why.
      const configured = await fx.run(['token', 'inspect', token, '--jwks-url', `${base}/oauth/jwks`], { env: {} });
      assert.equal(configured.code, 1);
      assert.match(configured.stdout, /↳ another issuer; Mandate is "https:\/\/mandate\.test" \(issuer confusion\)$/m);

      metadataIssuer = () => 'https://elsewhere.example';
      const mismatch = await fx.run(['token', 'inspect', token, '--issuer', base], { env: {} });
      assert.equal(mismatch.code, 1);
      assert.match(mismatch.stderr, /ERR_INVALID_REQUEST: the metadata at .* names issuer "https:\/\/elsewhere\.example", not http:\/\/127\.0\.0\.1:\d+ \(RFC 8414 §3\.3\)/);
      metadataIssuer = (b) => b;
      jwksUri = () => 'http://127.0.0.2:1/jwks';
      const offOrigin = await fx.run(['token', 'inspect', token, '--issuer', base], { env: {} });
      assert.equal(offOrigin.code, 1);
      assert.match(offOrigin.stderr, /the jwks_uri of .* is on another origin \(http:\/\/127\.0\.0\.2:1\); to trust it, pass it as --jwks-url/);

      const notFound = await fx.run(['token', 'inspect', token, '--jwks-url', `${base}/nope`], { env: {} });
      assert.equal(notFound.code, 1);
      assert.match(notFound.stderr, /^mandate token inspect: ERR_OUTBOUND_FAILED: /);
      assert.equal((await fx.run(['token', 'inspect', token, '--jwks-url', 'ftp://x/jwks'], { env: {} })).code, 2);
    } finally {
      server.close();
    }
  });
});

test('token inspect with a stray second argument: usage error (exit 2) that never echoes the token', async () => {
  await withTokens(async ({ fx, mint }) => {
    const token = await mint();
    const r = await fx.run(['token', 'inspect', token, token]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unexpected argument <a JWT, not shown>/);
    assertTokenNotPrinted(token, r.stdout, r.stderr);
  });
});
