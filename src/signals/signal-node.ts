/**
 * Shared Signals in a running node: the receiver's CAEP events applied to Mandate's revocation path, and Mandate's
 * own revocations sent to subscribed receivers.
 *
 * Received (each applied durably before the 202; idempotent because a SET's jti is used once):
 * - `session-revoked` — for a user: their open tasks are revoked; for an agent: its open tasks; for one of
 *   Mandate's mandates (`jwt_id` subject): that mandate (and, when it belongs to a task, the task).
 * - `credential-change` (revoke or delete) — a user's open tasks are revoked; an agent is quarantined and its
 *   open tasks revoked (its credential can no longer be trusted).
 * - `token-claims-change` — the user's open tasks are revoked (what they may do may have changed; a new task
 *   re-decides it).
 * - `assurance-level-change` — revokes the user's open tasks when the level decreased (or the direction is not
 *   said); an increase changes nothing.
 * Sent: CAEP `session-revoked` for every task Mandate revokes, `credential-change` for every agent it stops.
 */
import { createAuditEvent, type NewAuditEventV1 } from '../audit/audit-event.ts';
import type { Clock } from '../core/ports.ts';
import type { OutboundPolicy, PrincipalLookup, FetchJson } from '../identity/types.ts';
import type { Store, TaskRecord, TaskSelector } from '../store/store.ts';
import type { Signal } from './events.ts';
import { createPushSet } from './push-set.ts';
import { createSetReceiver, type AuditSink, type SetReceiver, type SetReplayCache } from './receiver.ts';
import type { SignalsConfig } from './signals-config.ts';
import type { SsfStream, SsfStreamStore } from './stream-store.ts';
import { createTransmitter, type SetSigner, type Transmitter } from './transmitter.ts';

/** Reasons a task closes with when an agent stops (src/server/task-admin.ts `AGENT_STATUS_REASONS`). */
const STOPPED_AGENT: Readonly<Record<string, 'suspended' | 'quarantined' | 'retired'>> = {
  agent_suspended: 'suspended',
  agent_quarantined: 'quarantined',
  agent_retired: 'retired',
};

/** Options of {@link startSignalNode}. */
export interface SignalNodeOptions {
  config: SignalsConfig;
  outbound: OutboundPolicy;
  store: Pick<Store, 'tasks' | 'tokens' | 'principals' | 'replay' | 'ssfStreams'>;
  principals: PrincipalLookup;
  fetchJson: FetchJson;
  /** Seals and opens a stream's push Authorization header under the KEK. */
  seal(purpose: string, plaintext: string): Promise<string>;
  open(purpose: string, sealed: string): Promise<string>;
  signer: SetSigner;
  issuer: () => string;
  audit: AuditSink;
  clock: Clock;
  /** Told of every task closed by a signal (the transmitter, through the node's own listener). */
  onTasksClosed?: (tasks: readonly TaskRecord[]) => void;
  /** Logs a listener failure (a revocation is durable already; sending its signal may fail). */
  warn(message: string, detail: Record<string, unknown>): void;
}

/** The node's Shared Signals parts. */
export interface SignalNode {
  readonly receiver?: SetReceiver;
  readonly transmitter?: Transmitter;
  /** Tell the transmitter about closed tasks (revoked ones become `session-revoked` SETs). */
  tasksClosed(tasks: readonly TaskRecord[]): void;
  close(): Promise<void>;
}

const AUTH_PURPOSE = 'ssf push authorization header';

/** The stream store with each stream's push Authorization header sealed under the KEK at rest. */
function sealedStreams(inner: SsfStreamStore, seal: SignalNodeOptions['seal'], open: SignalNodeOptions['open']): SsfStreamStore {
  const toStored = async (s: SsfStream): Promise<SsfStream> =>
    s.delivery.authorizationHeader === undefined ? s : { ...s, delivery: { ...s.delivery, authorizationHeader: await seal(AUTH_PURPOSE, s.delivery.authorizationHeader) } };
  const fromStored = async (s: SsfStream): Promise<SsfStream> =>
    s.delivery.authorizationHeader === undefined ? s : { ...s, delivery: { ...s.delivery, authorizationHeader: await open(AUTH_PURPOSE, s.delivery.authorizationHeader) } };
  const many = (list: SsfStream[]) => Promise.all(list.map(fromStored));
  return {
    create: async (s) => inner.create(await toStored(s)),
    get: async (id) => {
      const s = await inner.get(id);
      return s === undefined ? undefined : fromStored(s);
    },
    listByOwner: async (owner) => many(await inner.listByOwner(owner)),
    listForEvent: async (type) => many(await inner.listForEvent(type)),
    replace: async (s) => inner.replace(await toStored(s)),
    delete: (id) => inner.delete(id),
  };
}

