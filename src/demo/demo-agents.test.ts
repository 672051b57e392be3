import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_AGENTS, demoAgentKeyFile, ensureDemoAgents } from './demo-agents.ts';
import { DEMO_RESOURCES } from './demo-resources.ts';
import { ensureDemoKekFile } from './demo-kek.ts';

test('demo agents: keys made once (0600 files in a 0700 directory), kept across runs; registrations hold public keys only', async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'mandate-demo-agents-')), 'agents');
  try {
    const first = await ensureDemoAgents(dir);
    assert.deepEqual(first.created, DEMO_AGENTS.map((a) => a.id));
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    for (const agent of DEMO_AGENTS) assert.equal((await stat(demoAgentKeyFile(dir, agent.id))).mode & 0o777, 0o600);
    for (const r of first.registrations) {
      assert.equal(r.kind, 'agent');
      assert.equal(r.dpop, 'required');
      assert.deepEqual(r.audiences, DEMO_RESOURCES.map((x) => x.uri));
      const credential = r.credentials[0];
      assert.ok(credential?.type === 'jwks');
      assert.equal(credential.jwks.keys.length, 1);
      assert.equal('d' in (credential.jwks.keys[0] as object), false);
    }
    const second = await ensureDemoAgents(dir);
    assert.deepEqual(second.created, []);
    assert.deepEqual(second.registrations, first.registrations);
  } finally {
    await rm(join(dir, '..'), { recursive: true, force: true });
  }
});

test('demo agents: a key file others may read, or one that is not a private JWK, is refused with what to do', async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'mandate-demo-agents-')), 'agents');
  try {
    await ensureDemoAgents(dir);
    const file = demoAgentKeyFile(dir, 'helpdesk-assistant');
    await chmod(file, 0o644);
    await assert.rejects(ensureDemoAgents(dir), /chmod 600/);
    await chmod(file, 0o600);
    const jwk = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    delete jwk.d;
    await writeFile(file, JSON.stringify(jwk));
    await assert.rejects(ensureDemoAgents(dir), /not a private P-256 JWK/);
    await writeFile(file, 'nope');
    await assert.rejects(ensureDemoAgents(dir), /not JSON/);
  } finally {
    await rm(join(dir, '..'), { recursive: true, force: true });
  }
});

test('demo KEK: created 0600 on the first run, then left alone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-demo-kek-'));
  try {
    const path = join(dir, 'kek');
    assert.deepEqual(await ensureDemoKekFile(path), { path, created: true });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const kek = await readFile(path, 'utf8');
    assert.match(kek.trim(), /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(await ensureDemoKekFile(path), { path, created: false });
    assert.equal(await readFile(path, 'utf8'), kek);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
