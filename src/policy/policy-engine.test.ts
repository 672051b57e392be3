import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine } from './policy-engine.ts';
import { fixedClock } from '../core/ports.ts';
import { SAMPLE_POLICIES, writePolicyDir } from '../../test/fixtures/policy-dir.ts';
import { MandateError, PolicySetInvalidError, PolicyNotLoadedError } from '../core/errors.ts';
import { byteOffsetToLineColumn } from './source-position.ts';
import type { AuthorizationRequest } from './types.ts';
import type { PolicyDiagnostic } from './types.ts';

const NOW = Date.parse('2026-11-30T10:00:00Z');

const POLICIES = {
  ...SAMPLE_POLICIES,
  'extra.cedar': `
@id("helper-reads-restricted")
permit(principal == Agent::"helper", action == Action::"read", resource == Dataset::"salaries");
`,
};

const engine = async (files: Record<string, string> = POLICIES, kind: 'compiled' | 'reference' = 'compiled') => {
  const fx = await writePolicyDir(files);
  const e = new PolicyEngine({ clock: fixedClock(NOW), engine: kind });
  await e.loadDirectory(fx.dir);
  return { e, fx };
};

const read = (principal: string, resource: string, actors: string[] = []): AuthorizationRequest => ({
  principal: { type: 'User', id: principal },
  action: 'read',
  resource: { type: 'Dataset', id: resource },
  delegation: { actors: actors.map((id) => ({ type: 'Agent', id })) },
});

test('a direct user request is allowed by the user policy and names the determining policy', async () => {
  const { e, fx } = await engine();
  try {
    const d = e.decide(read('alice', 'wiki'));
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.principals.map((p) => p.determining.map((x) => x.id)), [['sales-read-internal']]);
    assert.match(d.policySetVersion, /^sha256:[0-9a-f]{64}$/);
    assert.match(d.decisionId, /^[0-9a-f-]{36}$/);
    assert.equal(d.principals[0]?.determining[0]?.source, 'users.cedar:2');
  } finally {
    await fx.cleanup();
  }
});

test('delegation: user may, agent may not → deny', async () => {
  const { e, fx } = await engine();
  try {
    // alice may call crm.update; the chat agent `helper` has no permit for call.
    const d = e.decide({ principal: { type: 'User', id: 'alice' }, action: 'call', resource: { type: 'Tool', id: 'crm.update' }, delegation: { actors: [{ type: 'Agent', id: 'helper' }] } });
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.principals.map((p) => p.decision), ['allow', 'deny']);
    assert.match(d.reasons.join('\n'), /Agent::"helper": no policy permits this/);
  } finally {
    await fx.cleanup();
  }
});

test('delegation: agent may, user may not → deny', async () => {
  const { e, fx } = await engine();
  try {
    // bob is not in sales, so bob may not read the wiki; the agent may.
    const d = e.decide(read('bob', 'wiki', ['helper']));
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.principals.map((p) => p.decision), ['deny', 'allow']);
  } finally {
    await fx.cleanup();
  }
});

test('delegation: both may → allow; the agent never inherits beyond the intersection', async () => {
  const { e, fx } = await engine();
  try {
    assert.equal(e.decide(read('alice', 'wiki', ['helper'])).decision, 'allow');
    // helper has a permit on salaries, but delegated access to restricted data is forbidden.
    const d = e.decide(read('alice', 'salaries', ['helper']));
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.principals[1]?.determining.map((x) => x.id), ['restricted-never-to-agents']);
  } finally {
    await fx.cleanup();
  }
});

test('@approval("required") on the determining permit yields approval_required', async () => {
  const { e, fx } = await engine();
  try {
    const d = e.decide({ principal: { type: 'User', id: 'alice' }, action: 'call', resource: { type: 'Tool', id: 'crm.update' }, delegation: { actors: [{ type: 'Agent', id: 'writer' }] } });
    assert.equal(d.decision, 'approval_required');
    assert.equal(d.principals[1]?.approvalRequired, true);
  } finally {
    await fx.cleanup();
  }
});

