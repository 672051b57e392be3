/**
 * DEMO ONLY — `npm run demo:exchange`: an agent gets a mandate from a running demo (`npm start`), the way a real
 * agent would, with `openid-client` (a real OAuth client, unmodified):
 *
 * 1. alice logs in at the demo IdP (authorization code + PKCE, driven without a browser) → her access token;
 * 2. helpdesk-assistant authenticates with `private_key_jwt` (RFC 7523) and exchanges alice's token for a CRM
 *    mandate (RFC 8693) with a DPoP proof (RFC 9449) → an RFC 9068 token, printed and explained;
 * 3. the mandate is checked against Mandate's JWKS and introspected (RFC 7662);
 * 4. refused exchanges: bob's help desk assistant asking for CRM data, alice's autonomous agent outside a task;
 * 5. the mandate is revoked (RFC 7009) and introspected again: `active: false`.
 *
 * Subcommands for a walk-through by hand: `token <user>`, `exchange`, `decode`, `introspect`, `revoke`
 * (`npm run -s demo:exchange -- help`). Reads the running demo's `demo.json` (under MANDATE_DATA_DIR, default
 * .mandate/demo/): URLs and the demo agents' key file paths, no secrets.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, importJWK, jwtVerify, type JWTPayload } from 'jose';
import * as client from 'openid-client';
import { DEMO_AGENT_ALG, readDemoAgentKey } from '../src/demo/demo-agents.ts';
import { demoUserLogin } from '../src/demo/demo-idp.ts';
import { readDemoInfo, type DemoInfoV1 } from '../src/demo/demo-info.ts';
import { DEMO_CRM_RESOURCE } from '../src/demo/demo-resources.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Where output goes: `out` for what a shell captures, `say` for the explanations. */
export interface DemoOutput {
  out(line: string): void;
  say(line: string): void;
}

/** An agent's OAuth client for Mandate's token service: metadata discovered, `private_key_jwt` authentication. */
export async function agentClient(info: DemoInfoV1, agentId: string): Promise<client.Configuration> {
  const agent = info.agents.find((a) => a.id === agentId);
  if (agent === undefined) throw new Error(`no demo agent ${agentId}; the demo has: ${info.agents.map((a) => a.id).join(', ')}`);
  const jwk = await readDemoAgentKey(agent.privateJwkFile);
  const key = (await importJWK(jwk, DEMO_AGENT_ALG)) as client.CryptoKey;
  // RFC 8414 metadata (algorithm oauth2), not OpenID discovery: Mandate is an OAuth authorization server.
  return client.discovery(new URL(info.mandate.issuer), agent.id, { token_endpoint_auth_method: 'private_key_jwt' }, client.PrivateKeyJwt({ key, kid: jwk.kid as string }), {
    algorithm: 'oauth2',
    execute: [client.allowInsecureRequests], // the demo is plain http on loopback
  });
}

/** What one exchange returned. */
export interface ExchangeResult {
  token: string;
  response: { token_type: string; expires_in?: number; scope?: string; issued_token_type?: unknown };
  claims: JWTPayload & { act?: { sub?: string }; scope?: string; cnf?: { jkt?: string }; client_id?: string };
  /** The thumbprint of the DPoP key the mandate is bound to. */
  dpopJkt: string;
}

/** RFC 8693 token exchange with a DPoP proof from a fresh key pair. */
export async function exchange(config: client.Configuration, request: { subjectToken: string; resource: string; scope: string }): Promise<ExchangeResult> {
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const DPoP = client.getDPoPHandle(config, keyPair);
  const response = await client.genericGrantRequest(
    config,
    TOKEN_EXCHANGE,
    { subject_token: request.subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, requested_token_type: ACCESS_TOKEN_TYPE, resource: request.resource, scope: request.scope },
    { DPoP },
  );
  return {
    token: response.access_token,
    response: { token_type: response.token_type, expires_in: response.expires_in, scope: response.scope, issued_token_type: response.issued_token_type },
    claims: decodeJwt(response.access_token),
    dpopJkt: await calculateJwkThumbprint(await exportJWK(keyPair.publicKey)),
  };
}

/** A refused exchange, as the token endpoint said it (RFC 6749 §5.2). */
export interface Refusal {
  error: string;
  description: string;
  status: number;
}

async function refusalOf(attempt: Promise<unknown>): Promise<Refusal> {
  try {
    await attempt;
  } catch (err) {
    if (err instanceof client.ResponseBodyError) return { error: err.error, description: err.error_description ?? '', status: err.status };
    throw err;
  }
  throw new Error('the exchange was expected to be refused, and it was granted');
}

/** The whole story's results, for the test. */
export interface DemoExchangeReport {
  userClaims: JWTPayload;
  mandate: ExchangeResult;
  requestedScope: string;
  /** The mandate's signature checked against Mandate's JWKS, with its issuer, audience and type. */
  verified: boolean;
  introspection: Record<string, unknown>;
  refusedBob: Refusal;
  refusedAutonomous: Refusal;
  afterRevocation: Record<string, unknown>;
}

const when = (seconds: unknown) => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : String(seconds));

