/**
 * The SSF transmitter: lets downstream systems subscribe to Mandate's revocations. It publishes the Transmitter
 * Configuration Metadata, manages event streams (SSF 1.0 §8: create, read, update, replace, delete, status,
 * verification) for authenticated API callers, and {@link Transmitter.emit}s SETs signed with Mandate's signing key
 * to every enabled stream that asked for the event, pushed per RFC 8935 through the guarded POST (push-set.ts).
 *
 * Emission never blocks the caller: SETs are signed and queued, and a small worker pool delivers them with bounded
 * retries and exponential backoff (on network errors, timeouts, 408, 429 and 5xx; `Retry-After` honoured up to the
 * backoff cap). A receiver's 4xx, an SSRF refusal or a redirect ends a delivery at once. Every delivery that
 * succeeded or was given up is audited (`signal.emit`) and counted. The queue is in memory: deliveries pending at
 * shutdown are lost (counted as dropped by {@link Transmitter.close}).
 *
 * What Mandate emits:
 * - a task revoked (ended by a revocation) → CAEP `session-revoked`, subject `complex` { session: opaque task id,
 *   user: iss_sub, application: the agent };
 * - an agent suspended, quarantined or retired → CAEP `credential-change` with `change_type: revoke` and
 *   `credential_type: "workload"` (a value agreed between the parties, CAEP 1.0 §3.3), subject the agent's SPIFFE
 *   ID (`uri`) or its registry id (`opaque`).
 *
 * @see https://openid.net/specs/openid-sharedsignals-framework-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc8935
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, type CryptoKey, type KeyObject } from 'jose';
import { createAuditEvent } from '../audit/audit-event.ts';
import { ConflictError, InvalidRequestError, isMandateError, NotFoundError, RateLimitedError } from '../core/errors.ts';
import type { Clock, IdGenerator } from '../core/ports.ts';
import { OutboundRefusedError } from '../identity/outbound.ts';
import type { OutboundPolicy } from '../identity/types.ts';
import { EVENT_TYPES, PUSH_DELIVERY_METHOD, type InitiatingEntity, type SubjectIdentifier } from './events.ts';
import { pushEndpointProblem, type PushSet } from './push-set.ts';
import type { AuditSink } from './receiver.ts';
import type { SsfTransmitterSideConfig } from './signals-config.ts';
import type { SsfStream, SsfStreamStatus, SsfStreamStore } from './stream-store.ts';

/** The API scope a caller needs to manage its event streams. */
export const SIGNALS_MANAGE_SCOPE = 'signals:manage';

/** Events Mandate transmits (besides the SSF verification event, always allowed). */
export const EVENTS_SUPPORTED: readonly string[] = Object.freeze([EVENT_TYPES.sessionRevoked, EVENT_TYPES.credentialChange]);

/** The key that signs SETs (src/tokens/signing-keys.ts `KeyManager.signer()` satisfies it). */
export type SetSigner = () => Promise<{ kid: string; alg: string; key: CryptoKey | KeyObject }>;

/** Something Mandate did that downstream receivers may want to hear about. */
export type MandateEventV1 =
  | {
      readonly type: 'task.revoked';
      readonly taskId: string;
      /** The user the task ran for. */
      readonly user?: { readonly iss: string; readonly sub: string };
      /** The agent that ran it. */
      readonly agent?: { readonly id: string; readonly spiffeId?: string };
      readonly reason?: string;
      readonly initiatingEntity?: InitiatingEntity;
      /** When the revocation happened, epoch ms (default: now). */
      readonly occurredAtMs?: number;
      /** The same for every SET caused by one underlying event (SSF 1.0 §4.1.7), e.g. a revocation id. */
      readonly txn?: string;
    }
  | {
      readonly type: 'agent.disabled';
      readonly agent: { readonly id: string; readonly spiffeId?: string };
      readonly status: 'suspended' | 'quarantined' | 'retired';
      readonly reason?: string;
      readonly initiatingEntity?: InitiatingEntity;
      readonly occurredAtMs?: number;
      readonly txn?: string;
    };