/** Builds the receiver and the transmitter the configuration turns on. */
export function startSignalNode(options: SignalNodeOptions): SignalNode {
  const { config, store, clock } = options;

  const closeTasks = async (selector: TaskSelector, reason: string, signal: Signal): Promise<void> => {
    const closed = await store.tasks.close(selector, 'revoked', clock.now(), reason, (task): NewAuditEventV1 =>
      createAuditEvent(
        {
          type: 'task.close',
          outcome: 'success',
          actor: `ssf:${signal.transmitter}`,
          subject: `User::${JSON.stringify(task.userSub)}`,
          resource: `task:${task.id}`,
          data: { taskId: task.id, status: 'revoked', reason, workflow: task.workflowId, agent: task.agentId, signal: signal.jti, event: signal.details.event },
        },
        { clock },
      ),
    );
    if (closed.length > 0) options.onTasksClosed?.(closed);
  };

  const quarantine = async (agentId: string, signal: Signal): Promise<void> => {
    await store.principals.update(
      agentId,
      { status: 'quarantined' },
      clock.now(),
      createAuditEvent(
        { type: 'admin', outcome: 'success', actor: `ssf:${signal.transmitter}`, resource: `principal:${agentId}`, data: { operation: 'principals.status.quarantined', principal: agentId, signal: signal.jti, event: signal.details.event } },
        { clock },
      ),
    );
  };

  /** Applies one verified CAEP event; resolves once its effect is durable. */
  const onSignal = async (signal: Signal): Promise<void> => {
    const { principal, token } = signal.subject;
    const event = signal.details.event;
    const reason = `caep_${event.replaceAll('-', '_')}`;
    if (event === 'assurance-level-change' && signal.details.event === 'assurance-level-change' && signal.details.changeDirection === 'increase') return;
    if (event === 'credential-change' && signal.details.event === 'credential-change' && (signal.details.changeType === 'create' || signal.details.changeType === 'update')) return;
    if (token !== undefined && token.iss === options.issuer()) {
      const record = await store.tokens.get(token.jti);
      if (record !== undefined) {
        if (record.taskId !== undefined) await closeTasks({ taskId: record.taskId }, reason, signal);
        else if (record.revokedAt === undefined) {
          await store.tokens.revoke(
            record.jti,
            clock.now(),
            reason,
            createAuditEvent({ type: 'token.revoke', outcome: 'success', actor: `ssf:${signal.transmitter}`, data: { jti: record.jti, reason, signal: signal.jti } }, { clock }),
          );
        }
      }
    }
    if (principal === undefined) return;
    if (principal.kind === 'user') {
      await closeTasks({ user: { iss: principal.iss, sub: principal.sub } }, reason, signal);
      return;
    }
    if (principal.kind === 'agent') {
      if (event === 'credential-change') await quarantine(principal.id, signal);
      await closeTasks({ agentId: principal.id }, reason, signal);
    }
  };

  const receiver = config.receiver.enabled
    ? createSetReceiver({
        config: config.receiver,
        fetchJson: options.fetchJson,
        replay: store.replay as SetReplayCache,
        principals: options.principals,
        onSignal,
        audit: options.audit,
        clock,
      })
    : undefined;

  const transmitter = config.transmitter.enabled
    ? createTransmitter({
        config: config.transmitter,
        store: sealedStreams(store.ssfStreams, options.seal, options.open),
        signer: options.signer,
        issuer: options.issuer,
        push: createPushSet(options.outbound),
        outbound: options.outbound,
        audit: options.audit,
        clock,
      })
    : undefined;

  return {
    ...(receiver === undefined ? {} : { receiver }),
    ...(transmitter === undefined ? {} : { transmitter }),
    tasksClosed(tasks) {
      if (transmitter === undefined) return;
      const stoppedAgents = new Map<string, 'suspended' | 'quarantined' | 'retired'>();
      for (const task of tasks) {
        if (task.status !== 'revoked') continue;
        const stopped = STOPPED_AGENT[task.endReason ?? ''];
        if (stopped !== undefined) stoppedAgents.set(task.agentId, stopped);
        void transmitter
          .emit({
            type: 'task.revoked',
            taskId: task.id,
            ...(task.userIss === '' ? {} : { user: { iss: task.userIss, sub: task.userSub } }),
            agent: { id: task.agentId },
            ...(task.endReason === undefined ? {} : { reason: task.endReason }),
            initiatingEntity: 'policy',
            ...(task.endedAt === undefined ? {} : { occurredAtMs: task.endedAt }),
          })
          .catch((err: unknown) => options.warn('a task revocation signal could not be queued', { taskId: task.id, err: err instanceof Error ? err.message : String(err) }));
      }
      for (const [id, status] of stoppedAgents) {
        void transmitter.emit({ type: 'agent.disabled', agent: { id }, status, initiatingEntity: 'admin' }).catch(() => undefined);
      }
    },
    async close() {
      await transmitter?.close();
    },
  };
}
