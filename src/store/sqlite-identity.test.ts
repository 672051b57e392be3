import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { ConflictError } from '../core/errors.ts';
import { fixedClock } from '../core/ports.ts';
import type { NewAuditEventV1 } from '../audit/audit-event.ts';
import { openSqliteStore } from './sqlite-store.ts';
import type { PrincipalRecord } from './store.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

async function open(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-identity-store-'));
  const clock = fixedClock(T0);
  const store = await openSqliteStore({ dataDir: dir, clock });
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, clock };
}

let n = 0;
function event(type: NewAuditEventV1['type'] = 'admin'): NewAuditEventV1 {
  n++;
  return { id: `evt-identity-${n}`, time: new Date(T0).toISOString(), type, outcome: 'success', redacted: [] };
}

async function publicJwk() {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return exportJWK(publicKey);
}

function agent(id: string, overrides: Partial<PrincipalRecord> = {}): PrincipalRecord {
  return {
    id,
    kind: 'agent',
    name: `Agent ${id}`,
    owner: 'alice@example.com',
    mode: 'autonomous',
    workflows: ['wf-sales'],
    audiences: ['https://crm.example/mcp'],
    apiScopes: [],
    credentials: [{ type: 'spiffe', spiffeId: `spiffe://example.org/agents/${id}` }],
    status: 'active',
    dpop: 'required',
    source: 'api',
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

test('replay ids: first use true, replay false, an expired record is renewed, namespaces are separate', async (t) => {
  const { store, clock } = await open(t);
  assert.equal(await store.replay.use('dpop', 'j1', T0 + 60_000), true);
  assert.equal(await store.replay.use('dpop', 'j1', T0 + 60_000), false);
  assert.equal(await store.replay.use('client_assertion', 'j1', T0 + 60_000), true);
  clock.advance(61_000);
  assert.equal(await store.replay.use('dpop', 'j1', clock.now() + 60_000), true, 'expired record renewed');
  assert.equal(await store.replay.use('dpop', 'j1', clock.now() + 60_000), false);
  await assert.rejects(store.replay.use('', 'x', 1), TypeError);
  await assert.rejects(store.replay.use('dpop', 'x', 1.5), TypeError);
});

test('replay ids: expired rows are pruned as the table is written', async (t) => {
  const { store, clock } = await open(t);
  for (let i = 0; i < 300; i++) await store.replay.use('dpop', `old-${i}`, T0 + 1000);
  clock.advance(5000);
  for (let i = 0; i < 300; i++) await store.replay.use('dpop', `new-${i}`, clock.now() + 1000);
  const { default: Database } = await import('better-sqlite3');
  const raw = new Database(store.path, { readonly: true });
  t.after(() => raw.close());
  const left = raw.prepare("SELECT count(*) AS c FROM replay_ids WHERE id LIKE 'old-%'").get() as { c: number };
  assert.ok(left.c < 300, `expired rows pruned (${left.c} left)`);
});

test('principals: create with its audit event, look up by id and SPIFFE ID, list with filters', async (t) => {
  const { store } = await open(t);
  const jwk = await publicJwk();
  await store.principals.create(agent('a1'), event());
  await store.principals.create(agent('s1', { kind: 'service', mode: undefined, credentials: [{ type: 'jwks', jwks: { keys: [jwk] } }] }), event());
  assert.equal(await store.audit.count(), 2);
  const a1 = await store.principals.get('a1');
  assert.equal(a1?.name, 'Agent a1');
  assert.deepEqual(a1?.credentials, [{ type: 'spiffe', spiffeId: 'spiffe://example.org/agents/a1' }]);
  assert.equal((await store.principals.bySpiffeId('spiffe://example.org/agents/a1'))?.id, 'a1');
  assert.equal(await store.principals.bySpiffeId('spiffe://example.org/agents/nobody'), undefined);
  const s1 = await store.principals.get('s1');
  assert.equal(s1?.mode, undefined);
  assert.deepEqual(s1?.credentials, [{ type: 'jwks', jwks: { keys: [jwk] } }]);
  assert.deepEqual((await store.principals.list({ kind: 'service' })).map((p) => p.id), ['s1']);
  assert.deepEqual((await store.principals.list()).map((p) => p.id), ['a1', 's1']);
});

test('principals: a duplicate id or a credential held by another principal is a ConflictError, and nothing is written', async (t) => {
  const { store } = await open(t);
  const jwk = await publicJwk();
  await store.principals.create(agent('a1', { credentials: [{ type: 'jwks', jwks: { keys: [jwk] } }] }), event());
  await assert.rejects(store.principals.create(agent('a1', { credentials: [] }), event()), ConflictError);
  await assert.rejects(store.principals.create(agent('a2', { credentials: [{ type: 'jwks', jwks: { keys: [jwk] } }] }), event()), ConflictError);
  await assert.rejects(
    store.principals.create(agent('a3', { credentials: [{ type: 'spiffe', spiffeId: 'spiffe://x/y' }, { type: 'spiffe', spiffeId: 'spiffe://x/y' }] }), event()),
    ConflictError,
  );
  assert.equal(await store.principals.get('a2'), undefined);
  assert.equal(await store.principals.get('a3'), undefined);
  assert.equal(await store.audit.count(), 1, 'refused registrations leave no audit event and no row');
  // Taking someone else's credential by update is refused too, and the update is rolled back whole.
  await store.principals.create(agent('a4'), event());
  await assert.rejects(store.principals.update('a4', { name: 'renamed', credentials: [{ type: 'jwks', jwks: { keys: [jwk] } }] }, T0 + 1, event()), ConflictError);
  assert.equal((await store.principals.get('a4'))?.name, 'Agent a4');
});

test('principals: update applies the patch with its event; unknown id writes nothing; touch is coarse', async (t) => {
  const { store } = await open(t);
  await store.principals.create(agent('a1'), event());
  const updated = await store.principals.update('a1', { status: 'suspended', workflows: [] }, T0 + 5, event());
  assert.equal(updated?.status, 'suspended');
  assert.deepEqual(updated?.workflows, []);
  assert.equal(updated?.updatedAt, T0 + 5);
  assert.equal(await store.principals.update('nobody', { status: 'active' }, T0 + 6, event()), undefined);
  assert.equal(await store.audit.count(), 2);
  await store.principals.touch('a1', T0 + 100_000);
  assert.equal((await store.principals.get('a1'))?.lastUsedAt, T0 + 100_000);
  await store.principals.touch('a1', T0 + 110_000);
  assert.equal((await store.principals.get('a1'))?.lastUsedAt, T0 + 100_000, 'within a minute: not rewritten');
});

test('signing keys: insert, list, update; a public JWK with a private part is refused', async (t) => {
  const { store } = await open(t);
  const pub = await publicJwk();
  const key = { kid: 'k1', alg: 'ES256' as const, publicJwk: pub, encryptedPrivateJwk: 'jwe', state: 'active' as const, createdAt: T0, activatedAt: T0 };
  await store.signingKeys.insert(key, event());
  await assert.rejects(store.signingKeys.insert(key), ConflictError);
  await store.signingKeys.update('k1', { state: 'retiring', retireAt: T0 + 1000 });
  assert.deepEqual(await store.signingKeys.list(), [{ ...key, state: 'retiring', retireAt: T0 + 1000 }]);
  await assert.rejects(store.signingKeys.insert({ ...key, kid: 'k2', publicJwk: { ...pub, d: 'secret' } }), TypeError);
});

test('issued tokens: recorded with their issuance event; revoked once, durably, with its event', async (t) => {
  const { store } = await open(t);
  const rec = { jti: 't1', clientId: 'a1', subject: 'alice', actors: ['a1'], audience: 'https://crm.example/mcp', scope: 'read', jkt: 'thumb', issuedAt: T0, expiresAt: T0 + 300_000 };
  await store.tokens.record(rec, event('admin'));
  await assert.rejects(store.tokens.record(rec, event('admin')), ConflictError);
  assert.deepEqual(await store.tokens.get('t1'), rec);
  assert.equal(await store.tokens.revoke('t1', T0 + 10, 'client request', event('admin')), true);
  assert.equal(await store.tokens.revoke('t1', T0 + 20, 'again', event('admin')), false);
  assert.equal(await store.tokens.revoke('nope', T0 + 20, 'unknown', event('admin')), false);
  assert.deepEqual(await store.tokens.get('t1'), { ...rec, revokedAt: T0 + 10, revokedReason: 'client request' });
  assert.equal(await store.audit.count(), 2, 'one issuance and one revocation event; refusals wrote nothing');
});
