/**
 * The policy test runner behind `mandate policy test`: runs every case of every `*.test.yaml` of a policy
 * directory through the same decision point the server uses, at a fixed time, and compares the outcome
 * (and the determining policies) with the expectation. Plays the role `opa test` plays for Rego.
 *
 * It takes the directory's contents and returns results; it prints nothing and reads no clock, so the
 * same cases give the same results everywhere. See docs/policy-testing.md for the file format.
 */
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import { fixedClock } from '../core/ports.ts';
import { isMandateError } from '../core/errors.ts';
import type { Decision, DecisionOutcome } from '../core/decision.ts';
import { entityKey } from './entities.ts';
import { AuthorizationRequestInput, EntityJsonInput } from './request-input.ts';
import { PolicyEngine } from './policy-engine.ts';
import type { PolicyDirectory } from './read-policy-directory.ts';
import type { AuthorizationRequest, EntityJson, PolicySourceFile } from './types.ts';

/** The time every case runs at unless its file or the case sets `now`: a Monday, mid-day UTC. */
export const DEFAULT_TEST_TIME = '2026-03-02T12:00:00Z';

/** What a case may expect: a decision, or that Mandate refuses the request as malformed (`error` + `code`). */
export type TestExpectation = DecisionOutcome | 'error';

/** The outcome of one case. */
export interface PolicyTestResult {
  /** Test file, relative to the policy directory. */
  file: string;
  /** 1-based line of the case in its file. */
  line: number;
  name: string;
  passed: boolean;
  expected: TestExpectation;
  /** For `expect: error`: the error code expected. */
  expectedCode?: string;
  /** The decision, or `error` when Mandate refused the request. */
  actual: TestExpectation;
  /** For `actual: error`: the error's code and message. */
  errorCode?: string;
  errorMessage?: string;
  /** Why the case failed, in one sentence (absent when it passed). */
  failure?: string;
  /** Ids of the decision's determining policies, over every principal of the chain. */
  determining: string[];
  /** Ids from `determining:` that were expected but not among them. */
  missingDetermining: string[];
  /** The decision's reasons and evaluation errors (empty when the request was refused). */
  reasons: string[];
  errors: Decision['errors'];
}

/** A test file that could not be read as a test file; none of its cases ran. */
export interface PolicyTestFileError {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

/** Everything one run found. */
export interface PolicyTestReport {
  /** Version of the policy set the cases ran against. */
  policySetVersion: string;
  results: PolicyTestResult[];
  invalidFiles: PolicyTestFileError[];
  passed: number;
  failed: number;
  total: number;
}

/** Options of `runPolicyTests`. */
export interface RunPolicyTestsOptions {
  /** Runs only the cases for which this returns true (e.g. a `--run` pattern over file and name). */
  filter?: (file: string, name: string) => boolean;
}

const IsoTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/, 'expected an ISO 8601 date-time with a time zone, e.g. 2026-03-02T12:00:00Z')
  .refine((s) => !Number.isNaN(Date.parse(s)), 'not a valid date-time');

const CaseInput = z
  .object({
    name: z.string().min(1),
    request: AuthorizationRequestInput,
    expect: z.enum(['allow', 'deny', 'approval_required', 'error']),
    code: z.string().regex(/^ERR_[A-Z0-9_]+$/, 'expected an error code like ERR_INVALID_CONTEXT').optional(),
    determining: z.array(z.string().min(1)).optional(),
    now: IsoTime.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.expect === 'error' && c.code === undefined) ctx.addIssue({ code: 'custom', path: ['code'], message: 'expect: error needs the error code the request must fail with, e.g. code: ERR_INVALID_CONTEXT' });
    if (c.expect !== 'error' && c.code !== undefined) ctx.addIssue({ code: 'custom', path: ['code'], message: 'code is only meaningful with expect: error' });
    if (c.expect === 'error' && c.determining !== undefined) ctx.addIssue({ code: 'custom', path: ['determining'], message: 'a refused request has no determining policies' });
  });