test('fail closed: a forbid whose evaluation errors still denies (Cedar alone would skip it and allow)', async () => {
  const files = {
    'p.cedar': `
@id("allow-read")
permit(principal, action == Action::"read", resource);
@id("forbid-by-owner-role")
forbid(principal is Agent, action, resource) when { principal.owner.roles.contains("contractor") };
@id("forbid-large-amounts")
forbid(principal, action, resource) when { context has args && context.args has amount && context.args.amount * 1000000 > 5000000 };
`,
  };
  const { e, fx } = await engine(files);
  try {
    // The agent's owner entity is left out of the request's reach: describe a new agent whose owner does not exist.
    const d = e.decide({
      principal: { type: 'Agent', id: 'ghost-owned' },
      action: 'read',
      resource: { type: 'Dataset', id: 'wiki' },
      entities: [{ uid: { type: 'Agent', id: 'ghost-owned' }, attrs: { owner: { type: 'User', id: 'nobody' }, mode: 'chat', status: 'active', workflows: [] }, parents: [] }],
    });
    assert.equal(d.decision, 'deny');
    assert.equal(d.errors.length, 1);
    assert.equal(d.errors[0]?.policyId, 'forbid-by-owner-role');
    assert.match(d.reasons.join('\n'), /any evaluation error denies/);
    // Integer overflow inside a forbid: Cedar reports the error and skips the forbid; Mandate denies.
    const d2 = e.decide({ principal: { type: 'User', id: 'alice' }, action: 'read', resource: { type: 'Dataset', id: 'wiki' }, context: { args: { amount: 2 ** 53 - 1 } } });
    assert.equal(d2.decision, 'deny');
    assert.deepEqual(d2.errors.map((x) => x.policyId), ['forbid-large-amounts']);
    assert.match(d2.errors[0]?.message ?? '', /overflow/);
    assert.equal(e.decide({ principal: { type: 'User', id: 'alice' }, action: 'read', resource: { type: 'Dataset', id: 'wiki' }, context: { args: { amount: 3 } } }).decision, 'allow');
  } finally {
    await fx.cleanup();
  }
});

test('an invalid set is refused whole, with file:line:col, and the previous set stays active', async () => {
  const { e, fx } = await engine();
  try {
    const before = e.current()?.version;
    await fx.write('bad.cedar', '// é comment\npermit(principal, action, resource) when { principal.nope == 1 };\n');
    await assert.rejects(e.loadDirectory(fx.dir), (err: unknown) => {
      assert.ok(err instanceof PolicySetInvalidError);
      const diags = err.extra?.diagnostics as PolicyDiagnostic[];
      assert.equal(diags[0]?.position?.file, 'bad.cedar');
      assert.equal(diags[0]?.position?.line, 2);
      assert.ok((diags[0]?.position?.column ?? 0) > 40);
      return true;
    });
    assert.equal(e.current()?.version, before);
    assert.equal(e.decide(read('alice', 'wiki')).decision, 'allow');
    const r = await e.reload(fx.dir);
    assert.equal(r.ok, false);
  } finally {
    await fx.cleanup();
  }
});

test('a syntax error is reported with its position; an empty set is refused', async () => {
  const fx = await writePolicyDir({ 'a.cedar': 'permit(principal, action, resource)\n  when { true }' });
  const e = new PolicyEngine();
  try {
    await assert.rejects(e.loadDirectory(fx.dir), (err: unknown) => err instanceof PolicySetInvalidError && ((err.extra?.diagnostics as PolicyDiagnostic[])[0]?.position?.file === 'a.cedar'));
    assert.throws(() => e.decide(read('alice', 'wiki')), PolicyNotLoadedError);
    await fx.write('a.cedar', '// nothing here\n');
    await assert.rejects(e.loadDirectory(fx.dir), /holds no policy/);
  } finally {
    await fx.cleanup();
  }
});

test('duplicate policy ids are refused', async () => {
  const fx = await writePolicyDir({ 'a.cedar': '@id("x") permit(principal, action, resource);', 'b.cedar': '@id("x") forbid(principal, action, resource);' });
  try {
    await assert.rejects(new PolicyEngine().loadDirectory(fx.dir), /duplicate policy id "x"/);
  } finally {
    await fx.cleanup();
  }
});

