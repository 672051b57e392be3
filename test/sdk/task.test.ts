/**
 * The SDK against a real node on loopback: opening a task, its mandates renewed near expiry (a clock injected
 * into the SDK, so nothing waits), concurrent callers sharing one renewal, renewals never racing on the rotating
 * refresh token, ending the task (locally and at Mandate), a task the server ended, and `task.fetch` against a
 * resource server that checks the DPoP proof and introspects the mandate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { MandateClient, MandateOAuthError, TaskEndedError, type Task } from '../../src/sdk/index.ts';
import { CRM, ISS, checkRequest, listen, startWorld, type Presented, type World } from './world.ts';

let shared: Promise<World> | undefined;
const world = () => (shared ??= startWorld());
test.after(async () => {
  if (shared) await (await shared).close();
});

/** A client whose clock the test moves, and which counts its token endpoint requests by grant. */
function client(w: World, extra: Partial<ConstructorParameters<typeof MandateClient>[0]> = {}) {
  const clock = { now: Date.now() };
  const grants: string[] = [];
  const countingFetch: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url.endsWith('/oauth/token') && init?.body instanceof URLSearchParams) grants.push(`${init.body.get('grant_type')}${init.body.has('resource') ? ` ${init.body.get('resource')}` : ''}`);
    return fetch(input, init);
  };
  const c = new MandateClient({ issuer: w.url, clientId: 'sales-outreach', jwk: w.outreachJwk, now: () => clock.now, fetch: countingFetch, ...extra });
  return { c, clock, grants, refreshes: () => grants.filter((g) => g.startsWith('refresh_token')).length };
}

const open = async (w: World, c: MandateClient, extra: { dpop?: boolean; scope?: string } = {}): Promise<Task> =>
  c.startTask({ userToken: await w.userToken(), workflow: 'lead-followup', purpose: 'follow up the ACME lead', resource: CRM, scope: extra.scope ?? 'crm.search crm.read', ...(extra.dpop === undefined ? {} : { dpop: extra.dpop }) });

test('startTask opens a task: a DPoP-bound mandate for the user, acted by the agent, naming the task (nonce retry included)', async () => {
  const w = await world();
  const { c, grants } = client(w);
  const task = await open(w, c);
  assert.match(task.id, /^task_/);
  assert.equal(task.workflow, 'lead-followup');
  assert.equal(task.dpopBound, true);
  // dpop.nonce is required: the first exchange was answered use_dpop_nonce and retried with the nonce.
  assert.equal(grants.filter((g) => g.startsWith('urn:ietf:params:oauth:grant-type:token-exchange')).length, 2);
  const mandate = await task.token();
  const claims = decodeJwt(mandate) as Record<string, unknown>;
  assert.equal(claims.sub, 'alice');
  assert.deepEqual(claims.act, { sub: 'sales-outreach' });
  assert.equal(claims.aud, CRM);
  assert.deepEqual(claims.cnf, { jkt: task.dpopJkt });
  assert.deepEqual(claims.authorization_details, [{ type: 'mandate_task', workflow: 'lead-followup', task_id: task.id }]);
  const stored = await w.node.store.tasks.get(task.id);
  assert.equal(stored?.status, 'open');
  assert.equal(stored?.userIss, ISS);
  assert.equal(await task.token(), mandate, 'a valid mandate is reused, not renewed');
  await task.end();
});

test('token() renews shortly before expiry (by the injected clock), from the rotated grant; the old mandate stays until it expires', async () => {
  const w = await world();
  const { c, clock, refreshes } = client(w);
  const task = await open(w, c);
  const first = await task.token();
  clock.now += 200_000; // 100 s of 300 left: not yet due (renewal 30 s before expiry)
  assert.equal(await task.token(), first);
  assert.equal(refreshes(), 0);
  clock.now += 75_000; // 25 s left: due
  const second = await task.token();
  assert.notEqual(second, first);
  assert.equal(refreshes(), 1);
  assert.equal((await w.introspect(second)).active, true);
  clock.now += 280_000;
  const third = await task.token();
  assert.notEqual(third, second);
  assert.equal(refreshes(), 2, 'the second renewal used the rotated refresh token (a reused one would have revoked the task)');
  assert.equal((await w.node.store.tasks.get(task.id))?.status, 'open');
  // Another resource scope of the same resource: a renewal of its own, with the scope policy and the workflow allow.
  const update = await task.token(CRM, 'crm.update crm.search');
  assert.deepEqual(String(decodeJwt(update).scope).split(' ').sort(), ['crm.search', 'crm.update']);
  await task.end();
});

