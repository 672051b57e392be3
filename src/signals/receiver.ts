/**
 * The SET receiver: verifies a Security Event Token pushed by a configured transmitter (RFC 8935), maps its subject
 * to a Mandate principal, hands CAEP events to the revocation path (`onSignal`), and audits every SET received or
 * refused. HTTP-free: ssf-routes.ts feeds it the body and headers and renders what it returns or throws.
 *
 * Checks, in order (signature before claims; nothing is acted on before every check passed):
 * 1. the transmitter is configured (its own endpoint path), and the push carries its `Authorization` when one is configured;
 * 2. the body is a compact JWS (an encrypted SET is refused), its `alg` is on the transmitter's allowlist (never `none`/HMAC);
 * 3. the signature, with a key of the transmitter's JWKS (remote, cached, rotation-aware: key-sources.ts);
 * 4. `typ` is `secevent+jwt` (SSF 1.0 §"Explicit Typing of SETs"), `iss` is exactly the transmitter's issuer, `aud`
 *    names Mandate, `iat` is present and neither in the future nor older than `maxSetAgeSeconds`, `exp` (which SSF
 *    forbids but RFC 8417 allows) is honoured when present, `jti` is present, `sub` is absent (RFC 8417 §2.2,
 *    SSF 1.0 §"SSF Event Subject");
 * 5. `events` holds one event we know (unknown event types are accepted and ignored: SSF receivers ignore what they
 *    do not understand), its payload conforms to its CAEP definition, and its subject is well-formed;
 * 6. `jti` is single-use per transmitter (ReplayCache), remembered until the SET is too old to be accepted anyway.
 *
 * A CAEP event is acknowledged only after `onSignal` resolved (RFC 8935 §2: "Once the SET has been validated and
 * persisted"). When `onSignal` or the audit fails, the `jti` is released so that the transmitter's retry is
 * processed rather than refused as a replay.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8935 (Push-Based SET Delivery Using HTTP)
 * @see https://www.rfc-editor.org/rfc/rfc8417 (Security Event Token)
 */
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { createAuditEvent, type NewAuditEvent } from '../audit/audit-event.ts';
import { verifyCredential } from '../config/credentials.ts';
import { isMandateError, StoreUnavailableError, type MandateError } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import { createRemoteKeySource, UnknownKeyError } from '../identity/key-sources.ts';
import type { FetchJson, KeySource, KeySourceStatus, ReplayCache } from '../identity/types.ts';
import { CAEP_EVENTS, EVENT_TYPES, type InitiatingEntity, type Signal, type SignalDetails, type SignalSubject, type SubjectIdentifier } from './events.ts';
import { SetRefusedError } from './set-errors.ts';
import type { SsfReceiverConfig, SsfTransmitterConfig } from './signals-config.ts';
import { checkSubjectIdentifier, mapSubject, type SubjectPrincipalLookup } from './subject.ts';

/**
 * The one-time-id store for SET `jti`s. A {@link ReplayCache}; `release`, when the implementation has it, forgets an
 * id again (used when a SET could not be applied, so that its retry is not mistaken for a replay).
 */
export interface SetReplayCache extends ReplayCache {
  release?(namespace: string, id: string): Promise<void>;
}

/** Where the revocation path receives verified CAEP events. Resolves once the effect is durable; rejects otherwise. */
export type OnSignal = (signal: Signal) => Promise<void>;

/** Records an audit event; resolves once durable, rejects when the log refuses (the request is then refused). */
export type AuditSink = (event: NewAuditEvent) => Promise<void>;

/** Dependencies of {@link createSetReceiver}. */
export interface SetReceiverDeps {
  config: SsfReceiverConfig;
  /** The guarded fetch (src/identity/outbound.ts `createFetchJson(config.outbound)`), for the transmitters' JWKS. */
  fetchJson: FetchJson;
  replay: SetReplayCache;
  principals: SubjectPrincipalLookup;
  onSignal: OnSignal;
  audit: AuditSink;
  clock: Clock;
  ids?: IdGenerator;
  /** Key source per transmitter; default a remote JWKS source over `fetchJson` (tests may inject one). */
  keySource?: (transmitter: SsfTransmitterConfig) => KeySource;
}