for (const kind of ['compiled', 'reference'] as const) test(`${kind} engine: bad input is a MandateError with a stable code, never a decision`, async () => {
  const { e, fx } = await engine(POLICIES, kind);
  try {
    const cases: Array<[AuthorizationRequest, string]> = [
      [{ ...read('alice', 'wiki'), principal: { type: 'Robot', id: 'r' } }, 'ERR_UNKNOWN_ENTITY_TYPE'],
      [{ ...read('alice', 'wiki'), action: 'fly' }, 'ERR_UNKNOWN_ACTION'],
      [{ ...read('alice', 'wiki'), resource: { type: 'Tool', id: 'crm.update' } }, 'ERR_UNKNOWN_ACTION'],
      [{ ...read('alice', 'wiki'), context: { nope: 1 } }, 'ERR_INVALID_CONTEXT'],
      [{ ...read('alice', 'wiki'), context: { step: 'one' } }, 'ERR_INVALID_CONTEXT'],
      [{ ...read('alice', 'wiki'), context: { step: 2 ** 60 } }, 'ERR_INTEGER_OUT_OF_RANGE'],
      [{ ...read('alice', 'wiki'), context: { step: 1.5 } }, 'ERR_INTEGER_OUT_OF_RANGE'],
      [{ ...read('alice', 'wiki'), context: { delegation: { depth: 0, agents: [] } } }, 'ERR_INVALID_CONTEXT'],
      [{ ...read('alice', 'wiki'), context: { time: { now: '2020-01-01' } } }, 'ERR_INVALID_CONTEXT'],
      [read('alice', 'wiki', ['helper', 'helper']), 'ERR_INVALID_REQUEST'],
      [read('alice', 'wiki', ['a', 'b', 'c', 'd', 'e', 'f']), 'ERR_INVALID_REQUEST'],
      [{ ...read('carol', 'wiki'), entities: [{ uid: { type: 'User', id: 'carol' }, attrs: { roles: 'admin' }, parents: [] }] }, 'ERR_INVALID_ENTITY'],
      [{ ...read('carol', 'wiki'), entities: [{ uid: { type: 'Dataset', id: 'x' }, attrs: { sensitivity: 'secret', tenant: 'a' }, parents: [] }] }, 'ERR_INVALID_ENTITY'],
    ];
    for (const [req, code] of cases) {
      assert.throws(() => e.decide(req), (err: unknown) => err instanceof MandateError && err.code === code, `${kind}: ${JSON.stringify(req)} → ${code}`);
    }
  } finally {
    await fx.cleanup();
  }
});

test('unknown principals and resources are denied with a reason', async () => {
  const { e, fx } = await engine();
  try {
    const d = e.decide(read('mallory', 'wiki'));
    assert.equal(d.decision, 'deny');
    assert.match(d.reasons.join(), /unknown entity User::"mallory"/);
  } finally {
    await fx.cleanup();
  }
});

test('caller data cannot override an entity the directory defines', async () => {
  const { e, fx } = await engine();
  try {
    // The caller claims bob is in sales; the directory says otherwise.
    const d = e.decide({ ...read('bob', 'wiki'), entities: [{ uid: { type: 'User', id: 'bob' }, attrs: { roles: [] }, parents: [{ type: 'Group', id: 'sales' }] }] });
    assert.equal(d.decision, 'deny');
    assert.match(d.reasons[0] ?? '', /caller data ignored/);
    // A caller-described user is evaluated with its data.
    const d2 = e.decide({ ...read('carol', 'wiki'), entities: [{ uid: { type: 'User', id: 'carol' }, attrs: { roles: [] }, parents: [{ type: 'Group', id: 'sales' }] }] });
    assert.equal(d2.decision, 'allow');
  } finally {
    await fx.cleanup();
  }
});

test('context.time.now comes from the clock and policies can use it', async () => {
  const { e, fx } = await engine({ 't.cedar': '@id("business-days") permit(principal, action == Action::"read", resource) when { context.time.now < datetime("2026-12-01") };' });
  try {
    assert.equal(e.decide(read('alice', 'wiki')).decision, 'allow');
  } finally {
    await fx.cleanup();
  }
});

test('byte offsets map to line and column across multi-byte characters', () => {
  const text = 'é\nab€c';
  assert.deepEqual(byteOffsetToLineColumn(text, 0), { line: 1, column: 1 });
  assert.deepEqual(byteOffsetToLineColumn(text, 3), { line: 2, column: 1 });
  // 'a' 'b' then '€' (3 bytes) then 'c': c starts at byte 3 + 2 + 3 = 8.
  assert.deepEqual(byteOffsetToLineColumn(text, 8), { line: 2, column: 4 });
});

