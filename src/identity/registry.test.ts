import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditEvent } from '../audit/audit-event.ts';
import { fixedClock } from '../core/ports.ts';
import { openSqliteStore } from '../store/sqlite-store.ts';
import { principalLookup, PrincipalRegistrationSchema, syncConfiguredPrincipals, type PrincipalRegistration } from './registry.ts';

const clock = fixedClock(Date.parse('2026-01-01T00:00:00Z'));
const deps = { clock, event: (operation: string, id: string) => createAuditEvent({ type: 'admin', outcome: 'success', actor: 'config', data: { operation, principal: id } }, { clock }) };

function reg(id: string, extra: Record<string, unknown> = {}): PrincipalRegistration {
  return PrincipalRegistrationSchema.parse({
    id,
    kind: 'agent',
    name: id,
    owner: 'alice@example.com',
    mode: 'chat',
    credentials: [{ type: 'spiffe', spiffeId: `spiffe://example.org/${id}` }],
    ...extra,
  });
}

async function store(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-registry-'));
  const s = await openSqliteStore({ dataDir: dir, clock });
  t.after(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return s;
}

test('registration schema: defaults, SPIFFE ID rules, agents need a mode and services have none', () => {
  const r = reg('a1');
  assert.equal(r.status, 'active');
  assert.equal(r.dpop, 'required');
  assert.deepEqual(r.workflows, []);
  for (const bad of ['spiffe://Example.org/x', 'spiffe://example.org', 'spiffe://example.org/a/../b', 'spiffe://example.org/a?b', 'https://example.org/a', 'spiffe://example.org:8080/a']) {
    assert.equal(PrincipalRegistrationSchema.safeParse({ ...reg('a1'), credentials: [{ type: 'spiffe', spiffeId: bad }] }).success, false, bad);
  }
  assert.equal(PrincipalRegistrationSchema.safeParse({ ...reg('a1'), mode: undefined }).success, false);
  assert.equal(PrincipalRegistrationSchema.safeParse({ ...reg('s1'), kind: 'service' }).success, false);
  assert.equal(PrincipalRegistrationSchema.safeParse({ ...reg('s1'), kind: 'service', mode: undefined }).success, true);
  assert.equal(PrincipalRegistrationSchema.safeParse({ ...reg('a1'), extra: 1 }).success, false, 'unknown keys refused');
});

test('config sync: creates, updates, retires what the file dropped; audited; idempotent', async (t) => {
  const s = await store(t);
  assert.deepEqual(await syncConfiguredPrincipals(s.principals, [reg('a1'), reg('a2')], deps), { created: ['a1', 'a2'], updated: [], retired: [] });
  assert.deepEqual(await syncConfiguredPrincipals(s.principals, [reg('a1'), reg('a2')], deps), { created: [], updated: [], retired: [] });
  assert.deepEqual(await syncConfiguredPrincipals(s.principals, [reg('a1', { name: 'renamed' })], deps), { created: [], updated: ['a1'], retired: ['a2'] });
  assert.equal((await s.principals.get('a1'))?.name, 'renamed');
  assert.equal((await s.principals.get('a2'))?.status, 'retired');
  assert.equal(await s.audit.count(), 4);
});

test('config sync never re-activates a principal suspended through the API, but the file can restrict', async (t) => {
  const s = await store(t);
  await syncConfiguredPrincipals(s.principals, [reg('a1')], deps);
  await s.principals.update('a1', { status: 'quarantined' }, clock.now(), deps.event('principals.status.quarantined', 'a1'));
  await syncConfiguredPrincipals(s.principals, [reg('a1')], deps);
  assert.equal((await s.principals.get('a1'))?.status, 'quarantined');
  await syncConfiguredPrincipals(s.principals, [reg('a1', { status: 'retired' })], deps);
  assert.equal((await s.principals.get('a1'))?.status, 'retired');
});

test('config sync refuses an id registered through the API, a changed kind, and duplicates in the file', async (t) => {
  const s = await store(t);
  await s.principals.create({ ...reg('api-1'), source: 'api', createdAt: clock.now(), updatedAt: clock.now() }, deps.event('principals.create', 'api-1'));
  await assert.rejects(syncConfiguredPrincipals(s.principals, [reg('api-1')], deps), /registered through the admin API/);
  await syncConfiguredPrincipals(s.principals, [reg('a1')], deps);
  await assert.rejects(syncConfiguredPrincipals(s.principals, [reg('a1', { kind: 'service', mode: undefined })], deps), /kind cannot change/);
  await assert.rejects(syncConfiguredPrincipals(s.principals, [reg('a2'), reg('a2')], deps), /declared twice/);
});

test('principalLookup finds by id and SPIFFE ID and never queries with a malformed key', async (t) => {
  const s = await store(t);
  await syncConfiguredPrincipals(s.principals, [reg('a1')], deps);
  const lookup = principalLookup(s.principals);
  assert.equal((await lookup.byId('a1'))?.id, 'a1');
  assert.equal(await lookup.byId('A1 OR 1=1'), undefined);
  assert.equal((await lookup.bySpiffeId('spiffe://example.org/a1'))?.id, 'a1');
  assert.equal(await lookup.bySpiffeId('spiffe://example.org/../a1'), undefined);
});