/** What one push carried. */
export interface SetPush {
  /** The transmitter id from the endpoint path. */
  readonly transmitter: string;
  /** The request body (the compact SET), as text. */
  readonly body: string;
  /** The `Authorization` header, if any. */
  readonly authorization?: string;
  readonly requestId?: string;
  readonly traceId?: string;
}

/** What the receiver did with an accepted SET. */
export type SetReceipt =
  | { readonly outcome: 'applied'; readonly signal: Signal }
  | { readonly outcome: 'verification' | 'stream_updated'; readonly jti: string }
  | { readonly outcome: 'ignored'; readonly jti: string; readonly eventTypes: readonly string[] };

/** Readiness of one transmitter, for `/readyz` and logs. */
export interface TransmitterStatus {
  readonly id: string;
  readonly keys: KeySourceStatus;
  /** When the last verification event from it was accepted (epoch ms). */
  readonly lastVerificationAt?: number;
}

/** The receiver. */
export interface SetReceiver {
  /**
   * Verifies and processes one pushed SET. Resolves with what was done; rejects with `SetRefusedError` (the RFC 8935
   * error, already audited), or with a 5xx `MandateError` when the SET could not be judged or applied now (keys
   * unavailable, store down, `onSignal` failed): the transmitter should retry.
   */
  receive(push: SetPush): Promise<SetReceipt>;
  /** Audits a push refused before it reached {@link receive} (wrong media type, body too large). */
  refused(push: Omit<SetPush, 'body'>, error: SetRefusedError): Promise<void>;
  /** Whether a transmitter id is configured. */
  has(transmitter: string): boolean;
  status(): TransmitterStatus[];
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const INITIATING: ReadonlySet<string> = new Set(['admin', 'user', 'policy', 'system']);
const CHANGE_TYPES: ReadonlySet<string> = new Set(['create', 'revoke', 'update', 'delete']);
const MAX_FAILED_JTIS = 10_000;

const refuse = (...args: ConstructorParameters<typeof SetRefusedError>) => new SetRefusedError(...args);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Maps what jose throws while verifying to the RFC 8935 refusal; rethrows what is not the SET's fault. */
function verificationRefusal(error: unknown): never {
  if (error instanceof UnknownKeyError) throw refuse('invalid_key', 'unknown_key', 'no key of the transmitter matches the SET (kid, alg)', { cause: error });
  if (isMandateError(error)) throw error; // KeysUnavailableError (503) and the like: not the SET's fault
  if (error instanceof joseErrors.JOSEAlgNotAllowed) throw refuse('invalid_key', 'algorithm', 'the SET is signed with an algorithm this receiver does not accept for the transmitter', { cause: error });
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) throw refuse('authentication_failed', 'signature', 'the SET signature does not verify with the transmitter key', { cause: error });
  if (error instanceof joseErrors.JWTExpired) throw refuse('invalid_request', 'expired', 'the SET has expired (exp)', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        throw refuse('invalid_issuer', 'issuer', 'the SET issuer (iss) is not the one configured for this endpoint', { cause: error });
      case 'aud':
        throw refuse('invalid_audience', 'audience', 'the SET audience (aud) does not name this receiver', { cause: error });
      case 'typ':
        throw refuse('invalid_request', 'typ', 'the SET must be explicitly typed: typ secevent+jwt (RFC 8417 §2.3)', { cause: error });
      case 'jti':
        throw refuse('invalid_request', 'jti', 'the SET has no jti', { cause: error });
      case 'iat':
      case 'nbf':
        throw refuse('invalid_request', 'iat', `the SET ${error.claim} is missing or not acceptable`, { cause: error });
      default:
        throw refuse('invalid_request', 'malformed', 'the SET claims are not valid', { cause: error, detail: `claim ${clip(String(error.claim), 64)}` });
    }
  }
  if (error instanceof joseErrors.JOSENotSupported) throw refuse('invalid_key', 'algorithm', 'the SET uses an algorithm or header this receiver does not support', { cause: error });
  throw refuse('invalid_request', 'malformed', 'the body is not a valid signed SET', { cause: error });
}