test('concurrent token() calls share one renewal; renewals for different scopes are serialized on the rotating grant', async () => {
  const w = await world();
  const { c, clock, refreshes } = client(w);
  const task = await open(w, c);
  clock.now += 290_000;
  const tokens = await Promise.all(Array.from({ length: 8 }, () => task.token()));
  assert.equal(new Set(tokens).size, 1);
  assert.equal(refreshes(), 1, 'one renewal for eight callers');
  clock.now += 290_000;
  const [a, b, a2] = await Promise.all([task.token(CRM, 'crm.search crm.read'), task.token(CRM, 'crm.read'), task.token(CRM, 'crm.read crm.search')]);
  assert.equal(a, a2, 'the same scope in another order is the same mandate');
  assert.equal(decodeJwt(b).scope, 'crm.read');
  assert.equal(refreshes(), 3);
  assert.equal((await w.node.store.tasks.get(task.id))?.status, 'open', 'no refresh token was used twice');
  await task.end();
});

test('end() revokes the grant: the task ends at Mandate, its mandates are inactive, and token() rejects with TaskEndedError from then on', async () => {
  const w = await world();
  const { c, clock, refreshes } = client(w);
  const task = await open(w, c);
  const mandate = await task.token();
  clock.now += 290_000;
  const inFlight = task.token().catch((err: unknown) => err); // a renewal queued before end()
  const ending = task.end();
  await assert.rejects(task.token(), (err: unknown) => err instanceof TaskEndedError && err.endedBy === 'client' && err.code === 'ERR_TASK_ENDED' && err.taskId === task.id);
  await ending;
  assert.ok((await inFlight) instanceof TaskEndedError, 'a renewal that was under way is not handed out');
  assert.equal(refreshes(), 0, 'the queued renewal never reached Mandate');
  const stored = await w.node.store.tasks.get(task.id);
  assert.equal(stored?.status, 'ended');
  assert.equal(stored?.endReason, 'grant_revoked');
  assert.deepEqual(await w.introspect(mandate), { active: false });
  await task.end(); // idempotent
  assert.equal(task.ended, true);
  await assert.rejects(task.token(CRM, 'crm.search'), TaskEndedError);
});

test('a task the server ended: the renewal is refused (invalid_grant) and every later call rejects, even with nothing due', async () => {
  const w = await world();
  const { c, clock } = client(w);
  const task = await open(w, c);
  const ev = () => ({ id: crypto.randomUUID(), time: new Date().toISOString(), type: 'admin' as const, outcome: 'success' as const, redacted: [] });
  await w.node.store.users.disable({ iss: ISS, sub: 'alice' }, Date.now(), 'test', ev(), () => ev());
  try {
    clock.now += 290_000;
    await assert.rejects(task.token(), (err: unknown) => {
      assert.ok(err instanceof TaskEndedError);
      assert.equal(err.endedBy, 'server');
      assert.ok(err.cause instanceof MandateOAuthError);
      assert.equal(err.cause.error, 'invalid_grant');
      assert.equal(err.cause.status, 400);
      return true;
    });
    clock.now -= 290_000;
    await assert.rejects(task.token(), TaskEndedError, 'no cached mandate after the server said the task ended');
    await task.end(); // nothing left to revoke
  } finally {
    await w.node.store.users.enable({ iss: ISS, sub: 'alice' }, ev());
  }
});

