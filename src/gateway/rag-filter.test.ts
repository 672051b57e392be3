import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { fixedClock } from '../core/ports.ts';
import { PolicyEngine } from '../policy/policy-engine.ts';
import { readPolicyDirectory } from '../policy/read-policy-directory.ts';
import { compareSubjects, createDocumentsDb, DOCUMENTS_TABLE, generateDocuments, KNOWLEDGE_BASE_SUBJECTS } from '../../examples/rag/rag-example.ts';
import { filterCandidates, matchesFilter, retrievalFilter, toSql, type FilterNode } from './rag-filter.ts';

const NOW = Date.parse('2025-06-02T10:00:00Z');
const user = (id: string) => ({ type: 'User', id });
const agent = (id: string) => ({ type: 'Agent', id });

async function engineFor(dir: string) {
  const engine = new PolicyEngine({ clock: fixedClock(NOW) });
  await engine.loadDirectory(dir);
  return engine;
}

describe('retrievalFilter agrees with per-record decisions', () => {
  it('on examples/rag/policies (tenant, owner, set membership, approval, legal hold, a directory record)', async () => {
    const engine = await engineFor('examples/rag/policies');
    const db = createDocumentsDb(generateDocuments(400, 11, ['kb', 'legal-hold', 'handbook'], ['acme', 'globex', 'initech', 'umbrella'], ['ann', 'pete', 'olga'], ['doc-board-minutes']));
    const results = await compareSubjects(engine, db, KNOWLEDGE_BASE_SUBJECTS, NOW);
    for (const r of results) {
      assert.ok(r.result.kind !== 'per_record', `${r.name}: ${r.result.kind === 'per_record' ? r.result.reason : ''}`);
      assert.ok(r.agree, `${r.name}: filter ${r.filtered?.length} rows, per-record ${r.perRecord.length}`);
    }
    assert.ok(results.some((r) => r.perRecord.length > 0));
    // Whatever the row claims about doc-board-minutes, the directory says restricted and Ann's.
    assert.ok(!results[2]!.perRecord.includes('doc-board-minutes'), 'the directory data wins over the row');
    assert.ok(results[0]!.perRecord.includes('doc-board-minutes'), 'Ann owns it in the directory');
  });

  it('on examples/policies (clearances, hr hierarchy, admin audit log, chat agent, tasks, quarantine)', async () => {
    const engine = await engineFor('examples/policies');
    const db = createDocumentsDb(generateDocuments(300, 3, ['crm', 'wiki', 'wiki-public', 'hr-salaries', 'audit-log', 'other'], ['acme', 'globex'], ['alice', 'erin', 'carol'], ['crm-lead-4711', 'salary-alice']));
    const subjects = [
      { name: 'alice', who: { principal: user('alice') } },
      { name: 'dave', who: { principal: user('dave') } },
      { name: 'erin', who: { principal: user('erin') } },
      { name: 'carol', who: { principal: user('carol') } },
      { name: 'bob via helpdesk-assistant', who: { principal: user('bob'), actors: [agent('helpdesk-assistant')] } },
      { name: 'bob via triage-bot in task-2001', who: { principal: user('bob'), actors: [agent('triage-bot')], context: { task: { type: 'Task', id: 'task-2001' }, step: 1 } } },
      { name: 'alice via sales-outreach in task-1001', who: { principal: user('alice'), actors: [agent('sales-outreach')], context: { task: { type: 'Task', id: 'task-1001' }, step: 2 } } },
      { name: 'alice via sales-outreach in closed task-1002', who: { principal: user('alice'), actors: [agent('sales-outreach')], context: { task: { type: 'Task', id: 'task-1002' }, step: 1 } } },
      { name: 'bob via quarantined-bot', who: { principal: user('bob'), actors: [agent('quarantined-bot')], context: { task: { type: 'Task', id: 'task-3001' }, step: 1 } } },
    ];
    const results = await compareSubjects(engine, db, subjects, NOW);
    for (const r of results) {
      assert.ok(r.result.kind !== 'per_record', `${r.name}: ${r.result.kind === 'per_record' ? r.result.reason : ''}`);
      assert.ok(r.agree, `${r.name}: filter ${r.filtered?.length} rows, per-record ${r.perRecord.length}`);
    }
    const byName = new Map(results.map((r) => [r.name, r]));
    assert.equal(byName.get('bob via quarantined-bot')!.result.kind, 'deny');
    assert.equal(byName.get('alice via sales-outreach in closed task-1002')!.result.kind, 'deny');
    assert.ok(byName.get('erin')!.perRecord.length > byName.get('alice')!.perRecord.length - 1000);
  });
});