/** Reads `reason_admin` (a language-tagged map, or a bare string from older transmitters). */
function reasonOf(value: unknown): string | undefined {
  if (typeof value === 'string') return clip(value, 256);
  if (!isObject(value)) return undefined;
  const text = value.en ?? Object.values(value).find((v) => typeof v === 'string');
  return typeof text === 'string' ? clip(text, 256) : undefined;
}

function eventInvalid(description: string): SetRefusedError {
  return refuse('invalid_request', 'event_payload', description);
}

/** Checks a CAEP event payload against its definition (CAEP 1.0 §3) and returns its details. */
function detailsOf(name: SignalDetails['event'], payload: Record<string, unknown>): SignalDetails {
  switch (name) {
    case 'session-revoked':
      return { event: name };
    case 'credential-change': {
      const { credential_type: credentialType, change_type: changeType } = payload;
      if (typeof credentialType !== 'string' || credentialType === '' || credentialType.length > 128) throw eventInvalid('credential-change needs credential_type (CAEP 1.0 §3.3)');
      if (typeof changeType !== 'string' || !CHANGE_TYPES.has(changeType)) throw eventInvalid('credential-change needs change_type: create, revoke, update or delete');
      return { event: name, credentialType, changeType: changeType as 'create' | 'revoke' | 'update' | 'delete' };
    }
    case 'token-claims-change': {
      const claims = payload.claims;
      if (!isObject(claims) || Object.keys(claims).length === 0) throw eventInvalid('token-claims-change needs a non-empty claims object (CAEP 1.0 §3.2)');
      return { event: name, claimNames: Object.keys(claims).slice(0, 64).map((k) => clip(k, 128)) };
    }
    case 'assurance-level-change': {
      const { namespace, current_level: currentLevel, previous_level: previousLevel, change_direction: direction } = payload;
      if (typeof namespace !== 'string' || namespace === '' || namespace.length > 256) throw eventInvalid('assurance-level-change needs namespace (CAEP 1.0 §3.4)');
      if (typeof currentLevel !== 'string' || currentLevel === '' || currentLevel.length > 256) throw eventInvalid('assurance-level-change needs current_level');
      if (previousLevel !== undefined && (typeof previousLevel !== 'string' || previousLevel.length > 256)) throw eventInvalid('assurance-level-change previous_level must be a string');
      if (direction !== undefined && direction !== 'increase' && direction !== 'decrease') throw eventInvalid('assurance-level-change change_direction must be increase or decrease');
      return {
        event: name,
        namespace,
        currentLevel,
        ...(previousLevel === undefined ? {} : { previousLevel }),
        ...(direction === undefined ? {} : { changeDirection: direction }),
      };
    }
  }
}

/**
 * Creates the receiver over the configured transmitters.
 *
 * @example
 * const receiver = createSetReceiver({ config: config.signals.receiver, fetchJson, replay, principals, onSignal, audit, clock });
 * registerSsfRoutes(app, { receiver, maxSetBytes: config.signals.receiver.maxSetBytes });
 */