const TestFileInput = z
  .object({
    entities: z.array(EntityJsonInput).optional(),
    now: IsoTime.optional(),
    tests: z.array(CaseInput),
  })
  .strict();

type TestFile = z.infer<typeof TestFileInput>;
type EntityIn = z.infer<typeof EntityJsonInput>;

/** A test file read and checked, with the line of each case. */
interface ParsedTestFile {
  file: string;
  content: TestFile;
  caseLines: number[];
}

/**
 * Parses one test file. Returns the file's error (with line and column, naming the case) when it is not
 * valid YAML or does not have the test file shape.
 */
export function parsePolicyTestFile(source: PolicySourceFile): { ok: true; parsed: ParsedTestFile } | { ok: false; error: PolicyTestFileError } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source.text, { lineCounter, prettyErrors: false });
  const firstError = doc.errors[0];
  if (firstError) {
    const pos = firstError.linePos?.[0];
    return { ok: false, error: { file: source.path, ...(pos ? { line: pos.line, column: pos.col } : {}), message: `not valid YAML: ${firstError.message.split('\n')[0]}` } };
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  const lineOf = (path: readonly PropertyKey[]): { line: number; column: number } | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
      if (isNode(node) && node.range) {
        const p = lineCounter.linePos(node.range[0]);
        return { line: p.line, column: p.col };
      }
    }
    return undefined;
  };
  const result = TestFileInput.safeParse(raw ?? {});
  if (!result.success) {
    // An unknown key is usually a typo (`expected:`) and explains the missing key next to it: report it first.
    const issues = [...result.error.issues].sort((a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'));
    const issue = issues[0];
    const path = issue?.path ?? [];
    const caseIndex = path[0] === 'tests' && typeof path[1] === 'number' ? path[1] : undefined;
    const caseName = caseIndex === undefined ? undefined : (raw as { tests?: Array<{ name?: unknown }> }).tests?.[caseIndex]?.name;
    const where = caseIndex === undefined ? '' : `case #${caseIndex + 1}${typeof caseName === 'string' ? ` ${JSON.stringify(caseName)}` : ''}: `;
    const describe = (i: (typeof issues)[number]) => `${i.path.length > 0 ? `${formatPath(i.path)}: ` : ''}${i.message}`;
    const second = issues[1];
    const more = issues.length > 2 ? ` (and ${issues.length - 2} more problem${issues.length === 3 ? '' : 's'})` : '';
    const message = `${where}${issue ? describe(issue) : 'invalid test file'}${second ? `; ${describe(second)}` : ''}${more}`;
    return { ok: false, error: { file: source.path, ...lineOf(path), message } };
  }
  const names = new Map<string, number>();
  for (const [i, c] of result.data.tests.entries()) {
    const before = names.get(c.name);
    if (before !== undefined) {
      return { ok: false, error: { file: source.path, ...lineOf(['tests', i, 'name']), message: `case #${i + 1}: the name ${JSON.stringify(c.name)} is already used by case #${before + 1}; names identify cases in reports` } };
    }
    names.set(c.name, i);
  }
  const caseLines = result.data.tests.map((_, i) => lineOf(['tests', i])?.line ?? 1);
  return { ok: true, parsed: { file: source.path, content: result.data, caseLines } };
}

/**
 * Runs the test files of a policy directory against its policy set. Throws `PolicySetInvalidError` when
 * the set does not load (no case can mean anything then); an invalid test file is reported in
 * `invalidFiles` and the other files still run.
 */
export function runPolicyTests(
  contents: Pick<PolicyDirectory, 'schema' | 'policies' | 'entities' | 'entitiesFile' | 'tests'>,
  options: RunPolicyTestsOptions = {},
): PolicyTestReport {
  const clock = fixedClock(Date.parse(DEFAULT_TEST_TIME));
  // Decision ids are irrelevant to a test and would make two runs differ.
  let counter = 0;
  const engine = new PolicyEngine({ clock, ids: { next: () => `test-${++counter}` } });
  const info = engine.activate(contents);
  const knownPolicyIds = new Set(info.policies.map((p) => p.id));

  const results: PolicyTestResult[] = [];
  const invalidFiles: PolicyTestFileError[] = [];
  for (const source of contents.tests) {
    const parsed = parsePolicyTestFile(source);
    if (!parsed.ok) {
      invalidFiles.push(parsed.error);
      continue;
    }
    const { content, caseLines } = parsed.parsed;
    content.tests.forEach((c, index) => {
      if (options.filter && !options.filter(source.path, c.name)) return;
      clock.set(Date.parse(c.now ?? content.now ?? DEFAULT_TEST_TIME));
      results.push(runCase(engine, knownPolicyIds, source.path, caseLines[index] ?? 1, c, content.entities ?? []));
    });
  }
  const passed = results.filter((r) => r.passed).length;
  return { policySetVersion: info.version, results, invalidFiles, passed, failed: results.length - passed, total: results.length };
}

function runCase(
  engine: PolicyEngine,
  knownPolicyIds: ReadonlySet<string>,
  file: string,
  line: number,
  c: TestFile['tests'][number],
  fileEntities: readonly EntityIn[],
): PolicyTestResult {
  const base = {
    file,
    line,
    name: c.name,
    expected: c.expect,
    ...(c.code ? { expectedCode: c.code } : {}),
  };
  // The case's entities replace the file's for the same uid; the engine refuses an entity described twice.
  const entities = new Map<string, EntityJson>();
  for (const e of [...fileEntities, ...(c.request.entities ?? [])]) {
    entities.set(entityKey(e.uid), { uid: e.uid, attrs: e.attrs ?? {}, parents: e.parents ?? [], ...(e.tags ? { tags: e.tags } : {}) });
  }
  const request: AuthorizationRequest = {
    principal: c.request.principal,
    action: c.request.action,
    resource: c.request.resource,
    ...(c.request.context ? { context: c.request.context } : {}),
    ...(c.request.delegation ? { delegation: c.request.delegation } : {}),
    ...(entities.size > 0 ? { entities: [...entities.values()] } : {}),
  };

  let decision: Decision;
  try {
    decision = engine.decide(request);
  } catch (err) {
    const errorCode = isMandateError(err) ? err.code : 'ERR_INTERNAL';
    const errorMessage = isMandateError(err) ? err.description : err instanceof Error ? err.message : String(err);
    const passed = c.expect === 'error' && c.code === errorCode;
    return {
      ...base,
      passed,
      actual: 'error',
      errorCode,
      errorMessage,
      ...(passed ? {} : { failure: c.expect === 'error' ? `expected error ${c.code}, got error ${errorCode}` : `expected ${c.expect}, but the request was refused with ${errorCode}` }),
      determining: [],
      missingDetermining: [],
      reasons: [],
      errors: [],
    };
  }

  const determining = [...new Set(decision.principals.flatMap((p) => p.determining.map((d) => d.id)))];
  const expectedIds = c.determining ?? [];
  const missingDetermining = expectedIds.filter((id) => !determining.includes(id));
  const unknownIds = expectedIds.filter((id) => !knownPolicyIds.has(id));
  let failure: string | undefined;
  if (c.expect === 'error') failure = `expected error ${c.code}, got ${decision.decision}`;
  else if (decision.decision !== c.expect) failure = `expected ${c.expect}, got ${decision.decision}`;
  else if (unknownIds.length > 0) failure = `determining names ${unknownIds.map((id) => JSON.stringify(id)).join(', ')}, which ${unknownIds.length === 1 ? 'is not a policy id' : 'are not policy ids'} of this set`;
  else if (missingDetermining.length > 0) failure = `${decision.decision} as expected, but ${missingDetermining.join(', ')} ${missingDetermining.length === 1 ? 'was' : 'were'} not among the determining policies (${determining.join(', ') || 'none'})`;
  return {
    ...base,
    passed: failure === undefined,
    actual: decision.decision,
    ...(failure ? { failure } : {}),
    determining,
    missingDetermining,
    reasons: decision.reasons,
    errors: decision.errors,
  };
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
}
