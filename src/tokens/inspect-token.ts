/**
 * `mandate token inspect <jwt>`: decode a mandate without trusting it, verify it against Mandate's JWKS, and
 * explain each header parameter and claim, what it means, and whether it would be accepted or refused and why.
 *
 * Pure: the JWKS, the issuer, the clock and the limits are passed in. The signature is checked by jose
 * (`createLocalJWKSet` + `jwtVerify`); the line-by-line checks below only explain, and the verdict is "accepted"
 * only when jose accepts the token AND no line refuses it. The signature segment is never shown.
 *
 * @see RFC 9068 (JWT access tokens), RFC 8693 §4.1 (`act`), RFC 9449 §6 (`cnf.jkt`), RFC 8725 (JWT BCP)
 */
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { InvalidTokenError } from '../core/errors.ts';
import type { Clock } from '../core/ports.ts';
import type { IssuedTokenRecord, TaskRecord, TaskStore, TokenStore } from '../store/store.ts';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from './signing-keys.ts';

/** Longest token `inspectToken` decodes, in characters; a mandate is well under 2 KiB. */
export const MAX_INSPECTED_TOKEN_LENGTH = 16_384;

/** What one line says about its parameter: accepted (`ok`), refused, or information only. */
export type InspectionStatus = 'ok' | 'refused' | 'info';

/** One header parameter or claim, explained. */
export interface InspectionLine {
  /** The header parameter or claim name (`act[1]` for the first hop of the actor chain, `lifetime` for exp − iat). */
  name: string;
  /** The value as client-safe display text (JSON, control characters escaped, long values shortened); absent when missing. */
  value?: string;
  status: InspectionStatus;
  /** What it is and why it is accepted or refused. */
  explanation: string;
}

/** The result of inspecting one token. */
export interface TokenInspection {
  verdict: 'accepted' | 'refused';
  /** One sentence: why accepted, or the first reason for refusal. */
  summary: string;
  /** Every reason for refusal, as `name: explanation`. Empty when accepted. */
  reasons: string[];
  /** `valid`: verified by a published Mandate key; `invalid`: forged or altered; `not-checked`: no usable key or algorithm. */
  signature: { status: 'valid' | 'invalid' | 'not-checked'; explanation: string };
  /** False when the claims below were read from a token whose signature did not verify: they prove nothing. */
  trusted: boolean;
  header: InspectionLine[];
  claims: InspectionLine[];
}

/** What a token is checked against. */
export interface InspectTokenOptions {
  /** Mandate's published JWKS (public keys only). */
  jwks: JSONWebKeySet;
  /** Mandate's issuer identifier; `iss` must equal it exactly. */
  issuer: string;
  clock: Clock;
  /** The configured hard cap on a mandate's lifetime (`exp − iat`), in seconds. */
  maxLifetimeSeconds: number;
  /** Tolerated clock skew for `exp`, `nbf` and `iat`, in seconds; default 5. */
  clockToleranceSeconds?: number;
  /** Accepted `alg` values; default EdDSA and ES256. */
  algorithms?: readonly SigningAlgorithm[];
  /** Largest number of actors in the `act` chain; default 5. */
  maxDelegationDepth?: number;
  /** When given, `aud` must be exactly this resource. */
  expectedAudience?: string;
}

const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];
const KNOWN_CLAIMS = new Set(['iss', 'sub', 'aud', 'client_id', 'act', 'scope', 'jti', 'iat', 'nbf', 'exp', 'cnf', 'task', 'sub_id', 'on_behalf_of']);
const JKT_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const MAX_VALUE_CHARS = 120;

/** Display text for a value: JSON, with characters that could mislead a terminal escaped, shortened when long. */
function display(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return bounded(escaped(text), MAX_VALUE_CHARS);
}

