/**
 * DEMO ONLY — `npm run demo:agent`: a scripted agent against a running demo (`npm start`), built the way a real
 * one is: Mandate's SDK (`MandateClient`, `startTask`) and a stock MCP client (`@modelcontextprotocol/sdk`) with
 * `task.mcpAuthProvider()` and `fetch: task.fetch` (the demo agents are registered `dpop: required`).
 *
 * alice's autonomous sales-outreach agent runs the lead-followup workflow and calls Acme's tools through
 * Mandate's gateway (`/mcp/crm`), which decides every call against the task and the example policies.
 *
 * First task: it lists the tools (only what the task may use is shown); an allowed read, `crm.search` (the
 * restricted record in the answer is removed); `crm.get_record` of that record: refused; an out-of-plan tool,
 * `payments.refund`: denied before it reaches the server — and, as lead-followup says `onViolation: revoke`,
 * Mandate revokes the task, so its next call fails.
 *
 * Second task: `email.send` to an outside domain is held for a person's approval; carol (an approver) approves —
 * the script does it for her, in real life a person does; the exact call, repeated with the approval id, is sent;
 * the agent ends the task; the next call fails, in the SDK and at the gateway.
 *
 * Each step is printed with its decision and reason. Reads the running demo's `demo.json` (under
 * MANDATE_DATA_DIR, default .mandate/demo/): URLs and the agent's key file path, no secrets.
 */
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { MandateClient, TaskEndedError, type CryptoKeyPair, type Task } from '../src/sdk/index.ts';
import { readDemoAgentKey } from '../src/demo/demo-agents.ts';
import { demoUserLogin } from '../src/demo/demo-idp.ts';
import { readDemoInfo, type DemoInfoV1 } from '../src/demo/demo-info.ts';
import { DEMO_CALLER_META_KEY } from '../src/demo/demo-mcp-server.ts';

/** The `_meta` key that presents an approval for a repeated call (src/gateway/mcp-authorize.ts). */
const APPROVAL_META_KEY = 'io.mandate/approval_id';
const AGENT = 'sales-outreach';
const USER = 'alice';
const WORKFLOW = 'lead-followup';
const SCOPE = 'crm.search crm.read';

/** A decision as the story prints it. */
export type DemoDecision = 'allow' | 'deny' | 'approval_required' | 'approved' | 'ended';

/** One step of the story. */
export interface DemoAgentStep {
  /**
   * A stable id for tests: `list`, `search`, `restricted-record`, `out-of-plan`, `after-violation` (first task);
   * `email`, `approve`, `email-approved`, `end`, `after-end`, `after-end-gateway` (second task).
   */
  readonly id: string;
  readonly title: string;
  readonly decision: DemoDecision;
  /** Why, in the gateway's or Mandate's words (a reason code where there is one). */
  readonly reason: string;
  /** What else the step showed (tool names, record ids, the approval id…). */
  readonly detail: Record<string, unknown>;
}

/** What the story did, for the test. */
export interface DemoAgentReport {
  /** The first task (revoked for its out-of-plan call) and the second (ended by the agent). */
  readonly taskIds: readonly [string, string];
  readonly steps: DemoAgentStep[];
}

/** Where the story prints. */
export interface DemoAgentOutput {
  say(line: string): void;
}