describe('retrievalFilter fails closed', () => {
  it('falls back to per-record decisions for a residual outside the subset (like)', async () => {
    const dir = await readPolicyDirectory('examples/rag/policies');
    const engine = new PolicyEngine({ clock: fixedClock(NOW) });
    engine.activate({ ...dir, policies: [...dir.policies, { path: 'like.cedar', text: '@id("drafts") permit (principal is User, action == Action::"read", resource) when { resource.tenant like "draft-*" };' }] });
    const r = await retrievalFilter({ principal: user('olga') }, { policySet: () => engine.activeSet(), clock: fixedClock(NOW), table: DOCUMENTS_TABLE, decide: (q) => engine.decide(q) });
    assert.equal(r.kind, 'per_record');
  });
  it('falls back when a residual reads an attribute the table does not map', async () => {
    const engine = await engineFor('examples/rag/policies');
    const { owner: _owner, ...columns } = DOCUMENTS_TABLE.columns;
    const r = await retrievalFilter({ principal: user('olga') }, { policySet: () => engine.activeSet(), clock: fixedClock(NOW), table: { ...DOCUMENTS_TABLE, columns }, decide: (q) => engine.decide(q) });
    assert.equal(r.kind, 'per_record');
  });
  it('denies without a policy set, for a reserved context key, and for an unknown task', async () => {
    const engine = await engineFor('examples/rag/policies');
    const deps = { policySet: () => engine.activeSet(), clock: fixedClock(NOW), table: DOCUMENTS_TABLE, decide: (q: Parameters<PolicyEngine['decide']>[0]) => engine.decide(q) };
    assert.equal((await retrievalFilter({ principal: user('ann') }, { ...deps, policySet: () => undefined })).kind, 'deny');
    assert.equal((await retrievalFilter({ principal: user('ann'), context: { delegation: { depth: 0 } } }, deps)).kind, 'deny');
    const r = await retrievalFilter({ principal: user('ann'), actors: [agent('kb-agent')], context: { task: { type: 'Task', id: 'no-such-task' }, step: 1 } }, deps);
    assert.notEqual(r.kind, 'filter');
  });
});

describe('filterCandidates', () => {
  it('keeps directory data over candidate data, drops conflicting and malformed candidates', async () => {
    const engine = await engineFor('examples/rag/policies');
    const r = await filterCandidates(
      [
        { id: 'doc-board-minutes', type: 'Record', sensitivity: 'public', tenant: 'acme' },
        { id: 'a', type: 'Record', sensitivity: 'public', tenant: 'acme' },
        { id: 'b', type: 'Record', sensitivity: 'public', tenant: 'acme' },
        { id: 'b', type: 'Record', sensitivity: 'restricted', tenant: 'acme' },
        { id: 'c', type: 'Record', sensitivity: 'top-secret', tenant: 'acme' },
        { id: 'd', type: 'Record', sensitivity: 'confidential', tenant: 'acme' },
      ],
      { principal: user('ann'), actors: [agent('kb-agent')], context: { task: { type: 'Task', id: 'task-kb-1' }, step: 1 } },
      (q) => engine.decide(q),
    );
    assert.deepEqual(r.allowed.map((c) => c.id), ['a']);
    assert.deepEqual(r.denied.map((d) => d.id), ['doc-board-minutes', 'b', 'b', 'c', 'd']);
  });
});

describe('filter AST', () => {
  const f: FilterNode = { op: 'and', args: [{ op: 'cmp', field: { kind: 'attr', name: 'sensitivityLevel' }, cmp: '<=', value: 1 }, { op: 'in', field: { kind: 'attr', name: 'tenant' }, values: ['acme', "x'); DROP TABLE documents; --"] }] };
  it('renders parameterised SQL with quoted identifiers only', () => {
    assert.deepEqual(toSql(f, DOCUMENTS_TABLE), { sql: '"sensitivity_level" <= ? AND "tenant" IN (?, ?)', params: [1, 'acme', "x'); DROP TABLE documents; --"] });
  });
  it('refuses a column name that is not a plain identifier', () => {
    assert.throws(() => toSql(f, { ...DOCUMENTS_TABLE, columns: { ...DOCUMENTS_TABLE.columns, tenant: { column: 'tenant"; --', type: 'string' } } }), TypeError);
  });
  it('evaluates in memory', () => {
    assert.equal(matchesFilter(f, { id: '1', attrs: { sensitivityLevel: 1, tenant: 'acme' } }), true);
    assert.equal(matchesFilter(f, { id: '1', attrs: { sensitivityLevel: 2, tenant: 'acme' } }), false);
    assert.equal(matchesFilter(f, { id: '1', attrs: { sensitivityLevel: null, tenant: 'acme' } }), false);
  });
});