/** Text with control, bidi-override and zero-width characters escaped: a value must not rewrite the operator's terminal. */
function escaped(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) =>
    `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

const bounded = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function isoOf(seconds: number): string {
  const ms = seconds * 1000;
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : 'an impossible date';
}

function ago(deltaSeconds: number): string {
  const s = Math.round(Math.abs(deltaSeconds));
  return deltaSeconds >= 0 ? `${s} s ago` : `in ${s} s`;
}

function malformed(why: string): InvalidTokenError {
  return new InvalidTokenError(`the token is not a mandate (a compact JWS: three base64url segments separated by dots): ${why}`);
}

/**
 * Splits and decodes a compact JWS without trusting it.
 * @throws InvalidTokenError with what is wrong (never quoting the token)
 */
function decodeUntrusted(input: string): { token: string; header: ProtectedHeaderParameters; payload: JWTPayload; signed: boolean } {
  if (typeof input !== 'string') throw new TypeError('inspectToken: token must be a string');
  const token = input.trim().replace(/^(?:Bearer|DPoP)\s+/i, '');
  if (token === '') throw malformed('it is empty');
  if (token.length > MAX_INSPECTED_TOKEN_LENGTH) throw malformed(`it is ${token.length} characters long; at most ${MAX_INSPECTED_TOKEN_LENGTH} are read`);
  const segments = token.split('.');
  if (segments.length === 5) throw malformed('it has five segments, so it is an encrypted JWT (JWE), which Mandate never issues');
  if (segments.length !== 3) throw malformed(`it has ${segments.length} segment${segments.length === 1 ? '' : 's'}`);
  if (!segments.every((s) => /^[A-Za-z0-9_-]*$/.test(s))) throw malformed('a segment holds characters outside base64url');
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw malformed('the header is not base64url-encoded JSON object');
  }
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw malformed('the payload is not a base64url-encoded JSON object');
  }
  return { token, header, payload, signed: segments[2] !== '' };
}

function inspectHeader(
  header: ProtectedHeaderParameters,
  options: InspectTokenOptions,
  algorithms: readonly string[],
  signed: boolean,
): InspectionLine[] {
  const lines: InspectionLine[] = [];
  const alg = header.alg;
  if (alg === undefined) {
    lines.push({ name: 'alg', status: 'refused', explanation: 'missing: the signing algorithm must be named' });
  } else if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
    lines.push({ name: 'alg', value: display(alg), status: 'refused', explanation: 'an unsecured JWT (alg "none") is never accepted (RFC 8725 §3.1)' });
  } else if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    lines.push({ name: 'alg', value: display(alg), status: 'refused', explanation: `not an allowed algorithm; Mandate signs with ${algorithms.join(' or ')} only` });
  } else {
    lines.push({ name: 'alg', value: display(alg), status: 'ok', explanation: 'an allowed signing algorithm' });
  }
  if (!signed) lines.push({ name: 'signature', status: 'refused', explanation: 'the token has no signature' });

  const typ = header.typ;
  if (typ === undefined) {
    lines.push({ name: 'typ', status: 'refused', explanation: 'missing: a mandate says typ "at+jwt" (RFC 9068 §2.1), so that no other JWT passes for one' });
  } else if (typeof typ === 'string' && /^(?:application\/)?at\+jwt$/i.test(typ)) {
    lines.push({ name: 'typ', value: display(typ), status: 'ok', explanation: 'a JWT access token (RFC 9068 §2.1)' });
  } else {
    const what =
      typeof typ === 'string' && /dpop\+jwt$/i.test(typ)
        ? 'a DPoP proof'
        : typeof typ === 'string' && /^(?:application\/)?jwt$/i.test(typ)
          ? 'a plain JWT (an ID token or a client assertion, for instance)'
          : 'another kind of token';
    lines.push({ name: 'typ', value: display(typ), status: 'refused', explanation: `this is ${what}, never accepted as a mandate; a mandate says "at+jwt" (RFC 8725 §3.11)` });
  }

  const kid = header.kid;
  if (kid === undefined) {
    lines.push({ name: 'kid', status: 'refused', explanation: 'missing: Mandate names its signing key in every mandate' });
  } else {
    const key = typeof kid === 'string' ? options.jwks.keys.find((k) => k.kid === kid) : undefined;
    if (key === undefined) {
      lines.push({ name: 'kid', value: display(kid), status: 'refused', explanation: "not in Mandate's JWKS: an unknown key, or one retired since" });
    } else if (key.alg !== undefined && key.alg !== alg) {
      lines.push({ name: 'kid', value: display(kid), status: 'refused', explanation: `a Mandate key for ${key.alg}, but the token says ${display(alg)} (algorithm confusion)` });
    } else {
      lines.push({ name: 'kid', value: display(kid), status: 'ok', explanation: "one of Mandate's published signing keys" });
    }
  }

  for (const name of Object.keys(header)) {
    if (name === 'alg' || name === 'typ' || name === 'kid') continue;
    const value = display(header[name]);
    if (KEY_CARRYING_HEADERS.includes(name)) {
      lines.push({ name, value, status: 'refused', explanation: 'a key or key location in the header is never trusted; Mandate never sends one, so the token did not come from it' });
    } else if (name === 'crit') {
      lines.push({ name, value, status: 'refused', explanation: 'Mandate understands no critical header extensions' });
    } else if (name === 'b64') {
      lines.push({ name, value, status: 'refused', explanation: 'unencoded payloads (RFC 7797) are never accepted' });
    } else {
      lines.push({ name, value, status: 'info', explanation: 'not a parameter Mandate uses' });
    }
  }
  return lines;
}

function actorName(hop: Record<string, unknown>): string {
  return typeof hop.iss === 'string' ? `${hop.sub as string} (from ${hop.iss})` : (hop.sub as string);
}

function inspectActChain(payload: JWTPayload, maxDepth: number): InspectionLine[] {
  const act = payload.act;
  if (act === undefined) {
    const forItself = payload.on_behalf_of === 'none' || (payload.client_id !== undefined && payload.client_id === payload.sub);
    return [{
      name: 'act',
      status: 'info',
      explanation: forItself
        ? 'no actor: the client obtained it for itself (client_credentials); no user is behind it'
        : 'no actor: nobody acts for the subject (no delegation chain)',
    }];
  }
  const lines: InspectionLine[] = [];
  const hops: Record<string, unknown>[] = [];
  const seen = new Set<string>([`${String(payload.iss)}\u0000${String(payload.sub)}`]);
  let cursor: unknown = act;
  let problem: string | undefined;
  while (cursor !== undefined) {
    if (cursor === null || typeof cursor !== 'object' || Array.isArray(cursor)) {
      problem = `hop ${hops.length + 1} is not a JSON object`;
      break;
    }
    const hop = cursor as Record<string, unknown>;
    if (typeof hop.sub !== 'string' || hop.sub === '') {
      problem = `hop ${hops.length + 1} has no "sub"`;
      break;
    }
    hops.push(hop);
    const key = `${typeof hop.iss === 'string' ? hop.iss : String(payload.iss)}\u0000${hop.sub}`;
    if (seen.has(key)) {
      problem = `${display(hop.sub)} appears twice in the chain (a cycle)`;
      break;
    }
    seen.add(key);
    if (hops.length > maxDepth) {
      problem = `the chain is longer than the cap of ${maxDepth} actors`;
      break;
    }
    cursor = hop.act;
  }
  if (problem !== undefined) {
    lines.push({ name: 'act', status: 'refused', explanation: `malformed delegation chain: ${problem}` });
  } else {
    const path = [...hops].reverse().map(actorName).concat(String(payload.sub)).join(' → ');
    lines.push({
      name: 'act',
      status: 'ok',
      explanation: `delegation chain of ${hops.length} actor${hops.length === 1 ? '' : 's'} (cap ${maxDepth}), earliest first: ${display(path)} (RFC 8693 §4.1)`,
    });
  }
  hops.forEach((hop, i) => {
    const role = i === 0 ? 'the current actor, calling now' : `an earlier actor, for whom ${display(hops[i - 1]?.sub)} acts`;
    lines.push({ name: `act[${i + 1}]`, value: display({ sub: hop.sub, ...(hop.iss !== undefined ? { iss: hop.iss } : {}) }), status: 'info', explanation: role });
  });
  return lines;
}

function inspectClaims(payload: JWTPayload, options: InspectTokenOptions, nowSeconds: number): InspectionLine[] {
  const lines: InspectionLine[] = [];
  const tolerance = options.clockToleranceSeconds ?? 5;
  const push = (name: string, status: InspectionStatus, explanation: string): void => {
    lines.push({ name, status, explanation, ...(Object.hasOwn(payload, name) ? { value: display(payload[name]) } : {}) });
  };

  if (payload.iss === undefined) push('iss', 'refused', 'missing: the issuer must be named');
  else if (payload.iss !== options.issuer) push('iss', 'refused', `another issuer; Mandate is ${display(options.issuer)} (issuer confusion)`);
  else push('iss', 'ok', 'issued by this Mandate');

  if (typeof payload.sub !== 'string' || payload.sub === '') push('sub', 'refused', 'missing or not a string: a mandate names its subject');
  else if (payload.act !== undefined) push('sub', 'ok', 'the user on whose behalf the actors below act');
  else push('sub', 'ok', 'the principal the mandate was issued to');

  const aud = payload.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (audiences === undefined) push('aud', 'refused', 'missing: a mandate is for exactly one resource (RFC 8707)');
  else if (audiences.length !== 1 || typeof audiences[0] !== 'string') {
    push('aud', 'refused', `${audiences.length} audiences: a mandate is for exactly one resource, so it cannot be replayed at another (RFC 8707)`);
  } else if (options.expectedAudience !== undefined && audiences[0] !== options.expectedAudience) {
    push('aud', 'refused', `for another resource than ${display(options.expectedAudience)}`);
  } else {
    push('aud', 'ok', 'the one resource this mandate may be presented to');
  }

  if (typeof payload.client_id !== 'string' || payload.client_id === '') push('client_id', 'refused', 'missing: the client that obtained the token must be named (RFC 9068 §2.2)');
  else push('client_id', 'ok', 'the agent or service that obtained it (the OAuth client of the exchange)');

  lines.push(...inspectActChain(payload, options.maxDelegationDepth ?? 5));

  if (typeof payload.scope !== 'string' || payload.scope.trim() === '') {
    push('scope', 'refused', 'missing or empty: a mandate grants named scopes only');
  } else {
    const scopes = payload.scope.split(' ').filter((s) => s !== '');
    push('scope', 'ok', `${scopes.length} scope${scopes.length === 1 ? '' : 's'}, computed as what policy allows the user and the agent (never widened)`);
  }

  if (typeof payload.jti !== 'string' || payload.jti === '') push('jti', 'refused', 'missing: every mandate has a unique id, used for revocation and audit');
  else push('jti', 'ok', 'unique id of this mandate; revocation and audit refer to it');

  const iat = payload.iat;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) push('iat', 'refused', 'missing or not a number: the issue time must be stated');
  else if (iat > nowSeconds + tolerance) push('iat', 'refused', `issued in the future (${isoOf(iat)}, ${ago(nowSeconds - iat)})`);
  else push('iat', 'ok', `issued ${isoOf(iat)} (${ago(nowSeconds - iat)})`);

  const nbf = payload.nbf;
  if (nbf !== undefined) {
    if (typeof nbf !== 'number' || !Number.isFinite(nbf)) push('nbf', 'refused', 'not a number');
    else if (nbf > nowSeconds + tolerance) push('nbf', 'refused', `not valid yet: from ${isoOf(nbf)} (${ago(nowSeconds - nbf)})`);
    else push('nbf', 'ok', `valid since ${isoOf(nbf)}`);
  }

  const exp = payload.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) push('exp', 'refused', 'missing or not a number: every mandate expires');
  else if (exp <= nowSeconds - tolerance) push('exp', 'refused', `expired ${isoOf(exp)} (${ago(nowSeconds - exp)}; tolerance ${tolerance} s)`);
  else push('exp', 'ok', `expires ${isoOf(exp)} (${ago(nowSeconds - exp)})`);

  if (typeof iat === 'number' && typeof exp === 'number' && Number.isFinite(iat) && Number.isFinite(exp)) {
    const lifetime = exp - iat;
    const cap = options.maxLifetimeSeconds;
    if (lifetime <= 0) lines.push({ name: 'lifetime', value: `${lifetime} s`, status: 'refused', explanation: 'exp is not after iat' });
    else if (lifetime > cap) lines.push({ name: 'lifetime', value: `${lifetime} s`, status: 'refused', explanation: `longer than the configured cap of ${cap} s` });
    else lines.push({ name: 'lifetime', value: `${lifetime} s`, status: 'ok', explanation: `exp − iat, within the cap of ${cap} s` });
  }

  const cnf = payload.cnf;
  if (cnf === undefined) {
    push('cnf', 'info', 'absent: a bearer mandate; whoever holds it can use it, so it is taken only where bearer mandates are allowed for this client');
  } else if (cnf === null || typeof cnf !== 'object' || Array.isArray(cnf)) {
    push('cnf', 'refused', 'not a JSON object (RFC 7800 §3.1)');
  } else {
    const c = cnf as Record<string, unknown>;
    if (c.jkt !== undefined) {
      if (typeof c.jkt === 'string' && JKT_PATTERN.test(c.jkt)) {
        push('cnf', 'ok', 'sender-constrained with DPoP: each request needs a DPoP proof signed by the key with this SHA-256 thumbprint (jkt) (RFC 9449 §6)');
      } else {
        push('cnf', 'refused', 'cnf.jkt is not a base64url SHA-256 JWK thumbprint (RFC 9449 §6.1)');
      }
    } else if (c['x5t#S256'] !== undefined) {
      push('cnf', 'info', 'bound to a client certificate (RFC 8705 §3.1); Mandate binds mandates with DPoP (cnf.jkt)');
    } else {
      push('cnf', 'refused', 'no confirmation method Mandate knows (expected cnf.jkt)');
    }
  }

  const subId = payload.sub_id;
  if (subId !== undefined) {
    const id = subId as Record<string, unknown> | null;
    if (id !== null && typeof id === 'object' && id.format === 'iss_sub' && typeof id.iss === 'string' && typeof id.sub === 'string') {
      push('sub_id', 'info', 'the user as their identity provider names them (RFC 9493 iss_sub), so that the same sub from two IdPs is never confused');
    } else {
      push('sub_id', 'refused', 'not an RFC 9493 iss_sub identifier');
    }
  }

  const onBehalfOf = payload.on_behalf_of;
  if (onBehalfOf !== undefined) {
    if (onBehalfOf === 'user') push('on_behalf_of', 'info', 'a user is behind this mandate (sub)');
    else if (onBehalfOf === 'none' && payload.act === undefined) push('on_behalf_of', 'info', 'machine-only work (client_credentials): no user is behind it');
    else if (onBehalfOf === 'none') push('on_behalf_of', 'refused', 'says no user is behind it, yet it carries an actor chain');
    else push('on_behalf_of', 'refused', 'neither "user" nor "none"');
  }

  const task = payload.task;
  if (task !== undefined) {
    if (typeof task !== 'string' || task === '') push('task', 'refused', 'not a task id');
    else push('task', 'info', 'bound to this task; refused once the task is closed (checked only against the store: see "task status")');
  }

  for (const name of Object.keys(payload)) {
    if (!KNOWN_CLAIMS.has(name)) push(name, 'info', 'not a claim Mandate uses');
  }
  return lines;
}

/** Explains jose's refusal when the line checks did not already say it. */
function explainVerifyError(error: unknown): { signature: TokenInspection['signature']; claimProblem?: string } {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : 'verification failed';
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return { signature: { status: 'invalid', explanation: 'does not verify with the named Mandate key: the token was forged or altered' } };
    case 'ERR_JWS_INVALID':
      return { signature: { status: 'invalid', explanation: 'the signature is malformed or missing' } };
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return { signature: { status: 'not-checked', explanation: "no key in Mandate's JWKS matches the token's kid and alg" } };
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return { signature: { status: 'not-checked', explanation: "several keys in Mandate's JWKS match; the token names none precisely" } };
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return { signature: { status: 'not-checked', explanation: 'the algorithm is not allowed, so the signature was not checked' } };
    case 'ERR_JOSE_NOT_SUPPORTED':
      return { signature: { status: 'not-checked', explanation: 'the token uses a feature Mandate does not support' } };
    case 'ERR_JWT_EXPIRED':
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
    case 'ERR_JWT_INVALID':
      // jose checks the signature before the claims: reaching them means the signature verified.
      return { signature: { status: 'valid', explanation: "verified with a published Mandate key" }, claimProblem: message };
    default:
      return { signature: { status: 'not-checked', explanation: 'verification failed before the signature could be checked' } };
  }
}

/**
 * Decodes, verifies and explains a mandate.
 * @param token the compact JWS (a leading `Bearer ` or `DPoP ` is ignored)
 * @throws InvalidTokenError when the text is not a compact JWS at all (the message says why, never quoting it)
 * @example
 * const report = await inspectToken(jwt, { jwks: await keys.jwks(), issuer, clock: systemClock, maxLifetimeSeconds: 600 });
 * console.log(renderTokenInspection(report));
 */
export async function inspectToken(token: string, options: InspectTokenOptions): Promise<TokenInspection> {
  const decoded = decodeUntrusted(token);
  const algorithms = [...(options.algorithms ?? SIGNING_ALGORITHMS)];
  const nowMs = options.clock.now();
  const nowSeconds = Math.floor(nowMs / 1000);
  const tolerance = options.clockToleranceSeconds ?? 5;

  const header = inspectHeader(decoded.header, options, algorithms, decoded.signed);
  const claims = inspectClaims(decoded.payload, options, nowSeconds);

  let signature: TokenInspection['signature'];
  try {
    await jwtVerify(decoded.token, createLocalJWKSet(options.jwks), {
      issuer: options.issuer,
      typ: 'at+jwt',
      algorithms,
      currentDate: new Date(nowMs),
      clockTolerance: tolerance,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
      ...(options.expectedAudience !== undefined ? { audience: options.expectedAudience } : {}),
    });
    signature = { status: 'valid', explanation: 'verified with a published Mandate key' };
  } catch (error) {
    const explained = explainVerifyError(error);
    signature = explained.signature;
    if (explained.claimProblem !== undefined && ![...header, ...claims].some((l) => l.status === 'refused')) {
      claims.push({ name: 'claims', status: 'refused', explanation: explained.claimProblem });
    }
  }

  const trusted = signature.status === 'valid';
  const reasons = [
    ...(trusted ? [] : [`signature: ${signature.explanation}`]),
    ...[...header, ...claims].filter((l) => l.status === 'refused').map((l) => `${l.name}: ${l.explanation}`),
  ];
  const verdict = reasons.length === 0 ? 'accepted' : 'refused';
  const summary =
    verdict === 'accepted'
      ? `accepted: a valid mandate from ${display(decoded.payload.iss)} for ${display(decoded.payload.aud)}`
      : `refused: ${reasons[0] as string}`;
  return { verdict, summary, reasons, signature, trusted, header, claims };
}

/** What {@link inspectTokenRecord} reads: the issued-token records and, optionally, the tasks (narrow ports). */
export interface TokenRecordSources {
  tokens: Pick<TokenStore, 'get'>;
  /** When given, the task a mandate belongs to is checked too. */
  tasks?: Pick<TaskStore, 'get'>;
}

/** How {@link inspectTokenRecord} checks. */
export interface TokenRecordOptions {
  clock: Clock;
  /** `tokens.maxDelegationDepth`: how many earlier mandates the token service follows before it refuses. */
  maxDelegationDepth: number;
}

const MAX_REASON_CHARS = 200;
const isoMs = (ms: number): string => new Date(ms).toISOString();
const reasonText = (reason: string): string => bounded(escaped(reason), MAX_REASON_CHARS);

/** The record's own revocation, told as the token service tells it (a task's mandates are revoked as `task <status>: <code>`). */
function revocationLine(record: IssuedTokenRecord & { revokedAt: number }): InspectionLine {
  const reason = record.revokedReason;
  if (reason?.startsWith('task ')) {
    return { name: 'revocation', value: isoMs(record.revokedAt), status: 'refused', explanation: `its task ended (${reasonText(reason.slice(5))}): every mandate of a task is revoked when the task closes` };
  }
  const why = reason === undefined ? '' : ` (${reasonText(reason)})`;
  return { name: 'revocation', value: isoMs(record.revokedAt), status: 'refused', explanation: `revoked${why}: refused from then on, before it expires` };
}

/** Whether the task a mandate belongs to still lets it be used: closed, or past the limits it was opened with. */
function taskLine(taskId: string, task: TaskRecord | undefined, nowMs: number): InspectionLine {
  const name = 'task status';
  if (task === undefined) return { name, status: 'refused', explanation: `its task ${escaped(taskId)} is not known to this store` };
  if (task.status !== 'open') {
    return { name, value: display(task.status), status: 'refused', explanation: `its task ended (${task.status}: ${reasonText(task.endReason ?? 'no reason recorded')})` };
  }
  // The node ends a task past its limits at the task's next use; the workflow's current definition is not read here.
  if (nowMs >= task.expiresAt) {
    return { name, value: display('open'), status: 'refused', explanation: `its task reached its maximum duration at ${isoMs(task.expiresAt)}; its next use ends it` };
  }
  if (nowMs - task.lastActivityAt >= task.idleTimeoutMs) {
    return { name, value: display('open'), status: 'refused', explanation: `its task has been idle since ${isoMs(task.lastActivityAt)}, beyond its idle limit of ${Math.round(task.idleTimeoutMs / 1000)} s; its next use ends it` };
  }
  return { name, value: display('open'), status: 'ok', explanation: `its task is open (workflow ${escaped(task.workflowId)}, until ${isoMs(task.expiresAt)})` };
}

/**
 * The chain of mandates this one was exchanged from, walked as the token service walks it (`parentJti`, at
 * most `maxDelegationDepth` + 1 hops): a mandate re-exchanged from a revoked one is refused with it.
 */
async function chainLine(record: IssuedTokenRecord, tokens: TokenRecordSources['tokens'], maxDepth: number): Promise<InspectionLine | undefined> {
  if (record.parentJti === undefined) return undefined;
  let parentJti: string | undefined = record.parentJti;
  let hops = 0;
  for (; parentJti !== undefined; hops++) {
    if (hops > maxDepth) return { name: 'chain', status: 'refused', explanation: `its chain of earlier mandates is longer than allowed (tokens.maxDelegationDepth ${maxDepth})` };
    const parent = await tokens.get(parentJti);
    if (parent === undefined) {
      return { name: 'chain', value: display(parentJti), status: 'refused', explanation: 'an earlier mandate in its chain is not known to this store, so the token service treats it as revoked' };
    }
    if (parent.revokedAt !== undefined) {
      const why = parent.revokedReason === undefined ? '' : `: ${reasonText(parent.revokedReason)}`;
      return {
        name: 'chain',
        value: display(parent.jti),
        status: 'refused',
        explanation: `an earlier mandate in its chain was revoked (${isoMs(parent.revokedAt)}${why}); a mandate exchanged from a revoked one is refused with it`,
      };
    }
    parentJti = parent.parentJti;
  }
  return { name: 'chain', status: 'ok', explanation: `exchanged from ${hops} earlier mandate${hops === 1 ? '' : 's'}, none revoked` };
}

/**
 * Adds what the issuing store knows about a verified mandate, checked as the token service checks it before
 * accepting one: its own record (unknown: reported; revoked: refused, saying when its task ended), the task it
 * belongs to, and every mandate it was re-exchanged from. A token whose signature did not verify is returned
 * as it is: a forged token's jti proves nothing.
 * @param jti the token's `jti` claim, as decoded
 * @example
 * const report = await inspectTokenRecord(await inspectToken(jwt, options), jti, { tokens: store.tokens, tasks: store.tasks }, { clock, maxDelegationDepth: 4 });
 */
export async function inspectTokenRecord(inspection: TokenInspection, jti: unknown, sources: TokenRecordSources, options: TokenRecordOptions): Promise<TokenInspection> {
  if (!inspection.trusted || typeof jti !== 'string' || jti === '') return inspection;
  const record = await sources.tokens.get(jti);
  const lines: InspectionLine[] = [];
  if (record === undefined) {
    lines.push({ name: 'record', status: 'info', explanation: "no record of this jti in the store: not issued by this store's token service (introspection would answer active: false)" });
  } else if (record.revokedAt !== undefined) {
    lines.push(revocationLine({ ...record, revokedAt: record.revokedAt }));
  } else {
    lines.push({ name: 'record', status: 'ok', explanation: `issued by this Mandate at ${isoMs(record.issuedAt)} to ${escaped(record.clientId)}; not revoked` });
    if (record.taskId !== undefined && sources.tasks !== undefined) lines.push(taskLine(record.taskId, await sources.tasks.get(record.taskId), options.clock.now()));
    const chain = await chainLine(record, sources.tokens, options.maxDelegationDepth);
    if (chain !== undefined) lines.push(chain);
  }
  const refused = lines.filter((l) => l.status === 'refused').map((l) => `${l.name}: ${l.explanation}`);
  const claims = [...inspection.claims, ...lines];
  if (refused.length === 0) return { ...inspection, claims };
  const reasons = [...inspection.reasons, ...refused];
  return { ...inspection, claims, reasons, verdict: 'refused', summary: `refused: ${reasons[0] as string}` };
}

/** Renders an inspection as text for the CLI; the signature itself is never shown. */
export function renderTokenInspection(inspection: TokenInspection): string {
  const mark: Record<InspectionStatus, string> = { ok: 'ok', refused: 'REFUSED', info: 'info' };
  const rows = (lines: InspectionLine[]): string[] => {
    const nameWidth = Math.max(0, ...lines.map((l) => l.name.length));
    return lines.map((l) => {
      const head = `  ${mark[l.status].padEnd(7)}  ${l.name.padEnd(nameWidth)}  `;
      return l.value === undefined ? `${head}${l.explanation}` : `${head}${l.value}\n  ${' '.repeat(7)}  ${' '.repeat(nameWidth)}  ↳ ${l.explanation}`;
    });
  };
  const out = [
    `verdict: ${inspection.verdict.toUpperCase()}`,
    `  ${inspection.summary}`,
    `signature: ${inspection.signature.status} (${inspection.signature.explanation}; the signature is not shown)`,
  ];
  if (!inspection.trusted) out.push('warning: the signature did not verify, so nothing below is proven; it is shown only to explain');
  out.push('', 'header', ...rows(inspection.header), '', 'claims', ...rows(inspection.claims));
  if (inspection.reasons.length > 1) out.push('', 'all reasons for refusal', ...inspection.reasons.map((r) => `  - ${r}`));
  return `${out.join('\n')}\n`;
}
