/**
 * `mandate policy eval`: decides one request against a policy directory, with the same engine and the
 * same delegation semantics as the server, and explains the decision per principal of the chain.
 */
import { readFile } from 'node:fs/promises';
import { PolicySetInvalidError } from '../core/errors.ts';
import { formatEntityRef, type Decision, type EntityRef } from '../core/decision.ts';
import { systemClock, fixedClock, type Clock } from '../core/ports.ts';
import { parseEntityRef } from '../policy/parse-entity-ref.ts';
import { PolicyEngine } from '../policy/policy-engine.ts';
import { readPolicyDirectory } from '../policy/read-policy-directory.ts';
import { AuthorizationRequestInput } from '../policy/request-input.ts';
import type { AuthorizationRequest, EntityJson } from '../policy/types.ts';
import { CliUsageError, EXIT_FAILURE, EXIT_OK, type CliArgs, type CliCommand, type CliIo } from './command.ts';
import { diagnosticsOf, oneLine, printRefusal, resolvePath } from './policy-directory-io.ts';

const REQUEST_FLAGS = ['principal', 'action', 'resource', 'actor', 'context', 'entities'] as const;

/** The `policy eval` command. */
export const policyEvalCommand: CliCommand = {
  summary: 'Decide one request and explain the decision',
  usage: `--principal 'User::"alice"' --action read --resource 'Dataset::"wiki"' [--actor 'Agent::"x"']... [options]
       mandate policy eval --request FILE|- [options]`,
  description: `Decides the request against the policy directory exactly as the server would: one Cedar request per
principal of [principal, ...actors], allow only if every one allows. Prints the outcome, each principal's
decision with the determining policies (file:line), evaluation errors and reasons.

Entities are written as Cedar writes them, Type::"id". --request takes a JSON AuthorizationRequest
({ principal, action, resource, context?, delegation?: { actors }, entities? }) from a file, or from
standard input with -.`,
  positionals: [],
  options: {
    dir: { type: 'string', placeholder: 'DIR', description: 'Policy directory (default: policies)' },
    principal: { type: 'string', placeholder: 'REF', description: 'Principal on whose authority the request is made, e.g. User::"alice"' },
    action: { type: 'string', placeholder: 'ACTION', description: 'Action id (read) or Action::"read"' },
    resource: { type: 'string', placeholder: 'REF', description: 'Resource, e.g. Dataset::"wiki"' },
    actor: { type: 'string', multiple: true, placeholder: 'REF', description: 'An actor acting for the principal, first delegate first' },
    context: { type: 'string', placeholder: 'JSON', description: 'Request context as a JSON object (delegation and time are set by Mandate)' },
    entities: { type: 'string', placeholder: 'JSON', description: 'Extra entities as a JSON list (Cedar entity format)' },
    request: { type: 'string', placeholder: 'FILE|-', description: 'Read the whole request as JSON from FILE or standard input' },
    now: { type: 'string', placeholder: 'TIME', description: 'Evaluate at this ISO 8601 time instead of now (context.time.now)' },
    json: { type: 'boolean', description: 'Print the Decision as JSON' },
  },
  exitCodes: [
    '0  allow',
    '1  deny or approval_required, a request Mandate refuses (printed with its code), or a set that does not load',
    '2  usage error (unknown option, malformed Type::"id", invalid JSON)',
  ],
  examples: [
    `mandate policy eval --dir examples/policies --principal 'User::"alice"' --action read --resource 'Dataset::"crm"'`,
    `mandate policy eval --dir examples/policies --principal 'User::"bob"' --actor 'Agent::"triage-bot"' --action trigger --resource 'Tool::"payments.refund"' --context '{"task": {"type": "Task", "id": "task-2001"}, "step": 2, "args": {"amount": 40}}'`,
    `echo '{"principal": "User::\\"alice\\"", "action": "read", "resource": "Dataset::\\"wiki\\""}' | mandate policy eval --dir examples/policies --request -`,
  ],
  async run(args, io) {
    const dir = typeof args.values.dir === 'string' ? args.values.dir : 'policies';
    const request = await buildRequest(args, io);
    const clock = clockFrom(args.values.now);
    const engine = new PolicyEngine({ clock });
    try {
      engine.activate(await readPolicyDirectory(resolvePath(io, dir)));
    } catch (err) {
      if (!(err instanceof PolicySetInvalidError)) throw err;
      printRefusal(io, dir, diagnosticsOf(err));
      return EXIT_FAILURE;
    }
    // A request the engine refuses (unknown type, context not matching the schema) propagates as a
    // MandateError and is printed as `CODE: message` with exit status 1.
    const decision: Decision = engine.decide(request);
    if (args.values.json) io.stdout(`${JSON.stringify(decision, null, 2)}\n`);
    else io.stdout(formatDecision(request, decision));
    return decision.decision === 'allow' ? EXIT_OK : EXIT_FAILURE;
  },
};

