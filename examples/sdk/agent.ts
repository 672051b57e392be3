/**
 * An agent built on `mandate/sdk`, against the running demo (`npm start`, then in another terminal
 * `node --import tsx examples/sdk/agent.ts`):
 *
 * 1. alice logs in at the demo IdP (DEMO ONLY: no browser, no password) → her access token;
 * 2. the sales-outreach agent opens a task of the lead-followup workflow for her → a DPoP-bound CRM mandate;
 * 3. it calls the CRM's MCP tool with a stock MCP SDK client, the task as its auth provider;
 * 4. it renews the mandate (as `token()` does by itself shortly before expiry);
 * 5. it ends the task: the next call fails with TaskEndedError.
 *
 * The demo's CRM is an identifier only, so a stand-in MCP server runs on 127.0.0.1 (demo-crm.ts) and the
 * client maps its origin to the CRM resource. Reads the demo's demo.json (URLs and key file paths, no secrets).
 */
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt } from 'jose';
import { MandateClient, MandateOAuthError, TaskEndedError } from '../../src/sdk/index.ts';
import { readDemoAgentKey } from '../../src/demo/demo-agents.ts';
import { demoUserLogin } from '../../src/demo/demo-idp.ts';
import { readDemoInfo } from '../../src/demo/demo-info.ts';
import { DEMO_CRM_RESOURCE, DEMO_WIKI_RESOURCE } from '../../src/demo/demo-resources.ts';
import { startDemoCrm } from './demo-crm.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const info = await readDemoInfo(process.env.MANDATE_DATA_DIR ?? join(process.cwd(), '.mandate', 'demo'));
  const agent = info.agents.find((a) => a.id === 'sales-outreach');
  if (agent === undefined) throw new Error('the demo has no sales-outreach agent');
  const crm = await startDemoCrm(info.mandate.issuer, DEMO_CRM_RESOURCE);
  try {
    // 1. The user's token, as an agent gets it from its front end.
    const alice = await demoUserLogin(info.idp.issuer, 'alice', { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });

    // 2. The agent's client: its registered key (private_key_jwt), DPoP on, and where the CRM really listens.
    const mandate = new MandateClient({
      issuer: info.mandate.issuer,
      clientId: agent.id,
      jwk: await readDemoAgentKey(agent.privateJwkFile),
      resources: { [new URL(crm.url).origin]: DEMO_CRM_RESOURCE },
    });
    const task = await mandate.startTask({ userToken: alice.accessToken, workflow: 'lead-followup', purpose: 'follow up the ACME lead', resource: DEMO_CRM_RESOURCE, scope: 'crm.search crm.read' });
    const claims = decodeJwt(await task.token());
    say(`task ${task.id} (${task.workflow}) opened for ${String(claims.sub)}, acted by ${JSON.stringify(claims.act)}`);
    say(`  mandate for ${String(claims.aud)}: scope "${String(claims.scope)}", DPoP key ${task.dpopJkt ?? '(none)'}, expires ${new Date(Number(claims.exp) * 1000).toISOString()}`);

    // 3. A stock MCP client: the task is its auth provider; task.fetch adds the DPoP proof to each request.
    const client = new Client({ name: 'sales-outreach', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(crm.url), { authProvider: task.mcpAuthProvider(DEMO_CRM_RESOURCE), fetch: task.fetch }));
    const found = await client.callTool({ name: 'crm.search', arguments: { query: 'ACME' } });
    say(`crm.search → ${JSON.stringify(found.content)}`);

    // 4. Renewal: token() does it by itself shortly before expiry; here it is forced to show it.
    const renewed = await task.mandate(DEMO_CRM_RESOURCE, undefined, true);
    say(`renewed from the task's grant: a new mandate (jti ${String(decodeJwt(renewed.accessToken).jti)}), scope "${renewed.scope}"`);

    // Data outside the workflow (lead-followup uses the CRM only) is refused, and the task stays open.
    try {
      await task.token(DEMO_WIKI_RESOURCE, 'wiki.read');
      say('wiki.read granted');
    } catch (err) {
      if (!(err instanceof MandateOAuthError)) throw err;
      say(`wiki.read refused: ${err.error} (${err.error_description ?? ''})`);
    }

    // 5. End the task: every mandate of it is revoked at Mandate, and the SDK hands out none again.
    await task.end();
    say(`task ${task.id} ended`);
    try {
      await client.callTool({ name: 'crm.search', arguments: { query: 'Globex' } });
      say('unexpected: the call after end() went through');
      process.exitCode = 1;
    } catch (err) {
      if (!(err instanceof TaskEndedError)) throw err;
      say(`the next call fails: ${err.code}: ${err.message}`);
    }
    await client.close();
  } finally {
    await crm.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`agent: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof Error && err.message.includes('demo.json')) process.stderr.write('agent: is the demo running? Start it with `npm start`.\n');
  process.exitCode = 1;
});