/** Prints a mandate's claims, one per line, with what each means. */
export function explainMandate(claims: ExchangeResult['claims'], say: (line: string) => void, requested?: string): void {
  const granted = String(claims.scope ?? '');
  const dropped = requested === undefined ? [] : requested.split(' ').filter((s) => s !== '' && !granted.split(' ').includes(s));
  say(`    iss        ${String(claims.iss)}   Mandate, which signed it`);
  say(`    sub        ${String(claims.sub)}   the user the mandate acts for (from her IdP token)`);
  say(`    act        ${JSON.stringify(claims.act)}   the agent acting for her (RFC 8693 §4.1); nested for a chain`);
  say(`    client_id  ${String(claims.client_id)}   the OAuth client that asked: always the acting agent`);
  say(`    aud        ${String(claims.aud)}   exactly one resource: useless anywhere else`);
  say(`    scope      ${granted}   what policy allows the user AND the agent${dropped.length > 0 ? ` (asked also for ${dropped.join(' ')}: not granted)` : ''}`);
  say(`    cnf.jkt    ${String(claims.cnf?.jkt)}   the DPoP key's thumbprint (RFC 9449 §6): without that private key, a stolen mandate is useless`);
  const life = typeof claims.exp === 'number' && typeof claims.iat === 'number' ? `${claims.exp - claims.iat} s` : '?';
  say(`    exp        ${when(claims.exp)}   lives ${life}; never longer than the user's token`);
  say(`    jti        ${String(claims.jti)}   its id: introspection and revocation find it by this`);
}

/**
 * The whole walk-through against a running demo. Prints as it goes; returns what happened.
 * @example await runDemoExchange(await readDemoInfo('.mandate/demo'), { out: console.log, say: console.log });
 */
export async function runDemoExchange(info: DemoInfoV1, io: DemoOutput): Promise<DemoExchangeReport> {
  const say = io.say;
  const crm = info.resources.find((r) => r.uri === DEMO_CRM_RESOURCE)?.uri ?? DEMO_CRM_RESOURCE;

  say('');
  say(`1. alice logs in at the demo IdP (${info.idp.issuer}): authorization code + PKCE, no browser`);
  const alice = await demoUserLogin(info.idp.issuer, 'alice', { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });
  const userClaims = decodeJwt(alice.accessToken);
  say(`   her access token (RFC 9068): iss ${String(userClaims.iss)}, sub ${String(userClaims.sub)}, aud ${String(userClaims.aud)}, expires ${when(userClaims.exp)}`);

  say('');
  const requestedScope = 'crm.search crm.read';
  say(`2. helpdesk-assistant exchanges it for a mandate for the CRM (${crm}), asking for: ${requestedScope}`);
  say('   client authentication: private_key_jwt (a JWT signed with the agent\'s registered key); a DPoP proof from a fresh key');
  const helpdesk = await agentClient(info, 'helpdesk-assistant');
  const mandate = await exchange(helpdesk, { subjectToken: alice.accessToken, resource: crm, scope: requestedScope });
  say(`   → ${mandate.response.token_type} token, expires_in ${String(mandate.response.expires_in)} s, scope "${String(mandate.response.scope)}"`);
  io.out(`   mandate: ${mandate.token}`);
  say('   its claims:');
  explainMandate(mandate.claims, say, requestedScope);
  say('   crm.read was refused: alice may read the CRM (sales), but a chat assistant reads nothing above "internal"');
  say('   (examples/policies/agents/chat.cedar); crm.search, a read tool, is allowed to both. The intersection, never the union.');

  say('');
  say("3. the mandate checks out against Mandate's published keys, and introspection (RFC 7662) agrees:");
  const metadata = helpdesk.serverMetadata();
  if (typeof metadata.jwks_uri !== 'string') throw new Error('the token service publishes no jwks_uri');
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  const { protectedHeader } = await jwtVerify(mandate.token, jwks, { issuer: info.mandate.issuer, audience: crm, typ: 'at+jwt' });
  say(`   signature ${protectedHeader.alg}, kid ${String(protectedHeader.kid)}, typ ${String(protectedHeader.typ)}: valid (jwks ${metadata.jwks_uri})`);
  const introspection = { ...(await client.tokenIntrospection(helpdesk, mandate.token)) } as Record<string, unknown>;
  say(`   introspection: active ${String(introspection.active)}, token_type ${String(introspection.token_type)}, scope "${String(introspection.scope)}", sub ${String(introspection.sub)}`);

  say('');
  say('4. refused exchanges:');
  const bob = await demoUserLogin(info.idp.issuer, 'bob', { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });
  const refusedBob = await refusalOf(exchange(helpdesk, { subjectToken: bob.accessToken, resource: crm, scope: 'crm.read crm.write' }));
  say("   bob's help desk assistant asks for crm.read crm.write: bob may do both, his chat assistant neither");
  say(`   → HTTP ${refusedBob.status} ${refusedBob.error}: ${refusedBob.description}`);
  const outreach = await agentClient(info, 'sales-outreach');
  const refusedAutonomous = await refusalOf(exchange(outreach, { subjectToken: alice.accessToken, resource: crm, scope: 'crm.read' }));
  say("   alice's sales-outreach agent (autonomous) asks for crm.read: autonomous agents act only inside an open task");
  say(`   → HTTP ${refusedAutonomous.status} ${refusedAutonomous.error}: ${refusedAutonomous.description}`);

  say('');
  say('5. helpdesk-assistant revokes the mandate (RFC 7009), then introspects it again:');
  await client.tokenRevocation(helpdesk, mandate.token, { token_type_hint: 'access_token' });
  const afterRevocation = { ...(await client.tokenIntrospection(helpdesk, mandate.token)) } as Record<string, unknown>;
  say(`   → ${JSON.stringify(afterRevocation)}: revoked before the 200, everywhere, and audited`);
  say('');
  say('Every issuance, refusal and revocation is in the audit log (SQLite, under the demo\'s data directory).');
  say('');
  return { userClaims, mandate, requestedScope, verified: true, introspection, refusedBob, refusedAutonomous, afterRevocation };
}

