/**
 * The project's own policy directories as differential cases: every request of their `*.test.yaml` files
 * (one Cedar request per principal of the delegation chain, with the context Mandate builds), and requests
 * built from their entities: every principal × action × resource the schema allows, bounded, under a few
 * contexts.
 */
import { parse as parseYaml } from 'yaml';
import { DEFAULT_TEST_TIME } from '../../src/policy/run-policy-tests.ts';
import { compilePolicySet, type CompiledPolicySet } from '../../src/policy/compile-policy-set.ts';
import { entityKey, normalizeEntity } from '../../src/policy/entities.ts';
import { AuthorizationRequestInput, EntityJsonInput } from '../../src/policy/request-input.ts';
import type { PolicyDirectory } from '../../src/policy/read-policy-directory.ts';
import type { AuthorizationRequest, EntityJson } from '../../src/policy/types.ts';
import type { DrtRequest, Uid } from './engines.ts';

/** A labelled request of a directory: as Mandate receives it, and as one principal's Cedar request. */
export interface DirectoryRequest {
  label: string;
  request: DrtRequest;
}

/** A request as Mandate's decision point receives it, with the time it is decided at. */
export interface MandateRequest {
  label: string;
  request: AuthorizationRequest;
  now: string;
}

/** A directory compiled as Mandate compiles it, with the requests to run. */
export interface DirectoryCases {
  set: CompiledPolicySet;
  requests: DirectoryRequest[];
  /** The same requests before Mandate splits them per principal and builds their context. */
  mandateRequests: MandateRequest[];
}

/** Mandate's context for one principal of a request (see src/policy/authorize.ts). */
function mandateContext(request: AuthorizationRequest, now: string): Record<string, unknown> {
  const actors = request.delegation?.actors ?? [];
  const user = request.principal.type === 'User' && actors.length > 0 ? request.principal : undefined;
  return {
    ...(request.context ?? {}),
    delegation: { depth: actors.length, ...(user ? { user } : {}), agents: actors.filter((a) => a.type === 'Agent') },
    time: { now },
  };
}

function entityList(set: CompiledPolicySet, extra: EntityJson[]): EntityJson[] {
  const out = [...set.entities.values()];
  const seen = new Set(out.map((e) => entityKey(e.uid)));
  for (const raw of extra) {
    const e = normalizeEntity(raw, set.schemaInfo);
    const k = entityKey(e.uid);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(e);
    }
  }
  return out;
}

/** Requests of every `*.test.yaml` case, one per principal of its delegation chain. */
function testFileRequests(dir: Pick<PolicyDirectory, 'tests'>, set: CompiledPolicySet, mandate: MandateRequest[]): DirectoryRequest[] {
  const out: DirectoryRequest[] = [];
  for (const file of dir.tests) {
    const doc = parseYaml(file.text) as { now?: string; entities?: unknown[]; tests?: { name: string; now?: string; request: unknown }[] };
    const fileEntities = (doc.entities ?? []).map((e) => EntityJsonInput.parse(e)) as EntityJson[];
    for (const c of doc.tests ?? []) {
      const parsed = AuthorizationRequestInput.safeParse(c.request);
      if (!parsed.success) continue;
      const request = parsed.data as AuthorizationRequest;
      const now = c.now ?? doc.now ?? DEFAULT_TEST_TIME;
      mandate.push({ label: `${file.path}: ${c.name}`, request: { ...request, entities: [...fileEntities, ...(request.entities ?? [])] }, now });
      let entities: EntityJson[];
      try {
        entities = entityList(set, [...fileEntities, ...(request.entities ?? [])]);
      } catch {
        continue; // Mandate refuses such a request before any engine sees it.
      }
      const chain = [request.principal, ...(request.delegation?.actors ?? [])];
      for (const principal of chain) {
        out.push({
          label: `${file.path}: ${c.name} [principal ${entityKey(principal)}]`,
          request: {
            principal,
            action: { type: set.schemaInfo.actionType, id: request.action },
            resource: request.resource,
            context: mandateContext(request, now),
            entities,
          },
        });
      }
    }
  }
  return out;
}

/**
 * Contexts tried on every triple: Mandate's minimal one, a delegated one with risk, authentication and
 * tool arguments, and a night-time one. A context the schema does not accept is a refusal both engines
 * must agree on.
 */
function contextVariants(entities: EntityJson[]): { name: string; request: AuthorizationRequest; now: string }[] {
  const first = (type: string) => entities.find((e) => e.uid.type === type)?.uid;
  const agent = first('Agent');
  const task = first('Task');
  const base = { principal: { type: 'User', id: 'x' }, action: 'x', resource: { type: 'x', id: 'x' } };
  return [
    { name: 'minimal', request: base, now: DEFAULT_TEST_TIME },
    {
      name: 'delegated',
      now: '2026-03-02T22:30:00Z',
      request: {
        ...base,
        ...(agent ? { delegation: { actors: [agent] } } : {}),
        context: {
          ...(task ? { task } : {}),
          step: 2,
          risk: { score: 85, signals: ['impossible-travel'] },
          authn: { method: 'oidc', proofOfPossession: true, assurance: 2 },
          args: { recipient: 'bob@partner.example', recipientDomain: 'partner.example', amount: 120, currency: 'EUR' },
        },
      },
    },
  ];
}

/** Every principal × action × resource triple the schema allows, at most `limit` (spread evenly), per context. */
function tripleRequests(set: CompiledPolicySet, limit: number, mandate: MandateRequest[]): DirectoryRequest[] {
  const entities = [...set.entities.values()];
  const triples: { principal: Uid; action: string; resource: Uid }[] = [];
  for (const [action, def] of set.schemaInfo.actions) {
    for (const p of entities.filter((e) => def.principalTypes.includes(e.uid.type))) {
      for (const r of entities.filter((e) => def.resourceTypes.includes(e.uid.type))) triples.push({ principal: p.uid, action, resource: r.uid });
    }
  }
  const stride = Math.max(1, Math.ceil(triples.length / limit));
  const out: DirectoryRequest[] = [];
  for (const variant of contextVariants(entities)) {
    for (let i = variant.name === 'minimal' ? 0 : Math.floor(stride / 2); i < triples.length; i += stride) {
      const t = triples[i] as (typeof triples)[number];
      const request: AuthorizationRequest = { ...variant.request, principal: t.principal, action: t.action, resource: t.resource };
      mandate.push({ label: `${entityKey(t.principal)} ${t.action} ${entityKey(t.resource)} (${variant.name} context)`, request, now: variant.now });
      out.push({
        label: `${entityKey(t.principal)} ${t.action} ${entityKey(t.resource)} (${variant.name} context)`,
        request: { principal: t.principal, action: { type: set.schemaInfo.actionType, id: t.action }, resource: t.resource, context: mandateContext(request, variant.now), entities },
      });
    }
  }
  return out;
}

/** Compiles a directory and lists its requests. */
export function directoryCases(dir: Pick<PolicyDirectory, 'schema' | 'policies' | 'entities' | 'entitiesFile' | 'tests'>, tripleLimit: number): DirectoryCases {
  const set = compilePolicySet(dir);
  const mandateRequests: MandateRequest[] = [];
  const requests = [...testFileRequests(dir, set, mandateRequests), ...tripleRequests(set, tripleLimit, mandateRequests)];
  return { set, requests, mandateRequests };
}
