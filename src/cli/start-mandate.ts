/**
 * Starts a Mandate node from a validated configuration: store, decision log, policy engine, HTTP server,
 * reload triggers (file watch, SIGHUP) and graceful shutdown. `mandate serve` and `mandate demo` both use
 * it; only the demo adds demo parts, and it does so by building its own configuration.
 */
import { DecisionLog } from '../audit/decision-log.ts';
import type { MandateConfig } from '../config/index.ts';
import { ConfigInvalidError, isMandateError } from '../core/errors.ts';
import { systemClock } from '../core/ports.ts';
import { syncConfiguredPrincipals } from '../identity/registry.ts';
import { configPrincipalEvent } from '../server/principal-routes.ts';
import { PolicyEngine, watchPolicyDirectory } from '../policy/policy-engine.ts';
import { createLogger, createServer, formatDiagnostic, type MandateServer, type ReloadOutcome, type ReloadTrigger } from '../server/index.ts';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import type { PolicyDiagnostic } from '../policy/types.ts';
import type { Logger } from 'pino';
import { startTokenNode, type TokenNode } from '../tokens/token-node.ts';
import { WorkflowCatalog, withWorkflows } from '../tasks/workflow-catalog.ts';
import { directoryLookup } from '../tasks/directory-lookup.ts';
import { createStepGate } from '../tasks/step-gate.ts';
import { startSignalNode, type SignalNode } from '../signals/signal-node.ts';
import type { TaskRecord } from '../store/store.ts';
import { OAUTH_PATHS } from '../server/oauth-routes.ts';
import { startStdioUpstreams, withLocalUpstreams, type StdioUpstreams } from '../gateway/stdio-upstream.ts';
import { startVault } from '../gateway/vault-node.ts';

/** How often open tasks are checked for their duration and idle limits, ms. */
const TASK_SWEEP_INTERVAL_MS = 5000;

/** A running node. */
export interface RunningMandate {
  url: string;
  server: MandateServer;
  store: Store;
  logger: Logger;
  /** The token service, when `resources` are configured. */
  tokens?: TokenNode;
  /** Shared Signals (receiver, transmitter), when configured. */
  signals?: SignalNode;
  /** Stops everything in order: HTTP, watcher, decision log (flushed), store. */
  stop(): Promise<void>;
}

/**
 * Starts a node. Refuses to start (rejects with the `MandateError`) when the store cannot be opened or the
 * policy directory does not hold a valid set: a node never serves without one.
 */