const HELP = `usage: npm run -s demo:exchange -- [command]

  (no command)                 the whole walk-through
  token <user>                 log in at the demo IdP (alice or bob), print the access token
  exchange --agent <id> --resource <uri> --scope '<scopes>' [--subject-token <token>]
                               token exchange with private_key_jwt and DPoP; prints the mandate
                               (the subject token defaults to $USER_TOKEN)
  decode <token>               print a token's header and claims (no verification)
  introspect <token> --agent <id>
  revoke <token> --agent <id>

Reads demo.json from MANDATE_DATA_DIR (default .mandate/demo/) of a running demo (npm start).`;

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { agent: { type: 'string' }, resource: { type: 'string' }, scope: { type: 'string' }, 'subject-token': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, arg] = positionals;
  if (values.help === true || command === 'help') {
    console.log(HELP);
    return 0;
  }
  const toStderr = (line: string) => process.stderr.write(`${line}\n`);
  if (command === 'decode') {
    if (arg === undefined) throw new Error('decode: give the token');
    console.log(JSON.stringify({ header: decodeProtectedHeader(arg), claims: decodeJwt(arg) }, null, 2));
    return 0;
  }
  const info = await readDemoInfo(env.MANDATE_DATA_DIR ? env.MANDATE_DATA_DIR : join(process.cwd(), '.mandate', 'demo'));
  try {
    await fetch(`${info.mandate.url}/readyz`);
  } catch (cause) {
    throw new Error(`no demo answers at ${info.mandate.url}; start it with npm start (demo.json is from pid ${info.pid})`, { cause });
  }
  switch (command) {
    case undefined: {
      await runDemoExchange(info, { out: (l) => console.log(l), say: (l) => console.log(l) });
      return 0;
    }
    case 'token': {
      const user = arg ?? 'alice';
      const tokens = await demoUserLogin(info.idp.issuer, user, { resource: info.idp.userTokenAudience, scope: info.idp.userTokenScope });
      toStderr(`demo IdP: ${user}'s access token for ${info.idp.userTokenAudience}, valid ${tokens.expiresIn} s`);
      console.log(tokens.accessToken);
      return 0;
    }
    case 'exchange': {
      const subjectToken = values['subject-token'] ?? env.USER_TOKEN;
      if (subjectToken === undefined || subjectToken === '') throw new Error('exchange: set USER_TOKEN (npm run -s demo:exchange -- token alice) or pass --subject-token');
      const config = await agentClient(info, values.agent ?? 'helpdesk-assistant');
      const scope = values.scope ?? 'crm.search crm.read';
      try {
        const result = await exchange(config, { subjectToken, resource: values.resource ?? DEMO_CRM_RESOURCE, scope });
        toStderr(`${result.response.token_type} mandate, expires_in ${String(result.response.expires_in)} s:`);
        explainMandate(result.claims, toStderr, scope);
        toStderr('(bound to a DPoP key that lived only in this process: for the demo, introspect and revoke it)');
        console.log(result.token);
        return 0;
      } catch (err) {
        if (!(err instanceof client.ResponseBodyError)) throw err;
        toStderr(`refused: HTTP ${err.status} ${err.error}: ${err.error_description ?? ''}`);
        return 1;
      }
    }
    case 'introspect':
    case 'revoke': {
      if (arg === undefined) throw new Error(`${command}: give the mandate`);
      const config = await agentClient(info, values.agent ?? 'helpdesk-assistant');
      if (command === 'revoke') {
        await client.tokenRevocation(config, arg, { token_type_hint: 'access_token' });
        toStderr('revoked (RFC 7009 answers 200 for unknown tokens too: introspect to see)');
      } else {
        console.log(JSON.stringify(await client.tokenIntrospection(config, arg), null, 2));
      }
      return 0;
    }
    default:
      console.error(HELP);
      return 2;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const message = err instanceof client.ResponseBodyError ? `${err.error}: ${err.error_description ?? ''}` : err instanceof Error ? err.message : String(err);
      console.error(`demo:exchange: ${message}`);
      process.exit(1);
    },
  );
}