test('default policy ids and lines follow source order, and validation errors name them', async () => {
  // Twelve policies without @id; the engine's own split does not keep source order.
  const body = Array.from({ length: 12 }, (_, i) => `permit(principal == User::"u${i}", action == Action::"read", resource);`).join('\n');
  const fx = await writePolicyDir({ 'many.cedar': body });
  try {
    const e = new PolicyEngine();
    const info = await e.loadDirectory(fx.dir);
    for (const p of info.policies) {
      const n = Number(p.id.split(':')[1]);
      assert.equal(p.line, n + 1, `${p.id} is on line ${n + 1}`);
      assert.match(p.text, new RegExp(`User::"u${n}"`));
    }
    // An error in the tenth policy (line 10) is reported as many.cedar:9 at line 10.
    const lines = body.split('\n');
    lines[9] = 'permit(principal, action, resource) when { principal.nope };';
    await fx.write('many.cedar', lines.join('\n'));
    await assert.rejects(e.loadDirectory(fx.dir), (err: unknown) => {
      const d = (err as PolicySetInvalidError).extra?.diagnostics as PolicyDiagnostic[];
      assert.equal(d[0]?.position?.line, 10);
      assert.equal(d[0]?.policyId, 'many.cedar:9');
      assert.match(d[0]?.message ?? '', /many\.cedar:9/);
      return true;
    });
  } finally {
    await fx.cleanup();
  }
});

for (const kind of ['reference', 'compiled'] as const) {
  test(`${kind} engine: entities named by policies are part of every request's slice (their ancestors and attributes count)`, async () => {
    const entities = [
      ...(await import('../../test/fixtures/policy-dir.ts')).baseEntities(),
      { uid: { type: 'Group', id: 'staff' }, attrs: {}, parents: [] },
      { uid: { type: 'Group', id: 'emea' }, attrs: {}, parents: [{ type: 'Group', id: 'staff' }] },
    ];
    const fx = await writePolicyDir(
      {
        'p.cedar': `
@id("emea-is-staff")
permit(principal, action == Action::"read", resource == Dataset::"wiki") when { Group::"emea" in Group::"staff" };
@id("crm-tool-risk")
permit(principal, action == Action::"read", resource == Dataset::"salaries") when { Tool::"crm.update".risk == "write" };
`,
      },
      entities,
    );
    try {
      const e = new PolicyEngine({ clock: fixedClock(NOW), engine: kind });
      const info = await e.loadDirectory(fx.dir);
      assert.equal(info.engine, kind);
      assert.deepEqual(info.unsupported, []);
      // bob's request reaches neither Group::"emea" nor Tool::"crm.update" through its own entities.
      assert.equal(e.decide(read('bob', 'wiki')).decision, 'allow');
      assert.equal(e.decide(read('bob', 'salaries')).decision, 'allow');
    } finally {
      await fx.cleanup();
    }
  });
}

test('input the engines could read differently is refused up front, the same on both paths', async () => {
  for (const kind of ['reference', 'compiled'] as const) {
    const fx = await writePolicyDir(POLICIES);
    try {
      const e = new PolicyEngine({ clock: fixedClock(NOW), engine: kind });
      await e.loadDirectory(fx.dir);
      const lone = 'x\uD800y';
      const cases: Array<[AuthorizationRequest, string]> = [
        [{ ...read('alice', 'wiki'), context: { intent: lone } }, 'ERR_INVALID_CONTEXT'],
        [{ ...read('alice', 'wiki'), context: { [lone]: 'x' } }, 'ERR_INVALID_CONTEXT'],
        [{ ...read('carol', 'wiki'), entities: [{ uid: { type: 'User', id: 'carol' }, attrs: { roles: [lone] }, parents: [] }] }, 'ERR_INVALID_ENTITY'],
        [{ ...read('carol', 'wiki'), entities: [{ uid: { type: 'User', id: 'carol' }, attrs: { roles: [], email: { __extn: { fn: 'unknown', arg: 'e' } } }, parents: [] }] }, 'ERR_INVALID_ENTITY'],
        [read(lone, 'wiki'), 'ERR_INVALID_REQUEST'],
      ];
      for (const [req, code] of cases) {
        assert.throws(() => e.decide(req), (err: unknown) => err instanceof MandateError && err.code === code, `${kind}: ${code}`);
      }
    } finally {
      await fx.cleanup();
    }
  }
});