async function buildRequest(args: CliArgs, io: CliIo): Promise<AuthorizationRequest> {
  const v = args.values;
  if (typeof v.request === 'string') {
    const conflicting = REQUEST_FLAGS.filter((f) => v[f] !== undefined);
    if (conflicting.length > 0) throw new CliUsageError(`--request gives the whole request; do not combine it with ${conflicting.map((f) => `--${f}`).join(', ')}`);
    const text = v.request === '-' ? await io.readStdin() : await readFile(resolvePath(io, v.request), 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliUsageError(`cannot read --request ${v.request}: ${err.code ?? err.message}`);
    });
    const parsed = AuthorizationRequestInput.safeParse(parseJson(text, '--request'));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new CliUsageError(`--request: ${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message ?? 'not an authorization request'}`);
    }
    const r = parsed.data;
    return {
      principal: r.principal,
      action: r.action,
      resource: r.resource,
      ...(r.context ? { context: r.context } : {}),
      ...(r.delegation ? { delegation: r.delegation } : {}),
      ...(r.entities ? { entities: r.entities.map((e) => ({ uid: e.uid, attrs: e.attrs ?? {}, parents: e.parents ?? [], ...(e.tags ? { tags: e.tags } : {}) })) } : {}),
    };
  }
  const missing = (['principal', 'action', 'resource'] as const).filter((f) => typeof v[f] !== 'string');
  if (missing.length > 0) throw new CliUsageError(`missing ${missing.map((f) => `--${f}`).join(', ')} (or give the whole request with --request FILE|-)`);
  const principal = ref(v.principal as string, '--principal');
  const resource = ref(v.resource as string, '--resource');
  const action = actionId(v.action as string);
  const actors = (Array.isArray(v.actor) ? v.actor : []).map((a) => ref(a, '--actor'));
  const context = v.context === undefined ? undefined : parseJson(String(v.context), '--context');
  if (context !== undefined && (typeof context !== 'object' || context === null || Array.isArray(context))) throw new CliUsageError('--context must be a JSON object');
  const entities = v.entities === undefined ? undefined : parseJson(String(v.entities), '--entities');
  if (entities !== undefined && !Array.isArray(entities)) throw new CliUsageError('--entities must be a JSON list of entities ({ uid, attrs, parents })');
  return {
    principal,
    action,
    resource,
    ...(context ? { context: context as Record<string, unknown> } : {}),
    ...(actors.length > 0 ? { delegation: { actors } } : {}),
    ...(entities ? { entities: entities as EntityJson[] } : {}),
  };
}

function ref(text: string, flag: string): EntityRef {
  try {
    return parseEntityRef(text);
  } catch (err) {
    throw new CliUsageError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** `read` or `Action::"read"`: the action id. */
function actionId(text: string): string {
  if (!text.includes('::')) {
    if (!/^[^\s"]+$/.test(text)) throw new CliUsageError(`--action: ${JSON.stringify(text)} is not an action id; write read or Action::"read"`);
    return text;
  }
  const r = ref(text, '--action');
  if (r.type !== 'Action' && !r.type.endsWith('::Action')) throw new CliUsageError(`--action: ${text} is not an action; write read or Action::"read"`);
  return r.id;
}

function parseJson(text: string, flag: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`${flag} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function clockFrom(now: unknown): Clock {
  if (now === undefined) return systemClock;
  const ms = typeof now === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(now) ? Date.parse(now) : NaN;
  if (Number.isNaN(ms)) throw new CliUsageError(`--now ${JSON.stringify(now)} is not an ISO 8601 date-time (e.g. 2026-03-02T12:00:00Z)`);
  return fixedClock(ms);
}

/** Renders a decision for people: outcome, then one line per principal, then reasons and errors. */
export function formatDecision(request: AuthorizationRequest, d: Decision): string {
  const actors = request.delegation?.actors ?? [];
  const via = actors.length > 0 ? ` via ${actors.map(formatEntityRef).join(' → ')}` : '';
  const lines = [`${d.decision.toUpperCase()}: ${request.action} ${formatEntityRef(request.resource)} for ${formatEntityRef(request.principal)}${via}`];
  const width = Math.max(0, ...d.principals.map((p) => formatEntityRef(p.principal).length));
  const outcomeOf = (p: Decision['principals'][number]) => (p.decision === 'allow' && p.approvalRequired ? 'allow (approval required)' : p.decision);
  const outcomeWidth = Math.max(5, ...d.principals.map((p) => outcomeOf(p).length));
  for (const p of d.principals) {
    const who = formatEntityRef(p.principal).padEnd(width);
    const outcome = outcomeOf(p);
    const policies = p.determining.map((x) => `${x.effect} ${x.id}${x.source ? ` (${x.source})` : ''}`);
    const by = p.errors.length > 0 ? 'evaluation error' : policies.length > 0 ? policies.join(', ') : p.decision === 'deny' ? 'no policy permits this' : '';
    lines.push(`  ${who}  ${outcome.padEnd(outcomeWidth)}  ${by}`.trimEnd());
  }
  if (d.errors.length > 0) {
    lines.push('errors:');
    for (const e of d.errors) lines.push(`  ${e.principal} ${e.policyId}: ${oneLine(e.message)}`);
  }
  if (d.reasons.length > 0) {
    lines.push('reasons:');
    for (const r of d.reasons) lines.push(`  ${oneLine(r)}`);
  }
  lines.push(`policy set ${d.policySetVersion}, decision ${d.decisionId}`);
  return `${lines.join('\n')}\n`;
}