/** Same as {@link MandateEventV1}. */
export type MandateEvent = MandateEventV1;

/** An authenticated caller of the stream management API. */
export interface StreamCaller {
  readonly id: string;
}

/** Outcome of one delivery, for metrics. */
export type DeliveryOutcome = 'delivered' | 'retried' | 'failed' | 'dropped';

/** Dependencies of {@link createTransmitter}. */
export interface TransmitterDeps {
  config: SsfTransmitterSideConfig;
  store: SsfStreamStore;
  signer: SetSigner;
  /** Mandate's issuer identifier (a function: known once the server listens). */
  issuer: () => string;
  /** The guarded POST (push-set.ts `createPushSet(config.outbound)`). */
  push: PushSet;
  /** The outbound policy, to refuse private push endpoints at stream creation already. */
  outbound: Pick<OutboundPolicy, 'allowHttp' | 'allowPrivateNetworks' | 'allowHosts'>;
  audit: AuditSink;
  clock: Clock;
  ids?: IdGenerator;
  /** Counts delivery outcomes (Prometheus). */
  onDelivery?: (outcome: DeliveryOutcome) => void;
  /** Randomness in [0, 1) for backoff jitter; default Math.random. */
  random?: () => number;
}

/** Counters of the delivery queue. */
export interface TransmitterStats {
  queued: number;
  inFlight: number;
  delivered: number;
  retried: number;
  failed: number;
  dropped: number;
  auditFailed: number;
}

/** The transmitter. Stream operations reject with `MandateError`s that render as SSF 1.0 §8 prescribes. */
export interface Transmitter {
  /** The Transmitter Configuration Metadata (SSF 1.0 §7.1), with endpoints under `baseUrl`. */
  metadata(): Record<string, unknown>;
  createStream(caller: StreamCaller, body: unknown): Promise<Record<string, unknown>>;
  /** One stream, or (no `streamId`) the caller's list. */
  readStreams(caller: StreamCaller, streamId: string | undefined): Promise<Record<string, unknown> | Record<string, unknown>[]>;
  updateStream(caller: StreamCaller, body: unknown): Promise<Record<string, unknown>>;
  replaceStream(caller: StreamCaller, body: unknown): Promise<Record<string, unknown>>;
  deleteStream(caller: StreamCaller, streamId: string | undefined): Promise<void>;
  readStatus(caller: StreamCaller, streamId: string | undefined): Promise<Record<string, unknown>>;
  updateStatus(caller: StreamCaller, body: unknown): Promise<Record<string, unknown>>;
  /** Queues a verification event on a stream (SSF 1.0 §8.1.4.2). */
  requestVerification(caller: StreamCaller, body: unknown): Promise<void>;
  /** Signs and queues the SETs for one event; resolves once queued (never waits for delivery, never rejects). */
  emit(event: MandateEvent): Promise<{ queued: number }>;
  /** Resolves when nothing is queued or in flight (tests, graceful shutdown). */
  drain(): Promise<void>;
  /** Stops delivering; pending deliveries are dropped and counted. */
  close(): void;
  stats(): TransmitterStats;
}

/** Paths of the management API, relative to the issuer. */
export const SSF_PATHS = {
  metadata: '/.well-known/ssf-configuration',
  stream: '/ssf/stream',
  status: '/ssf/status',
  verify: '/ssf/verify',
  jwks: '/oauth/jwks',
} as const;

interface Job {
  readonly streamId: string;
  readonly set: string;
  readonly jti: string;
  readonly eventType: string;
  attempt: number;
  notBefore: number;
}

const MAX_EVENTS_REQUESTED = 64;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function bad(description: string): InvalidRequestError {
  return new InvalidRequestError(description);
}

function streamIdOf(value: unknown, where = 'stream_id'): string {
  if (typeof value !== 'string' || value === '' || value.length > 128) throw bad(`${where} is required (a string)`);
  return value;
}