interface CallOutcome {
  ok: boolean;
  result?: { structuredContent?: unknown; content?: unknown; _meta?: Record<string, unknown> };
  error?: { code: number; message: string; reasonCode: string; data: Record<string, unknown> };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function call(client: Client, name: string, args: Record<string, unknown>, meta?: Record<string, unknown>): Promise<CallOutcome> {
  try {
    const result = await client.callTool({ name, arguments: args, ...(meta === undefined ? {} : { _meta: meta }) });
    return { ok: result.isError !== true, result: result as CallOutcome['result'] };
  } catch (err) {
    if (err instanceof McpError) {
      const data = isObject(err.data) ? err.data : {};
      return { ok: false, error: { code: err.code, message: err.message, reasonCode: typeof data.reason_code === 'string' ? data.reason_code : `json-rpc ${err.code}`, data } };
    }
    throw err;
  }
}

/** The claims the demo MCP server says it received (from the tool result's `_meta`), one line. */
function upstreamSaw(outcome: CallOutcome): string | undefined {
  const saw = outcome.result?._meta?.[DEMO_CALLER_META_KEY];
  if (!isObject(saw)) return undefined;
  return `sub=${String(saw.sub)} act=${JSON.stringify(saw.act)} aud=${String(saw.aud)} client_id=${String(saw.client_id)}`;
}

/** A DPoP proof (RFC 9449 §4.2) for presenting an access token by hand. */
async function dpopProof(keys: CryptoKeyPair, publicJwk: JWK, method: string, url: string, accessToken: string, nonce?: string): Promise<string> {
  const ath = createHash('sha256').update(accessToken).digest('base64url');
  return new SignJWT({ htm: method, htu: url, ath, jti: randomUUID(), ...(nonce === undefined ? {} : { nonce }) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk })
    .setIssuedAt()
    .sign(keys.privateKey);
}

/**
 * Runs the story against a running demo and prints it. Resolves to every step's decision.
 * @throws Error when the demo has no gateway (an older demo.json) or a step's answer is not one the story knows.
 */
export async function runDemoAgent(info: DemoInfoV1, output: DemoAgentOutput): Promise<DemoAgentReport> {
  const say = output.say;
  const gateway = info.gateway;
  if (gateway === undefined) throw new Error('this demo has no gateway: restart it (npm start) with this version');
  const agent = info.agents.find((a) => a.id === AGENT);
  if (agent === undefined) throw new Error(`the demo has no agent ${AGENT}`);
  const steps: DemoAgentStep[] = [];
  const record = (step: DemoAgentStep) => {
    steps.push(step);
    say(`  → ${step.decision.toUpperCase()}: ${step.reason}`);
    say('');
  };
  const heading = (n: number, title: string) => say(`${n}. ${title}`);

  say('');
  say(`DEMO ONLY — ${agent.name}, acting for ${USER} through Mandate's gateway at ${gateway.url}`);
  say('');

  // The user logs in once; each task is an RFC 8693 exchange of her token with RFC 9396 authorization details.
  const { accessToken: userToken } = await demoUserLogin(info.idp.issuer, USER, { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });
  // The DPoP key pair is the script's own so that the last step can show the gateway refusing an old mandate with a
  // valid proof; an agent would normally let each task make its own, non-extractable pair.
  const dpop = (await generateKeyPair('ES256')) as CryptoKeyPair;
  const dpopPublicJwk = await exportJWK(dpop.publicKey);
  const mandate = new MandateClient({ issuer: info.mandate.issuer, clientId: agent.id, jwk: await readDemoAgentKey(agent.privateJwkFile), dpop });
  // No `resources` map: the gateway's URL is its resource identifier, which the task uses.
  const open = async (purpose: string): Promise<{ task: Task; client: Client }> => {
    const task = await mandate.startTask({ userToken, workflow: WORKFLOW, purpose, resource: gateway.resource, scope: SCOPE });
    const held = await task.mandate(gateway.resource);
    say(`   task ${task.id} ("${purpose}"); mandate for ${gateway.resource}: ${held.tokenType}, scope "${held.scope}", DPoP-bound (cnf.jkt ${String(task.dpopJkt)})`);
    const client = new Client({ name: AGENT, version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { authProvider: task.mcpAuthProvider(gateway.resource), fetch: task.fetch }));
    return { task, client };
  };
  const afterEnd = async (client: Client, id: string, title: string) => {
    let outcome: string;
    try {
      await client.callTool({ name: 'crm.search', arguments: { query: 'ACME' } });
      outcome = 'allowed';
    } catch (err) {
      outcome = err instanceof TaskEndedError ? `${err.code} (ended by ${err.endedBy}): the SDK hands out no mandate of an ended task` : err instanceof Error ? err.message : String(err);
    }
    record({ id, title, decision: outcome === 'allowed' ? 'allow' : 'deny', reason: outcome, detail: {} });
  };
  let n = 0;

  heading(n++, `${USER} logs in at the demo IdP; ${AGENT} opens a ${WORKFLOW} task for her (workflow: crm.search, crm.update, email.send; data up to confidential)`);
  const first = await open('follow up the ACME Rockets lead');
  say('');
  const firstTaskId = first.task.id;
  try {
    const { client } = first;
    // The listing shows only what this task may use.
    heading(n++, 'tools/list — the demo MCP server has five tools; the agent sees those its task may use');
    const listed = (await client.listTools()).tools.map((t) => t.name).sort();
    const hidden = ['crm.get_record', 'crm.search', 'email.send', 'payments.refund', 'tickets.create'].filter((t) => !listed.includes(t));
    say(`   visible: ${listed.join(', ')}`);
    say(`   hidden:  ${hidden.join(', ')}`);
    const why: Record<string, string> = {
      'payments.refund': 'payments.refund: not in the lead-followup workflow',
      'tickets.create': 'tickets.create: not configured at the gateway',
      // A listing is decided as a dry run, without arguments; users may send e-mail only to a named domain.
      'email.send': 'email.send: listings are decided without arguments, and staff-send-email needs a recipient domain (the call itself is decided on its arguments)',
    };
    record({ id: 'list', title: 'tools/list', decision: 'allow', reason: hidden.map((t) => why[t] ?? `${t}: not allowed in this task`).join('; '), detail: { visible: listed, hidden } });

    // An allowed read; the restricted record in the answer is removed.
    heading(n++, 'crm.search {"query":"ACME"} — a read tool of the workflow');
    const search = await call(client, 'crm.search', { query: 'ACME' });
    if (!search.ok) throw new Error(`crm.search was expected to be allowed: ${search.error?.reasonCode ?? 'tool error'}`);
    const records = isObject(search.result?.structuredContent) && Array.isArray(search.result.structuredContent.records) ? (search.result.structuredContent.records as Array<{ id: string; sensitivity: string }>) : [];
    for (const r of records) say(`   ${r.id}  (${r.sensitivity})`);
    const saw = upstreamSaw(search);
    if (saw !== undefined) say(`   the MCP server got a token Mandate minted for it, not the agent's mandate: ${saw}`);
    const shown = records.map((r) => r.id);
    record({
      id: 'search',
      title: 'crm.search',
      decision: 'allow',
      reason: `${shown.length} records; crm-note-9001 (restricted) ${shown.includes('crm-note-9001') ? 'was NOT removed' : 'removed by the gateway: above the workflow\'s ceiling (confidential)'}`,
      detail: { records: shown, upstreamSaw: search.result?._meta?.[DEMO_CALLER_META_KEY] },
    });

    // Reading the restricted record itself.
    heading(n++, 'crm.get_record {"recordId":"crm-note-9001"} — the restricted legal note');
    const restricted = await call(client, 'crm.get_record', { recordId: 'crm-note-9001' });
    record({
      id: 'restricted-record',
      title: 'crm.get_record (restricted)',
      decision: restricted.ok ? 'allow' : 'deny',
      reason: restricted.ok ? 'the record was returned' : `${restricted.error?.reasonCode}: ${restricted.error?.message}`,
      detail: { reasonCode: restricted.error?.reasonCode },
    });

    // Out of plan: refused, and lead-followup's `onViolation: revoke` ends the task.
    heading(n++, 'payments.refund {"ticketId":"T-42","amount":500,"currency":"EUR"} — not in the lead-followup workflow');
    const refund = await call(client, 'payments.refund', { ticketId: 'T-42', amount: 500, currency: 'EUR' });
    record({
      id: 'out-of-plan',
      title: 'payments.refund',
      decision: refund.ok ? 'allow' : 'deny',
      reason: refund.ok ? 'refunded' : `${refund.error?.reasonCode}: ${refund.error?.message} — it never reached the MCP server, and lead-followup says onViolation: revoke, so Mandate revoked the task`,
      detail: { reasonCode: refund.error?.reasonCode },
    });
    heading(n++, 'crm.search again, in the revoked task');
    await afterEnd(client, 'after-violation', 'crm.search after the violation');
  } finally {
    await first.client.close().catch(() => undefined);
    if (!first.task.ended) await first.task.end().catch(() => undefined);
  }

  heading(n++, `${AGENT} starts over, within its plan: a new ${WORKFLOW} task`);
  const second = await open('e-mail the ACME Rockets contact');
  say('');
  const secondTaskId = second.task.id;
  try {
    const { task, client } = second;
    // An external effect waits for a person.
    const email = { recipient: 'jane@globex.example', recipientDomain: 'globex.example', subject: 'Your rocket skates', body: 'Hi Jane, following up on your order of 40 rocket skates.' };
    heading(n++, `email.send to ${email.recipient} — e-mail outside acme.example`);
    const pendingCall = await call(client, 'email.send', email);
    const approval = isObject(pendingCall.error?.data.approval) ? pendingCall.error.data.approval : undefined;
    const approvalId = typeof approval?.id === 'string' ? approval.id : undefined;
    if (approvalId !== undefined) say(`   pending approval ${approvalId} (expires ${String(approval?.expires_at)}); the e-mail has not gone out`);
    record({
      id: 'email',
      title: 'email.send (outside)',
      decision: pendingCall.ok ? 'allow' : pendingCall.error?.reasonCode === 'approval_required' ? 'approval_required' : 'deny',
      reason: pendingCall.ok ? 'sent without approval' : pendingCall.error?.reasonCode === 'approval_required' ? 'approval_required: an autonomous agent\'s external effects wait for a person (policy autonomous-agents-effects-need-approval)' : `${pendingCall.error?.reasonCode}: ${pendingCall.error?.message}`,
      detail: { approvalId },
    });

    if (approvalId !== undefined) {
      // A person approves.
      heading(n++, `carol approves ${approvalId}`);
      say('   DEMO: in real life carol, a person with the approver role, reviews this in her own tool and decides.');
      say('   The script logs her in at the demo IdP and approves in her name, only to move the story along.');
      const { accessToken: carolToken } = await demoUserLogin(info.idp.issuer, 'carol', { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });
      const auth = { authorization: `Bearer ${carolToken}` };
      const inbox = (await (await fetch(`${info.mandate.url}/approvals/v1?status=pending`, { headers: auth })).json()) as { approvals?: Array<{ id: string; summary?: string }> };
      const mine = inbox.approvals?.find((a) => a.id === approvalId);
      if (mine?.summary !== undefined) say(`   carol's inbox: ${mine.summary}`);
      const decided = await fetch(`${info.mandate.url}/approvals/v1/${encodeURIComponent(approvalId)}/decision`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'approve', reason: 'Jane asked for this follow-up' }),
      });
      const body = (await decided.json()) as Record<string, unknown>;
      record({
        id: 'approve',
        title: 'carol approves',
        decision: decided.status === 200 && body.status === 'approved' ? 'approved' : 'deny',
        reason: decided.status === 200 ? `status ${String(body.status)}, decided by ${String(body.decided_by)}` : `HTTP ${decided.status}: ${JSON.stringify(body).slice(0, 300)}`,
        detail: { status: decided.status, approvalStatus: body.status },
      });