export async function startMandate(
  config: MandateConfig,
  options: { logger?: Logger; handleSignals?: boolean; env?: Readonly<Record<string, string | undefined>> } = {},
): Promise<RunningMandate> {
  const logger = options.logger ?? createLogger({ level: config.log.level });
  if (config.authzen.credentials.length > 0) {
    logger.warn(
      { credentials: config.authzen.credentials.map((c) => c.id) },
      'authzen.credentials are long-lived pre-shared bearer secrets (deprecated): register the callers as services with apiScopes and let them use client_credentials mandates',
    );
  }
  const store = await openStore(config.store);
  try {
    const synced = await syncConfiguredPrincipals(store.principals, config.principals, {
      clock: systemClock,
      event: (operation, id) => configPrincipalEvent(operation, id, { clock: systemClock }),
    });
    if (synced.created.length + synced.updated.length + synced.retired.length > 0) logger.info(synced, 'principal registry synced with the configuration');
  } catch (err) {
    await store.close();
    if (err instanceof TypeError) throw new ConfigInvalidError(err.message, { cause: err });
    throw err;
  }
  const decisionLog = new DecisionLog(store.audit, config.audit);
  const policyEngine = new PolicyEngine({ engine: config.policy.engine });
  // Workflows load with the policy set (all or nothing); a change re-decides every open task.
  const catalog = new WorkflowCatalog();
  let tokens: TokenNode | undefined;
  // Shared Signals: built once the token service is up; closed tasks reach the transmitter through it.
  let signals: SignalNode | undefined;
  const tasksClosed = (closed: readonly TaskRecord[]) => signals?.tasksClosed(closed);
  const engine = withWorkflows(policyEngine, catalog, async () => {
    if (tokens === undefined) return;
    try {
      const revoked = await tokens.service.reevaluateOpenTasks();
      if (revoked.length > 0) logger.warn({ tasks: revoked.map((t) => t.id) }, 'open tasks revoked: the new policy set or workflows no longer allow them');
    } catch (err) {
      // Steps are checked at call time anyway; a task that should have been revoked is denied at its next step.
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'open tasks could not be re-evaluated after a policy change');
    }
  });
  let server: MandateServer | undefined;
  // Local (stdio) MCP upstreams: started before the server, which forwards to their loopback endpoints.
  let localUpstreams: StdioUpstreams | undefined;
  let stopWatching = () => undefined as void;
  let stopSweeper = () => undefined as void;
  try {
    // The token service runs when there is something to issue mandates for. It needs the KEK: a node that
    // cannot read its signing keys refuses to start rather than serving without them.
    if (config.resources.length > 0 || config.principals.some((p) => p.apiScopes.length > 0)) {
      tokens = await startTokenNode({
        config,
        store,
        engine,
        clock: systemClock,
        env: options.env ?? process.env,
        logger,
        workflows: () => catalog.current(),
        resourceLookup: directoryLookup(policyEngine),
        onTasksClosed: tasksClosed,
      });
      for (const w of tokens.warnings) logger.warn(w);
      const t = tokens;
      if (config.signals.receiver.enabled || config.signals.transmitter.enabled) {
        signals = startSignalNode({
          config: config.signals,
          outbound: config.identity.outbound,
          store,
          principals: t.principals,
          fetchJson: t.fetchJson,
          seal: t.seal,
          open: t.open,
          signer: () => t.keys.signer(),
          issuer: t.issuer,
          audit: (event) => decisionLog.record(event),
          clock: systemClock,
          onTasksClosed: tasksClosed,
          warn: (message, detail) => logger.warn(detail, message),
        });
      }
    } else if (config.signals.receiver.enabled || config.signals.transmitter.enabled) {
      throw new ConfigInvalidError('signals need the token service: configure resources (or a service with apiScopes) and the key-encryption key');
    }
    const signalNode = signals;
    const node = tokens;
    const lookup = directoryLookup(policyEngine);
    const stepGate =
      node === undefined
        ? undefined
        : createStepGate({
            tasks: store.tasks,
            approvals: store.approvals,
            principals: store.principals,
            workflows: () => catalog.current(),
            lookup,
            closeTask: (task, status, reason, actor) => node.service.closeTask(task, status, reason, actor),
            closeAgentTasks: async (agentId, reason) => {
              for (const task of await store.tasks.list({ status: 'open', agentId, limit: 100_000 })) await node.service.closeTask(task, 'revoked', reason, 'mandate');
            },
            clock: systemClock,
          });
    const gatewayOn = config.gateway.upstreams.length > 0 || Object.keys(config.gateway.http).length > 0 || config.gateway.extAuthz.enabled;
    if (gatewayOn && node === undefined) throw new ConfigInvalidError('the gateway needs the token service: configure resources (each upstream resource among them) and the key-encryption key');
    for (const u of config.gateway.upstreams) {
      if (!config.resources.some((r) => r.uri === u.resource)) throw new ConfigInvalidError(`gateway.upstreams ${u.id}: its resource ${u.resource} must also be listed in resources (agents get mandates for it there)`);
    }
    if (gatewayOn && config.gateway.upstreams.some((u) => u.stdio !== undefined)) localUpstreams = await startStdioUpstreams(config.gateway.upstreams, { logger, env: options.env ?? process.env });
    const local = localUpstreams;
    const vault = node === undefined ? undefined : startVault({ gateway: config.gateway, outbound: config.identity.outbound, store: store.vault, seal: node.seal, open: node.open, env: options.env ?? process.env, clock: systemClock });
    server = await createServer({
      ...(vault === undefined || node === undefined ? {} : { vault: { vault, authenticateUser: node.authenticateUser } }),
      onTasksClosed: tasksClosed,
      ...(node === undefined || !gatewayOn
        ? {}
        : {
            gateway: {
              config: config.gateway,
              authenticate: (req) => node.authenticateResource(req),
              mintUpstreamToken: (caller, audience) => node.mintUpstreamToken(caller, audience),
              async taskCeiling(taskId) {
                const task = await store.tasks.get(taskId);
                return task === undefined ? undefined : catalog.current().get(task.workflowId)?.data.maxSensitivityLevel;
              },
              issuer: node.issuer,
              dpopAlgorithms: node.dpop.algorithms,
              ...(local === undefined ? {} : { localUpstreamUrls: local.urls }),
              ...(vault === undefined ? {} : { vault }),
            },
          }),
      ...(signalNode === undefined || node === undefined
        ? {}
        : {
            signals: {
              ...(signalNode.receiver === undefined ? {} : { receiver: signalNode.receiver, maxSetBytes: config.signals.receiver.maxSetBytes }),
              ...(signalNode.transmitter === undefined ? {} : { transmitter: signalNode.transmitter, authenticate: node.authenticateApiCaller }),
            },
          }),
      ...(stepGate === undefined || node === undefined ? {} : { stepGate, approvals: { approvals: store.approvals, authenticateUser: node.authenticateUser } }),
      config,
      engine,
      store,
      decisionLog,
      logger,
      ...(node === undefined
        ? {}
        : {
            oauth: {
              issuer: node.issuer,
              service: node.service,
              jwks: () => node.keys.jwks(),
              dpopAlgorithms: node.dpop.algorithms,
              assertionAlgorithms: node.assertionAlgorithms,
              authMethods: node.authMethods,
              tasks: true,
              scopes: node.scopes,
              authenticateApiCaller: node.authenticateApiCaller,
              readiness: local === undefined ? node.readiness : () => withLocalUpstreams(node.readiness(), local.status()),
            },
          }),
    });
    // The first load goes through the same path as every reload: counted, logged and audited.
    const first = await server.reloadPolicies({ source: 'startup' });
    if (!first.ok) throw first.error;

    // Reloads are serialised: a watcher burst and a SIGHUP never race to activate an older read.
    let chain: Promise<unknown> = Promise.resolve();
    const reload = (trigger: ReloadTrigger): Promise<ReloadOutcome> => {
      const next = chain.then(() => (server as MandateServer).reloadPolicies(trigger));
      chain = next.catch(() => undefined);
      return next;
    };
    if (config.policy.watch) stopWatching = watchPolicyDirectory(config.policy.dir, () => void reload({ source: 'watch' }));
    const url = await server.listen();
    tokens?.setListenUrl(url);
    // Tasks past their duration or idle time end on time (and are announced), not only at their next use.
    const sweeper = tokens === undefined ? undefined : setInterval(() => {
      (tokens as TokenNode).service.sweepTasks().catch((err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'the task sweeper failed; tasks still end at their next use'));
    }, TASK_SWEEP_INTERVAL_MS);
    sweeper?.unref();
    stopSweeper = () => clearInterval(sweeper);
    logger.info(
      {
        url,
        policyDir: config.policy.dir,
        dataDir: config.store.dataDir,
        version: first.info.version,
        ...(tokens === undefined ? {} : { issuer: tokens.issuer(), tokenEndpoint: `${tokens.issuer()}${OAUTH_PATHS.token}` }),
      },
      'mandate listening',
    );

    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        stopWatching();
        stopSweeper();
        await (server as MandateServer).close();
        await localUpstreams?.close();
        await signals?.close();
        await decisionLog.close();
        await store.close();
      })();
      return stopping;
    };
    if (options.handleSignals) {
      process.on('SIGHUP', () => void reload({ source: 'sighup' }));
      const shutdown = (signal: string) => {
        logger.info({ signal }, 'shutting down');
        stop().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    }
    return { url, server, store, logger, stop, ...(tokens === undefined ? {} : { tokens }), ...(signals === undefined ? {} : { signals }) };
  } catch (err) {
    stopWatching();
    await server?.close().catch(() => undefined);
    await localUpstreams?.close().catch(() => undefined);
    await decisionLog.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}

/** Lines describing why a node refused to start, for the terminal. */
export function describeStartupFailure(err: unknown): string[] {
  if (!isMandateError(err)) return [`mandate: ERR_INTERNAL: ${err instanceof Error ? err.message : String(err)}`];
  const lines = [`mandate: ${err.code}: ${err.description}`];
  const diagnostics = err.extra?.diagnostics as PolicyDiagnostic[] | undefined;
  for (const d of diagnostics ?? []) lines.push(`  ${formatDiagnostic(d)}`);
  const issues = err.extra?.issues as Array<{ message?: string }> | undefined;
  for (const i of issues ?? []) if (i.message) lines.push(`  ${i.message}`);
  return lines;
}