test('OAuth errors are typed: a refused scope is MandateOAuthError (invalid_scope) and leaves the task open', async () => {
  const w = await world();
  const { c } = client(w);
  const task = await open(w, c);
  await assert.rejects(task.token(CRM, 'payments.refund'), (err: unknown) => err instanceof MandateOAuthError && err.error === 'invalid_scope' && err.status === 400 && !err.message.includes('eyJ'));
  assert.equal(task.ended, false);
  assert.ok(await task.token());
  await assert.rejects(c.startTask({ userToken: await w.userToken('bob'), workflow: 'lead-followup', purpose: 'x', resource: CRM, scope: 'crm.search' }), (err: unknown) => err instanceof MandateOAuthError && err.error === 'invalid_authorization_details');
  await assert.rejects(task.token('https://elsewhere.test/', undefined), TypeError, 'no scope named for an unknown resource');
  await task.end();
});

test('task.fetch: DPoP proof (htm, htu, ath) and an introspected mandate at a loopback resource server; renewal after a revoked mandate; nothing for unmapped URLs', async () => {
  const w = await world();
  const seen: Presented[] = [];
  let rsUrl = '';
  const rs = await listen((req, res) => {
    void checkRequest(w, CRM, req, rsUrl).then((r) => {
      if (!r.ok) {
        res.writeHead(401, { 'www-authenticate': r.challenge }).end();
        return;
      }
      seen.push(r.presented);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sub: r.presented.introspection.sub, path: req.url }));
    });
  });
  rsUrl = rs.url;
  try {
    const { c, refreshes } = client(w, { resources: { [rs.url]: CRM } });
    const task = await open(w, c);
    const res = await task.fetch(`${rs.url}/mcp/leads?q=acme`, { method: 'POST', body: JSON.stringify({ q: 'acme' }), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { sub: 'alice', path: '/mcp/leads?q=acme' });
    assert.equal(seen[0]?.scheme, 'DPoP');
    assert.equal(seen[0]?.proof?.htm, 'POST');
    assert.equal(seen[0]?.proof?.htu, `${rs.url}/mcp/leads`, 'htu without the query (RFC 9449 §4.2)');
    assert.equal((seen[0]?.introspection.act as { sub?: string }).sub, 'sales-outreach');

    // The mandate is revoked at Mandate: the resource server says invalid_token; fetch renews once and succeeds.
    assert.equal(await w.revokeMandate(await task.token()), 200);
    const again = await task.fetch(`${rs.url}/mcp/leads`);
    assert.equal(again.status, 200);
    assert.equal(refreshes(), 1);

    await assert.rejects(task.fetch('https://attacker.test/collect'), TypeError, 'a mandate is never sent to an unmapped origin');

    await task.end();
    const before = seen.length;
    await assert.rejects(task.fetch(`${rs.url}/mcp/leads`), TaskEndedError);
    assert.equal(seen.length, before, 'the resource server saw nothing after end()');
  } finally {
    await rs.close();
  }
});

test('a Bearer task (dpop: false) presents Authorization: Bearer and sends no proof', async () => {
  const w = await world();
  let rsUrl = '';
  const seen: Presented[] = [];
  const rs = await listen((req, res) => {
    void checkRequest(w, CRM, req, rsUrl).then((r) => {
      if (r.ok) seen.push(r.presented);
      res.writeHead(r.ok ? 204 : 401, r.ok ? {} : { 'www-authenticate': r.challenge }).end();
    });
  });
  rsUrl = rs.url;
  try {
    const { c } = client(w, { resources: { [`${rs.url}/mcp`]: { resource: CRM, scope: 'crm.search' } }, dpop: false });
    const task = await open(w, c, { scope: 'crm.search' });
    assert.equal(task.dpopBound, false);
    assert.equal((await task.fetch(`${rs.url}/mcp`)).status, 204);
    assert.equal(seen[0]?.scheme, 'Bearer');
    assert.equal(decodeJwt(await task.token()).cnf, undefined);
    await assert.rejects(task.fetch(`${rs.url}/other`), TypeError, 'only the mapped path prefix');
    await task.end();
  } finally {
    await rs.close();
  }
});
