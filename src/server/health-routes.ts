/**
 * Liveness, readiness and metrics. `/healthz` answers 200 whenever the process serves HTTP; `/readyz` answers
 * 200 only when the store answers a ping AND a valid policy set is loaded, and otherwise 503 naming each failing
 * check, so that an orchestrator stops routing decisions to a node that would only refuse them.
 */
import type { FastifyInstance } from 'fastify';
import { isMandateError } from '../core/errors.ts';
import type { ServerContext } from './server-context.ts';

/** Paths of the operational endpoints. */
export const HEALTH_PATHS = { healthz: '/healthz', readyz: '/readyz', metrics: '/metrics' } as const;

/** One readiness check. */
export type ReadinessCheck = { ok: true; version?: string; detail?: unknown } | { ok: false; reason: string; detail?: unknown };

/** The `/readyz` body. */
export interface ReadinessReport {
  status: 'ready' | 'not_ready';
  checks: { store: ReadinessCheck; policy: ReadinessCheck; identity?: ReadinessCheck };
}

/** Runs the readiness checks. */
export async function checkReadiness(ctx: Pick<ServerContext, 'store' | 'engine' | 'identityReadiness'>): Promise<ReadinessReport> {
  let store: ReadinessCheck;
  try {
    await ctx.store.ping();
    store = { ok: true };
  } catch (err) {
    // The description is client-safe by contract; the driver's detail stays in the logs.
    store = { ok: false, reason: isMandateError(err) ? err.description : 'the store did not answer' };
  }
  const info = ctx.engine.current();
  const policy: ReadinessCheck = info ? { ok: true, version: info.version } : { ok: false, reason: 'no valid policy set is loaded' };
  // The token service's identity sources: an IdP whose keys cannot be had refuses its users' tokens.
  const identity: ReadinessCheck | undefined = ctx.identityReadiness?.();
  const ready = store.ok && policy.ok && (identity === undefined || identity.ok);
  return { status: ready ? 'ready' : 'not_ready', checks: { store, policy, ...(identity === undefined ? {} : { identity }) } };
}

/** Registers `/healthz`, `/readyz` and `/metrics`. */
export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(HEALTH_PATHS.healthz, async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));

  app.get(HEALTH_PATHS.readyz, async (request, reply) => {
    const report = await checkReadiness(ctx);
    if (report.status !== 'ready') request.log.warn({ checks: report.checks }, 'not ready');
    return reply.code(report.status === 'ready' ? 200 : 503).header('cache-control', 'no-store').send(report);
  });

  app.get(HEALTH_PATHS.metrics, async (_request, reply) => {
    // Read at scrape time: a set may have been loaded by a path that does not go through the server (startup).
    ctx.metrics.setPolicyVersion(ctx.engine.current()?.version);
    const text = await ctx.metrics.registry.metrics();
    return reply.header('content-type', ctx.metrics.registry.contentType).header('cache-control', 'no-store').send(text);
  });
}
