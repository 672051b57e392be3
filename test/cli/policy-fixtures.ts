/**
 * Policy directories for the CLI and policy-tool tests, built on test/fixtures/policy-dir.ts (the example
 * schema and the base entities: alice in sales, bob, agents helper (chat, owned by bob) and writer
 * (autonomous, owned by alice), Tool::"crm.update" (risk write), datasets wiki and salaries).
 */

/** A small, clean set: every permit is scoped and conditioned; no lint finding. */
export const CLEAN_POLICIES: Record<string, string> = {
  'users.cedar': `// Sales reads internal data.
@id("sales-read-internal")
permit (principal in Group::"sales", action == Action::"read", resource is Dataset)
when { resource.sensitivityLevel <= 1 };

// Alice may send through the CRM tool, to Acme only.
@id("alice-send-internal")
permit (principal == User::"alice", action == Action::"send", resource == Tool::"crm.update")
when { context has args && context.args has recipientDomain && context.args.recipientDomain == "acme.example" };
`,
  'guards.cedar': `// Nobody gets anything when the risk engine says the request is hostile.
@id("deny-high-risk")
forbid (principal, action, resource)
when { context has risk && context.risk.score >= 80 };
`,
};

/** The clean set plus one over-broad permit: anyone may send through any tool, unconditionally. */
export const OVERBROAD_POLICIES: Record<string, string> = {
  ...CLEAN_POLICIES,
  'oops.cedar': `@id("anyone-sends")
permit (principal, action == Action::"send", resource);
`,
};

/** A policy that does not validate: `nope` is no attribute of any principal type (line 2). */
export const INVALID_POLICY = `// é: a multi-byte character before the error
permit (principal, action, resource) when { principal.nope == 1 };
`;

/** Test cases for CLEAN_POLICIES: all pass. */
export const PASSING_TESTS = `# Cases that hold for the clean fixture.
now: 2026-06-01T09:00:00Z
tests:
  - name: alice reads the wiki
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
    expect: allow
    determining: [sales-read-internal]

  - name: bob is not in sales
    request:
      principal: User::"bob"
      action: read
      resource: Dataset::"wiki"
    expect: deny

  - name: a high risk score denies alice
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
      context: { risk: { score: 95, signals: [] } }
    expect: deny
    determining: [deny-high-risk]

  - name: an unknown action is refused with its code
    request:
      principal: { type: User, id: alice }
      action: fly
      resource: { type: Dataset, id: wiki }
    expect: error
    code: ERR_UNKNOWN_ACTION
`;

/** Test cases with three failures: wrong outcome, a missing determining policy, a refused request. */
export const FAILING_TESTS = `tests:
  - name: passes
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
    expect: allow

  - name: bob reads the wiki
    request:
      principal: { type: User, id: bob }
      action: read
      resource: { type: Dataset, id: wiki }
    expect: allow

  - name: names the wrong policy
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
    expect: allow
    determining: [deny-high-risk]

  - name: context that does not match the schema
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
      context: { step: one }
    expect: allow
`;

/** A test file with a shape error in its second case (`expect: maybe`, line 10). */
export const INVALID_TESTS = `tests:
  - name: fine
    request:
      principal: { type: User, id: alice }
      action: read
      resource: { type: Dataset, id: wiki }
    expect: allow
  - name: not an outcome
    request: { principal: { type: User, id: alice }, action: read, resource: { type: Dataset, id: wiki } }
    expect: maybe
`;