/**
 * Creates the transmitter.
 *
 * @example
 * const transmitter = createTransmitter({ config: config.signals.transmitter, store, signer: () => keys.signer(),
 *   issuer: () => issuer, push: createPushSet(config.outbound), outbound: config.outbound, audit, clock: systemClock });
 * await transmitter.emit({ type: 'task.revoked', taskId, user, agent, reason: 'task ended by revocation' });
 */
export function createTransmitter(deps: TransmitterDeps): Transmitter {
  const { config, store, clock } = deps;
  const random = deps.random ?? Math.random;
  const base = () => deps.issuer().replace(/\/+$/, '');
  const queue: Job[] = [];
  const stats: TransmitterStats = { queued: 0, inFlight: 0, delivered: 0, retried: 0, failed: 0, dropped: 0, auditFailed: 0 };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let idleWaiters: (() => void)[] = [];

  const count = (outcome: DeliveryOutcome) => {
    stats[outcome] += 1;
    deps.onDelivery?.(outcome);
  };

  async function audit(outcome: 'success' | 'failure', data: Record<string, unknown>, reasons?: string[], actor?: string, type: 'signal.emit' | 'admin' = 'signal.emit'): Promise<void> {
    try {
      await deps.audit(
        createAuditEvent(
          { type, outcome, ...(actor === undefined ? {} : { actor: clip(actor, 512) }), ...(reasons === undefined ? {} : { reasons }), data },
          { clock, ...(deps.ids === undefined ? {} : { ids: deps.ids }) },
        ),
      );
    } catch {
      stats.auditFailed += 1;
    }
  }

  // ------------------------------------------------------------------ wire representation

  function audienceFor(owner: string): string[] {
    return [...(config.audiences[owner] ?? [owner])];
  }

  function toWire(s: SsfStream): Record<string, unknown> {
    return {
      stream_id: s.streamId,
      iss: deps.issuer(),
      aud: s.aud.length === 1 ? s.aud[0] : [...s.aud],
      delivery: { method: s.delivery.method, endpoint_url: s.delivery.endpointUrl },
      events_supported: [...EVENTS_SUPPORTED],
      events_requested: [...s.eventsRequested],
      events_delivered: [...s.eventsDelivered],
      ...(s.description === undefined ? {} : { description: s.description }),
      min_verification_interval: config.minVerificationIntervalSeconds,
    };
  }

  function parseDelivery(value: unknown): SsfStream['delivery'] {
    // SSF 1.0 §8.1.1.1: no delivery means poll, which Mandate does not offer.
    if (value === undefined) throw bad(`delivery is required: Mandate delivers by push only (method ${PUSH_DELIVERY_METHOD})`);
    if (!isObject(value)) throw bad('delivery must be an object');
    if (value.method !== PUSH_DELIVERY_METHOD) throw bad(`delivery.method must be ${PUSH_DELIVERY_METHOD} (push, RFC 8935); poll is not offered`);
    const endpointUrl = value.endpoint_url;
    if (typeof endpointUrl !== 'string') throw bad('delivery.endpoint_url is required');
    const problem = pushEndpointProblem(endpointUrl, deps.outbound);
    if (problem !== undefined) throw bad(`delivery.${problem}`);
    const authorization = value.authorization_header;
    if (authorization !== undefined && (typeof authorization !== 'string' || authorization === '' || authorization.length > 4096 || /[\r\n]/.test(authorization))) {
      throw bad('delivery.authorization_header must be a header value of at most 4096 characters');
    }
    return { method: PUSH_DELIVERY_METHOD, endpointUrl, ...(authorization === undefined ? {} : { authorizationHeader: authorization }) };
  }

  function parseEventsRequested(value: unknown): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > MAX_EVENTS_REQUESTED || !value.every((e) => typeof e === 'string' && e.length > 0 && e.length <= 512)) {
      throw bad(`events_requested must be a list of at most ${MAX_EVENTS_REQUESTED} event type URIs`);
    }
    return [...new Set(value as string[])];
  }

  function parseDescription(value: unknown): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw bad('description must be a string');
    // SSF 1.0 §8.1.1: "The transmitter MAY truncate the string".
    return clip(value, 256);
  }

  const delivered = (requested: readonly string[]) => requested.filter((e) => EVENTS_SUPPORTED.includes(e));

  /** Transmitter-supplied members present in an update must match (SSF 1.0 §8.1.1.3). */
  function checkTransmitterSupplied(body: Record<string, unknown>, current: SsfStream): void {
    const wire = toWire(current);
    for (const key of ['iss', 'aud', 'events_supported', 'events_delivered', 'min_verification_interval'] as const) {
      if (body[key] === undefined) continue;
      const expected = key === 'aud' ? [...current.aud].sort() : wire[key];
      const given = key === 'aud' ? (Array.isArray(body.aud) ? [...(body.aud as unknown[])].sort() : [body.aud]) : body[key];
      if (JSON.stringify(given) !== JSON.stringify(expected)) throw bad(`${key} is set by the transmitter and does not match the stream's`);
    }
  }

  async function owned(caller: StreamCaller, streamId: string): Promise<SsfStream> {
    const s = await store.get(streamId);
    // Another caller's stream is reported as absent: its existence is not the caller's business.
    if (s === undefined || s.owner !== caller.id) throw new NotFoundError('no event stream with this stream_id for this receiver');
    return s;
  }

  async function save(s: SsfStream): Promise<void> {
    if (!(await store.replace(s))) throw new NotFoundError('no event stream with this stream_id for this receiver');
  }

  const adminData = (action: string, s: SsfStream) => ({ action: `signals.stream.${action}`, streamId: s.streamId, endpoint: clip(new URL(s.delivery.endpointUrl).origin, 512), status: s.status });

  // ------------------------------------------------------------------ stream management

  async function createStream(caller: StreamCaller, body: unknown): Promise<Record<string, unknown>> {
    if (!isObject(body)) throw bad('the request body must be a JSON object');
    const delivery = parseDelivery(body.delivery);
    const eventsRequested = parseEventsRequested(body.events_requested);
    const description = parseDescription(body.description);
    const existing = await store.listByOwner(caller.id);
    if (existing.length >= config.maxStreamsPerClient) {
      throw new ConflictError(`this receiver already has ${existing.length} event streams, the most allowed (signals.transmitter.maxStreamsPerClient)`);
    }
    const now = clock.now();
    const stream: SsfStream = {
      streamId: randomBytes(16).toString('hex'),
      owner: caller.id,
      aud: audienceFor(caller.id),
      eventsRequested,
      eventsDelivered: delivered(eventsRequested),
      delivery,
      ...(description === undefined ? {} : { description }),
      status: 'enabled',
      createdAt: now,
      updatedAt: now,
    };
    await store.create(stream);
    await audit('success', adminData('create', stream), undefined, caller.id, 'admin');
    return toWire(stream);
  }

  async function readStreams(caller: StreamCaller, streamId: string | undefined) {
    if (streamId === undefined) return (await store.listByOwner(caller.id)).map(toWire);
    return toWire(await owned(caller, streamIdOf(streamId)));
  }

  async function updateStream(caller: StreamCaller, body: unknown, replace = false): Promise<Record<string, unknown>> {
    if (!isObject(body)) throw bad('the request body must be a JSON object');
    const current = await owned(caller, streamIdOf(body.stream_id));
    checkTransmitterSupplied(body, current);
    // PATCH changes what is present; PUT replaces every receiver-supplied member (absent = deleted).
    const delivery = replace || body.delivery !== undefined ? parseDelivery(body.delivery) : current.delivery;
    const eventsRequested = replace || body.events_requested !== undefined ? parseEventsRequested(body.events_requested) : [...current.eventsRequested];
    const description = replace || body.description !== undefined ? parseDescription(body.description) : current.description;
    const { description: _old, ...rest } = current;
    const next: SsfStream = {
      ...rest,
      delivery,
      eventsRequested,
      eventsDelivered: delivered(eventsRequested),
      ...(description === undefined ? {} : { description }),
      updatedAt: clock.now(),
    };
    await save(next);
    await audit('success', adminData(replace ? 'replace' : 'update', next), undefined, caller.id, 'admin');
    return toWire(next);
  }

  async function deleteStream(caller: StreamCaller, streamId: string | undefined): Promise<void> {
    const s = await owned(caller, streamIdOf(streamId));
    if (!(await store.delete(s.streamId))) throw new NotFoundError('no event stream with this stream_id for this receiver');
    await audit('success', adminData('delete', s), undefined, caller.id, 'admin');
  }

  async function readStatus(caller: StreamCaller, streamId: string | undefined) {
    const s = await owned(caller, streamIdOf(streamId));
    return { stream_id: s.streamId, status: s.status, ...(s.reason === undefined ? {} : { reason: s.reason }) };
  }

  async function updateStatus(caller: StreamCaller, body: unknown) {
    if (!isObject(body)) throw bad('the request body must be a JSON object');
    const current = await owned(caller, streamIdOf(body.stream_id));
    const status = body.status;
    if (status !== 'enabled' && status !== 'paused' && status !== 'disabled') throw bad('status must be enabled, paused or disabled');
    const reason = body.reason === undefined ? undefined : typeof body.reason === 'string' ? clip(body.reason, 256) : undefined;
    if (body.reason !== undefined && reason === undefined) throw bad('reason must be a string');
    const { reason: _old, ...rest } = current;
    const next: SsfStream = { ...rest, status: status as SsfStreamStatus, ...(reason === undefined ? {} : { reason }), updatedAt: clock.now() };
    await save(next);
    await audit('success', adminData('status', next), undefined, caller.id, 'admin');
    return { stream_id: next.streamId, status: next.status, ...(reason === undefined ? {} : { reason }) };
  }

  async function requestVerification(caller: StreamCaller, body: unknown): Promise<void> {
    if (!isObject(body)) throw bad('the request body must be a JSON object');
    const current = await owned(caller, streamIdOf(body.stream_id));
    const state = body.state;
    if (state !== undefined && (typeof state !== 'string' || state.length > 1024)) throw bad('state must be a string of at most 1024 characters');
    if (current.status !== 'enabled') throw new ConflictError(`the stream is ${current.status}; events are not transmitted on it`);
    const now = clock.now();
    const intervalMs = config.minVerificationIntervalSeconds * 1000;
    if (current.lastVerificationRequestAt !== undefined && now - current.lastVerificationRequestAt < intervalMs) {
      const retryAfterSeconds = Math.max(1, Math.ceil((intervalMs - (now - current.lastVerificationRequestAt)) / 1000));
      throw new RateLimitedError(`verification requests on this stream are limited to one per ${config.minVerificationIntervalSeconds} s`, { extra: { retryAfterSeconds } });
    }
    await save({ ...current, lastVerificationRequestAt: now });
    const set = await sign(current, { format: 'opaque', id: current.streamId }, EVENT_TYPES.verification, state === undefined ? {} : { state }, undefined);
    enqueue(current.streamId, set, EVENT_TYPES.verification);
  }

  // ------------------------------------------------------------------ emission

  async function sign(stream: SsfStream, subject: SubjectIdentifier, eventType: string, payload: Record<string, unknown>, txn: string | undefined): Promise<{ set: string; jti: string }> {
    const { kid, alg, key } = await deps.signer();
    const jti = randomUUID();
    const set = await new SignJWT({
      jti,
      ...(txn === undefined ? {} : { txn }),
      aud: stream.aud.length === 1 ? stream.aud[0] : [...stream.aud],
      sub_id: subject,
      events: { [eventType]: payload },
    })
      .setProtectedHeader({ alg, kid, typ: 'secevent+jwt' })
      .setIssuer(deps.issuer())
      .setIssuedAt(Math.floor(clock.now() / 1000))
      .sign(key);
    return { set, jti };
  }

  function agentSubject(agent: { id: string; spiffeId?: string }): SubjectIdentifier {
    return agent.spiffeId === undefined ? { format: 'opaque', id: agent.id } : { format: 'uri', uri: agent.spiffeId };
  }

  function eventOf(event: MandateEvent): { eventType: string; subject: SubjectIdentifier; payload: Record<string, unknown> } {
    const common: Record<string, unknown> = {
      event_timestamp: Math.floor((event.occurredAtMs ?? clock.now()) / 1000),
      ...(event.initiatingEntity === undefined ? {} : { initiating_entity: event.initiatingEntity }),
      ...(event.reason === undefined ? {} : { reason_admin: { en: clip(event.reason, 256) } }),
    };
    if (event.type === 'task.revoked') {
      const subject: SubjectIdentifier = {
        format: 'complex',
        session: { format: 'opaque', id: event.taskId },
        ...(event.user === undefined ? {} : { user: { format: 'iss_sub', iss: event.user.iss, sub: event.user.sub } }),
        ...(event.agent === undefined ? {} : { application: agentSubject(event.agent) }),
      };
      return { eventType: EVENT_TYPES.sessionRevoked, subject, payload: common };
    }
    return {
      eventType: EVENT_TYPES.credentialChange,
      subject: agentSubject(event.agent),
      payload: { ...common, credential_type: 'workload', change_type: 'revoke', friendly_name: clip(`agent ${event.agent.id} ${event.status}`, 256) },
    };
  }

  function enqueue(streamId: string, signed: { set: string; jti: string }, eventType: string): boolean {
    if (closed || queue.length + stats.inFlight >= config.delivery.maxQueued) {
      count('dropped');
      void audit('failure', { streamId, jti: signed.jti, eventType, reason: closed ? 'transmitter closed' : 'queue full' }, ['the delivery queue is full; the SET was dropped (signals.transmitter.delivery.maxQueued)']);
      return false;
    }
    queue.push({ streamId, set: signed.set, jti: signed.jti, eventType, attempt: 0, notBefore: clock.now() });
    stats.queued = queue.length;
    pump();
    return true;
  }

  async function emit(event: MandateEvent): Promise<{ queued: number }> {
    let queued = 0;
    try {
      const { eventType, subject, payload } = eventOf(event);
      const streams = await store.listForEvent(eventType);
      for (const stream of streams) {
        const signed = await sign(stream, subject, eventType, payload, event.txn);
        if (enqueue(stream.streamId, signed, eventType)) queued += 1;
      }
    } catch (error) {
      count('dropped');
      await audit('failure', { event: event.type, reason: 'not queued' }, [isMandateError(error) ? clip(error.description, 2048) : 'the event could not be signed or its streams not read']);
    }
    return { queued };
  }

  // ------------------------------------------------------------------ delivery worker

  function backoff(job: Job, retryAfterSeconds: number | undefined): number {
    const exp = Math.min(config.delivery.maxBackoffMs, config.delivery.initialBackoffMs * 2 ** (job.attempt - 1));
    // "Equal jitter": half fixed, half random, so that retries from many streams spread out.
    const jittered = exp / 2 + (exp / 2) * random();
    const asked = retryAfterSeconds === undefined ? 0 : retryAfterSeconds * 1000;
    return Math.min(config.delivery.maxBackoffMs, Math.max(jittered, asked));
  }

  function settleIdle() {
    if (queue.length === 0 && stats.inFlight === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function pump(): void {
    if (closed) return;
    const now = clock.now();
    while (stats.inFlight < config.delivery.concurrency) {
      const index = queue.findIndex((j) => j.notBefore <= now);
      if (index < 0) break;
      const [job] = queue.splice(index, 1);
      if (job === undefined) break;
      stats.inFlight += 1;
      stats.queued = queue.length;
      void deliver(job).finally(() => {
        stats.inFlight -= 1;
        pump();
        settleIdle();
      });
    }
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (queue.length > 0 && stats.inFlight < config.delivery.concurrency) {
      const next = Math.min(...queue.map((j) => j.notBefore));
      timer = setTimeout(pump, Math.max(1, next - now));
      timer.unref();
    }
  }

  async function deliver(job: Job): Promise<void> {
    job.attempt += 1;
    const facts = { streamId: job.streamId, jti: job.jti, eventType: job.eventType, attempt: job.attempt };
    let stream: SsfStream | undefined;
    try {
      stream = await store.get(job.streamId);
    } catch {
      return retryOrFail(job, 'the stream store could not be read', undefined);
    }
    if (stream === undefined || stream.status !== 'enabled') {
      // Deleted, paused or disabled since the SET was queued: a paused stream's events are not held (SSF 1.0 §8.1.2
      // "SHOULD hold"; not done yet), a disabled one's never are.
      count('dropped');
      await audit('failure', { ...facts, reason: stream === undefined ? 'stream deleted' : `stream ${stream.status}` }, ['the stream no longer accepts events; the SET was dropped']);
      return;
    }
    try {
      const response = await deps.push(stream.delivery.endpointUrl, job.set, stream.delivery.authorizationHeader === undefined ? {} : { authorization: stream.delivery.authorizationHeader });
      if (response.status >= 200 && response.status < 300) {
        count('delivered');
        await audit('success', { ...facts, endpoint: clip(new URL(stream.delivery.endpointUrl).origin, 512), status: response.status });
        return;
      }
      const transient = response.status === 408 || response.status === 429 || response.status >= 500;
      const why = `the receiver answered HTTP ${response.status}${response.error === undefined ? '' : ` ${response.error.err}`}`;
      if (transient) return retryOrFail(job, why, response.retryAfterSeconds);
      count('failed');
      await audit('failure', { ...facts, status: response.status, ...(response.error === undefined ? {} : { err: response.error.err }) }, [clip(`${why}; not retried`, 2048)]);
    } catch (error) {
      if (error instanceof OutboundRefusedError) {
        count('failed');
        await audit('failure', { ...facts, reason: error.reason }, [clip(error.description, 2048)]);
        return;
      }
      return retryOrFail(job, isMandateError(error) ? error.description : 'the push failed', undefined);
    }
  }

  async function retryOrFail(job: Job, why: string, retryAfterSeconds: number | undefined): Promise<void> {
    if (job.attempt < config.delivery.maxAttempts && !closed) {
      count('retried');
      job.notBefore = clock.now() + backoff(job, retryAfterSeconds);
      queue.push(job);
      stats.queued = queue.length;
      return;
    }
    count('failed');
    await audit('failure', { streamId: job.streamId, jti: job.jti, eventType: job.eventType, attempt: job.attempt, reason: 'retries exhausted' }, [clip(`${why}; gave up after ${job.attempt} attempts`, 2048)]);
  }

  return {
    metadata: () => ({
      spec_version: '1_0',
      issuer: deps.issuer(),
      jwks_uri: `${base()}${SSF_PATHS.jwks}`,
      delivery_methods_supported: [PUSH_DELIVERY_METHOD],
      configuration_endpoint: `${base()}${SSF_PATHS.stream}`,
      status_endpoint: `${base()}${SSF_PATHS.status}`,
      verification_endpoint: `${base()}${SSF_PATHS.verify}`,
      // Stream management is authorized by an OAuth access token (a `client_credentials` mandate with signals:manage).
      authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }],
      default_subjects: 'ALL',
    }),
    createStream,
    readStreams,
    updateStream: (caller, body) => updateStream(caller, body, false),
    replaceStream: (caller, body) => updateStream(caller, body, true),
    deleteStream,
    readStatus,
    updateStatus,
    requestVerification,
    emit,
    drain: () =>
      queue.length === 0 && stats.inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            idleWaiters.push(resolve);
          }),
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      for (let i = 0; i < queue.length; i += 1) count('dropped');
      queue.length = 0;
      stats.queued = 0;
      settleIdle();
    },
    stats: () => ({ ...stats }),
  };
}
