/**
 * A real Mandate node on loopback for the SDK's scenarios (the world of test/server/tasks-e2e.test.ts): the
 * example policies and workflows, a static-JWKS IdP whose key the test holds, the sales-outreach agent
 * (lead-followup) and a resource server's service principal that introspects. DPoP nonces are required, so
 * every DPoP token request goes through the SDK's `use_dpop_nonce` retry.
 *
 * Also a loopback resource server that checks what a resource server must (RFC 9449 §7: the proof's `htm`,
 * `htu`, `ath` and key = `cnf.jkt`; the mandate by RFC 7662 introspection at Mandate) before a handler runs.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { base64url, calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.ts';
import { startMandate, type RunningMandate } from '../../src/cli/start-mandate.ts';
import { createLogger } from '../../src/server/index.ts';
import { generateKek } from '../../src/tokens/key-encryption.ts';

const EXAMPLES = new URL('../../examples/policies', import.meta.url).pathname;
export const CRM = 'https://crm.test/mcp';
export const AUD = 'https://mandate.test/';
export const ISS = 'https://corp-idp.test';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface Key {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}
export async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

export interface World {
  node: RunningMandate;
  url: string;
  idp: Key;
  outreach: Key;
  rs: Key;
  /** The agent's private JWK (for `new MandateClient({ jwk })`). */
  outreachJwk: JWK;
  userToken(sub?: string): Promise<string>;
  /** RFC 7662 introspection at Mandate as the resource server's service principal. */
  introspect(token: string): Promise<Record<string, unknown>>;
  /** RFC 7009 revocation of one mandate, as the agent. */
  revokeMandate(token: string): Promise<number>;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mandate-sdk-'));
  const policyDir = join(dir, 'policies');
  await cp(EXAMPLES, policyDir, { recursive: true });
  const idp = await newKey('corp');
  await writeFile(join(dir, 'corp.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  const outreach = await newKey('outreach-1');
  const rs = await newKey('crm-rs-1');
  const config = parseConfig(
    stringify({
      store: { dataDir: join(dir, 'data') },
      policy: { dir: policyDir, watch: false },
      identity: { issuers: [{ issuer: ISS, jwksFile: 'corp.json', audiences: [AUD] }] },
      dpop: { nonce: 'required' },
      resources: [
        {
          uri: CRM,
          scopes: {
            'crm.search': [{ action: 'call', resource: { type: 'Tool', id: 'crm.search' } }],
            'crm.update': [{ action: 'call', resource: { type: 'Tool', id: 'crm.update' } }],
            'crm.read': [{ action: 'read', resource: { type: 'Dataset', id: 'crm' } }],
          },
        },
      ],
      principals: [
        { id: 'sales-outreach', kind: 'agent', name: 'Outreach', owner: 'alice', mode: 'autonomous', workflows: ['lead-followup'], audiences: [CRM], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [outreach.publicJwk] } }] },
        { id: 'crm-rs', kind: 'service', name: 'CRM resource server', owner: 'alice', audiences: [CRM], dpop: 'optional', credentials: [{ type: 'jwks', jwks: { keys: [rs.publicJwk] } }] },
      ],
    }),
    { source: 'test', env: {}, baseDir: dir, cwd: dir },
  );
  config.server.port = 0;
  const node = await startMandate(config, { env: { MANDATE_KEK: generateKek() }, logger: createLogger({ level: 'silent' }) });
  const url = node.url;
  const assertion = (clientId: string, key: Key) =>
    new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer(clientId).setSubject(clientId).setAudience(url).setIssuedAt().setExpirationTime('60s').sign(key.privateKey);
  const post = async (path: string, form: Record<string, string>) => {
    const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
  };
  return {
    node,
    url,
    idp,
    outreach,
    rs,
    outreachJwk: { ...(await exportJWK(outreach.privateKey)), kid: outreach.kid, alg: 'ES256' },
    userToken: (sub = 'alice') =>
      new SignJWT({ sub, jti: randomUUID(), client_id: 'corp-app' }).setProtectedHeader({ alg: 'ES256', kid: 'corp', typ: 'at+jwt' }).setIssuer(ISS).setAudience(AUD).setIssuedAt().setExpirationTime('10m').sign(idp.privateKey),
    async introspect(token) {
      return (await post('/oauth/introspect', { token, client_assertion_type: JWT_BEARER, client_assertion: await assertion('crm-rs', rs) })).body;
    },
    async revokeMandate(token) {
      return (await post('/oauth/revoke', { token, token_type_hint: 'access_token', client_assertion_type: JWT_BEARER, client_assertion: await assertion('sales-outreach', outreach) })).status;
    },
    async close() {
      await node.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What the resource server saw of one request it let through. */
export interface Presented {
  scheme: 'DPoP' | 'Bearer';
  introspection: Record<string, unknown>;
  proof?: Record<string, unknown>;
}

/**
 * Checks a request's `Authorization` (and `DPoP`) as a resource server for `resource`: resolves what was
 * presented, or a 401 challenge. `publicUrl` is the server's own URL for `htu`.
 */
export async function checkRequest(w: World, resource: string, req: IncomingMessage, publicUrl: string): Promise<{ ok: true; presented: Presented } | { ok: false; challenge: string }> {
  const auth = req.headers.authorization ?? '';
  const m = /^(DPoP|Bearer) (\S+)$/.exec(auth);
  if (m === null) return { ok: false, challenge: 'Bearer error="invalid_request"' };
  const scheme = m[1] as 'DPoP' | 'Bearer';
  const token = m[2] as string;
  const introspection = await w.introspect(token);
  if (introspection.active !== true || introspection.aud !== resource) return { ok: false, challenge: `${scheme} error="invalid_token"` };
  const jkt = (introspection.cnf as { jkt?: string } | undefined)?.jkt;
  // RFC 9449 §7.1: a DPoP-bound token is never accepted as a Bearer token.
  if (jkt !== undefined && scheme !== 'DPoP') return { ok: false, challenge: 'DPoP error="invalid_token", error_description="a DPoP-bound token needs its proof"' };
  if (scheme === 'Bearer') return { ok: true, presented: { scheme, introspection } };
  const proofJwt = req.headers.dpop;
  if (typeof proofJwt !== 'string') return { ok: false, challenge: 'DPoP error="invalid_dpop_proof"' };
  try {
    const { payload } = await jwtVerify(proofJwt, EmbeddedJWK, { typ: 'dpop+jwt', maxTokenAge: '60s' });
    const header = decodeProtectedHeader(proofJwt);
    const ath = base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
    const url = new URL(req.url ?? '/', publicUrl);
    if (payload.htm !== req.method || payload.htu !== `${url.origin}${url.pathname}` || payload.ath !== ath || (await calculateJwkThumbprint(header.jwk as JWK)) !== jkt) {
      return { ok: false, challenge: 'DPoP error="invalid_dpop_proof"' };
    }
    return { ok: true, presented: { scheme, introspection, proof: payload as Record<string, unknown> } };
  } catch {
    return { ok: false, challenge: 'DPoP error="invalid_dpop_proof"' };
  }
}

/** Starts an HTTP server on 127.0.0.1 and resolves its URL. */
export async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