      // The exact call, repeated with the approval id.
      heading(n++, `email.send again, unchanged, with _meta["${APPROVAL_META_KEY}"] = ${approvalId}`);
      const sent = await call(client, 'email.send', email, { [APPROVAL_META_KEY]: approvalId });
      const sentBody = isObject(sent.result?.structuredContent) ? sent.result.structuredContent : {};
      record({
        id: 'email-approved',
        title: 'email.send (approved)',
        decision: sent.ok ? 'allow' : 'deny',
        reason: sent.ok ? `approved by carol: sent as ${String(sentBody.messageId)} (the approval is used up: another e-mail needs another)` : `${sent.error?.reasonCode}: ${sent.error?.message}`,
        detail: { messageId: sentBody.messageId, reasonCode: sent.error?.reasonCode },
      });
    }

    // The task ends.
    const oldMandate = await task.token(gateway.resource);
    heading(n++, 'the agent ends the task');
    await task.end();
    record({ id: 'end', title: 'task.end()', decision: 'ended', reason: 'the task\'s grant is revoked, and with it every mandate it holds', detail: {} });

    // The next call fails: in the SDK, and at the gateway for the old mandate presented with a valid proof.
    heading(n++, 'crm.search again, after the end');
    await afterEnd(client, 'after-end', 'crm.search after the end');

    say('   …and a copy of the old mandate, presented straight to the gateway with a valid DPoP proof:');
    const rpc = JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'crm.search', arguments: { query: 'ACME' } } });
    const send = async (nonce?: string) =>
      fetch(gateway.url, {
        method: 'POST',
        headers: { authorization: `DPoP ${oldMandate}`, dpop: await dpopProof(dpop, dpopPublicJwk, 'POST', gateway.url, oldMandate, nonce), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: rpc,
      });
    let replay = await send();
    const nonce = replay.headers.get('dpop-nonce');
    if (replay.status === 401 && nonce !== null && /use_dpop_nonce/.test(replay.headers.get('www-authenticate') ?? '')) replay = await send(nonce);
    await replay.body?.cancel();
    const challenge = replay.headers.get('www-authenticate') ?? '';
    const error = /error="([^"]+)"/.exec(challenge)?.[1];
    const description = /error_description="([^"]+)"/.exec(challenge)?.[1];
    record({
      id: 'after-end-gateway',
      title: 'the old mandate at the gateway',
      decision: replay.status === 200 ? 'allow' : 'deny',
      reason: `HTTP ${replay.status}${error === undefined ? '' : ` ${error}`}${description === undefined ? '' : `: ${description}`}`,
      detail: { status: replay.status },
    });
  } finally {
    await second.client.close().catch(() => undefined);
    if (!second.task.ended) await second.task.end().catch(() => undefined);
  }
  return { taskIds: [firstTaskId, secondTaskId], steps };
}

async function main(env: NodeJS.ProcessEnv): Promise<number> {
  const info = await readDemoInfo(env.MANDATE_DATA_DIR ? env.MANDATE_DATA_DIR : join(process.cwd(), '.mandate', 'demo'));
  try {
    await fetch(`${info.mandate.url}/readyz`);
  } catch (cause) {
    throw new Error(`no demo answers at ${info.mandate.url}; start it with npm start (demo.json is from pid ${info.pid})`, { cause });
  }
  await runDemoAgent(info, { say: (line) => console.log(line) });
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.env).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`demo:agent: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