export function createSetReceiver(deps: SetReceiverDeps): SetReceiver {
  const { config, clock } = deps;
  const transmitters = new Map<string, { config: SsfTransmitterConfig; keys: KeySource; lastVerificationAt?: number }>();
  for (const t of config.transmitters) {
    const keys = deps.keySource?.(t) ?? createRemoteKeySource({ url: t.jwksUri, fetchJson: deps.fetchJson, clock });
    transmitters.set(t.id, { config: t, keys });
  }
  // jtis whose SET was consumed but could not be applied, when the replay cache cannot release them: a retry
  // reaching this node is processed again. Bounded; oldest forgotten first.
  const failedJtis = new Set<string>();

  const namespaceOf = (t: SsfTransmitterConfig) => `ssf-set:${t.id}`;

  async function release(t: SsfTransmitterConfig, jti: string): Promise<void> {
    try {
      if (deps.replay.release !== undefined) {
        await deps.replay.release(namespaceOf(t), jti);
        return;
      }
    } catch {
      // fall through to the local record
    }
    failedJtis.add(`${t.id}\u0000${jti}`);
    if (failedJtis.size > MAX_FAILED_JTIS) failedJtis.delete(failedJtis.values().next().value as string);
  }

  async function firstUse(t: SsfTransmitterConfig, jti: string, expiresAtMs: number): Promise<boolean> {
    if (await deps.replay.use(namespaceOf(t), jti, expiresAtMs)) return true;
    return failedJtis.delete(`${t.id}\u0000${jti}`);
  }

  function auditFields(push: Omit<SetPush, 'body'>) {
    return {
      actor: clip(`transmitter:${push.transmitter}`, 512),
      ...(push.traceId === undefined ? {} : { traceId: push.traceId }),
    };
  }

  async function record(event: NewAuditEvent): Promise<void> {
    try {
      await deps.audit(event);
    } catch (cause) {
      throw new StoreUnavailableError('the audit log cannot record this SET, so it was not acknowledged; retry shortly', { cause });
    }
  }

  async function refused(push: Omit<SetPush, 'body'>, error: MandateError, jti?: string): Promise<void> {
    const isRefusal = error instanceof SetRefusedError;
    await record(
      createAuditEvent(
        {
          type: 'signal.refuse',
          outcome: 'failure',
          ...auditFields(push),
          reasons: [clip(error.description, 2048)],
          data: {
            transmitter: clip(push.transmitter, 64),
            ...(isRefusal ? { err: error.err, reason: error.reason } : { code: error.code, status: error.status }),
            ...(jti === undefined ? {} : { jti: clip(jti, 256) }),
            ...(push.requestId === undefined ? {} : { requestId: clip(push.requestId, 128) }),
          },
        },
        { clock, ...(deps.ids === undefined ? {} : { ids: deps.ids }) },
      ),
    );
  }

  async function verify(t: SsfTransmitterConfig, keys: KeySource, body: string): Promise<JWTPayload> {
    const token = body.trim();
    if (COMPACT_JWE.test(token)) throw refuse('invalid_request', 'encrypted', 'encrypted SETs are not accepted; send a signed SET (compact JWS)');
    if (!COMPACT_JWS.test(token)) throw refuse('invalid_request', 'malformed', 'the body is not a compact JWS (a signed SET)');
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (cause) {
      throw refuse('invalid_request', 'malformed', 'the SET header is not valid', { cause });
    }
    // Refused before any key is looked up: `none` and HMAC are never on the list (signals-config.ts).
    if (typeof alg !== 'string' || !(t.algorithms as readonly string[]).includes(alg)) {
      throw refuse('invalid_key', 'algorithm', 'the SET is signed with an algorithm this receiver does not accept for the transmitter', { detail: `alg ${clip(String(alg), 32)}` });
    }
    const nowMs = clock.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys.getKey, {
        algorithms: [...t.algorithms],
        issuer: t.issuer,
        audience: [...t.audience],
        typ: 'secevent+jwt',
        currentDate: new Date(nowMs),
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ['iat', 'jti'],
      }));
    } catch (error) {
      verificationRefusal(error);
    }
    const now = nowMs / 1000;
    const iat = payload.iat as number;
    if (iat > now + config.clockToleranceSeconds) throw refuse('invalid_request', 'iat', 'the SET iat is in the future');
    if (iat < now - config.maxSetAgeSeconds - config.clockToleranceSeconds) {
      throw refuse('invalid_request', 'iat', `the SET is older than this receiver accepts (${config.maxSetAgeSeconds} s)`);
    }
    if (typeof payload.jti !== 'string' || payload.jti === '' || payload.jti.length > 256) throw refuse('invalid_request', 'jti', 'the SET jti must be a non-empty string of at most 256 characters');
    if (payload.sub !== undefined) throw refuse('invalid_request', 'sub_claim', 'a SET must not carry a sub claim; name the subject in sub_id (RFC 8417 §2.2, SSF 1.0 §4.1.2)');
    return payload;
  }

  async function process(push: SetPush, jtiSeen: (jti: string) => void): Promise<SetReceipt> {
    const entry = transmitters.get(push.transmitter);
    if (entry === undefined) throw refuse('invalid_request', 'unknown_transmitter', 'no transmitter is configured at this endpoint', { status: 404 });
    const t = entry.config;
    if (t.authorizationHash !== undefined && (push.authorization === undefined || !verifyCredential(push.authorization, t.authorizationHash))) {
      throw refuse('authentication_failed', 'push_authentication', 'the push did not carry the Authorization header agreed with this receiver');
    }
    const payload = await verify(t, entry.keys, push.body);
    const jti = payload.jti as string;
    jtiSeen(jti);

    const events = payload.events;
    if (!isObject(events) || Object.keys(events).length === 0) throw refuse('invalid_request', 'events', 'the SET needs an events claim with one event (RFC 8417 §2.2)');
    const known = Object.keys(events).filter((uri) => CAEP_EVENTS.has(uri) || uri === EVENT_TYPES.verification || uri === EVENT_TYPES.streamUpdated);
    // SSF 1.0 §4.2.1: one event per SET; several URIs only as aliases of one event type, which none of ours are.
    if (known.length > 1) throw refuse('invalid_request', 'events', 'the SET carries more than one event; send one event per SET (SSF 1.0 §4.2.1)');
    const uri = known[0];
    const expiresAtMs = ((payload.iat as number) + config.maxSetAgeSeconds + 2 * config.clockToleranceSeconds) * 1000;

    if (uri === undefined) {
      // Unknown event types are not errors (SSF 1.0 §4.2.3: receivers ignore what they do not understand), but
      // the jti is still consumed so that a replay is refused like any other.
      if (!(await firstUse(t, jti, expiresAtMs))) throw refuse('invalid_request', 'replay', 'this SET (jti) was already received');
      return { outcome: 'ignored', jti, eventTypes: Object.keys(events).slice(0, 8).map((e) => clip(e, 256)) };
    }
    const payloadOf = events[uri];
    if (!isObject(payloadOf)) throw refuse('invalid_request', 'event_payload', 'the event payload must be a JSON object');

    // SSF 1.0 puts the subject in the top-level sub_id; transmitters on older drafts put it inside the event.
    const rawSubject = payload.sub_id ?? payloadOf.subject;
    if (rawSubject === undefined) throw refuse('invalid_request', 'subject', 'the SET has no subject (sub_id)');
    const subjectId: SubjectIdentifier = checkSubjectIdentifier(rawSubject, 'sub_id');

    if (uri === EVENT_TYPES.verification || uri === EVENT_TYPES.streamUpdated) {
      // SSF 1.0 §8.1.4.1 and §8.1.5: the subject is the stream, as an opaque id.
      if (subjectId.format !== 'opaque') throw refuse('invalid_request', 'stream_id', 'a verification or stream-updated event names its stream as an opaque sub_id');
      if (t.streamId !== undefined && subjectId.id !== t.streamId) throw refuse('invalid_request', 'stream_id', 'the event names a stream other than the one configured for this transmitter');
      if (!(await firstUse(t, jti, expiresAtMs))) throw refuse('invalid_request', 'replay', 'this SET (jti) was already received');
      if (uri === EVENT_TYPES.verification) entry.lastVerificationAt = clock.now();
      return { outcome: uri === EVENT_TYPES.verification ? 'verification' : 'stream_updated', jti };
    }

    const name = CAEP_EVENTS.get(uri) as SignalDetails['event'];
    const details = detailsOf(name, payloadOf);
    const initiating = payloadOf.initiating_entity;
    if (initiating !== undefined && (typeof initiating !== 'string' || !INITIATING.has(initiating))) {
      throw eventInvalid('initiating_entity must be admin, user, policy or system (CAEP 1.0 §2)');
    }
    const timestamp = payloadOf.event_timestamp;
    if (timestamp !== undefined && (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0)) throw eventInvalid('event_timestamp must be a number of seconds');
    const subject: SignalSubject = await mapSubject(subjectId, t, deps.principals);
    const reasonAdmin = reasonOf(payloadOf.reason_admin);
    const issuedAtMs = (payload.iat as number) * 1000;
    const signal: Signal = {
      transmitter: t.id,
      issuer: t.issuer,
      jti,
      ...(typeof payload.txn === 'string' ? { txn: clip(payload.txn, 256) } : {}),
      eventType: uri,
      issuedAtMs,
      occurredAtMs: typeof timestamp === 'number' ? Math.round(timestamp * 1000) : issuedAtMs,
      subject,
      ...(initiating === undefined ? {} : { initiatingEntity: initiating as InitiatingEntity }),
      ...(reasonAdmin === undefined ? {} : { reasonAdmin }),
      details,
    };

    if (!(await firstUse(t, jti, expiresAtMs))) throw refuse('invalid_request', 'replay', 'this SET (jti) was already received');
    try {
      await deps.onSignal(signal);
    } catch (cause) {
      await release(t, jti);
      if (isMandateError(cause) && cause.status >= 500) throw cause;
      throw new StoreUnavailableError('the signal could not be applied now; retry the delivery', { cause });
    }
    return { outcome: 'applied', signal };
  }

  function principalData(subject: SignalSubject): Record<string, unknown> {
    const p = subject.principal;
    const out: Record<string, unknown> = {};
    if (p?.kind === 'user') out.principal = { kind: 'user', iss: clip(p.iss, 512), sub: clip(p.sub, 512) };
    else if (p !== undefined) out.principal = { kind: p.kind, id: clip(p.id, 256) };
    if (subject.session !== undefined) out.session = true;
    if (subject.token !== undefined) out.tokenJti = clip(subject.token.jti, 256);
    return out;
  }

  async function receive(push: SetPush): Promise<SetReceipt> {
    let jti: string | undefined;
    let receipt: SetReceipt;
    try {
      receipt = await process(push, (seen) => {
        jti = seen;
      });
    } catch (error) {
      const err = isMandateError(error) ? error : new StoreUnavailableError('the SET could not be processed now; retry the delivery', { cause: error });
      await refused(push, err, jti);
      throw err;
    }
    const data: Record<string, unknown> = {
      transmitter: clip(push.transmitter, 64),
      outcome: receipt.outcome,
      ...(push.requestId === undefined ? {} : { requestId: clip(push.requestId, 128) }),
    };
    if (receipt.outcome === 'applied') {
      const s = receipt.signal;
      Object.assign(data, { jti: clip(s.jti, 256), eventType: s.eventType, ...(s.txn === undefined ? {} : { txn: s.txn }), ...principalData(s.subject) });
    } else {
      data.jti = clip(receipt.jti, 256);
      if (receipt.outcome === 'ignored') data.eventTypes = receipt.eventTypes;
    }
    try {
      await record(
        createAuditEvent(
          {
            type: 'signal.receive',
            outcome: 'success',
            ...auditFields(push),
            ...(receipt.outcome === 'applied' && receipt.signal.reasonAdmin !== undefined ? { reasons: [receipt.signal.reasonAdmin] } : {}),
            data,
          },
          { clock, ...(deps.ids === undefined ? {} : { ids: deps.ids }) },
        ),
      );
    } catch (error) {
      // Not acknowledged without its record: release the jti so that the retry is applied (idempotently) and audited.
      const entry = transmitters.get(push.transmitter);
      if (entry !== undefined && jti !== undefined) await release(entry.config, jti);
      throw error;
    }
    return receipt;
  }

  return {
    receive,
    refused: (push, error) => refused(push, error),
    has: (id) => transmitters.has(id),
    status: () =>
      [...transmitters.values()].map((e) => ({
        id: e.config.id,
        keys: e.keys.status(),
        ...(e.lastVerificationAt === undefined ? {} : { lastVerificationAt: e.lastVerificationAt }),
      })),
  };
}
