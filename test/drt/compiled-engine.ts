/**
 * The compiled evaluator (src/policy/compiled/) behind the harness's {@link DecisionEngine} port.
 *
 * Policies reach it as production reaches it: Cedar text → `policyToJson` → `compileAuthorizer`.
 * - dynamic mode (no schema): entities and context are read with the compiled path's schema-less JSON reader
 *   (`convertUntypedValue`: `__entity`/`__extn` escapes only as a record's single key), the hierarchy closed
 *   transitively here;
 * - strict mode: entities and context go through the schema-directed converters, which refuse what
 *   cedar-wasm refuses; the request is checked against the action's `appliesTo` as `validateRequest` does.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { compileAuthorizer, type CompiledAuthorizer } from '../../src/policy/compiled/compiled-authorizer.ts';
import { convertUntypedValue, nestingLimitBelow, type ValueSite } from '../../src/policy/compiled/convert-value.ts';
import type { SchemaModel } from '../../src/policy/compiled/schema-model.ts';
import { CedarRecord, EntityUid, type CedarValue, type EntityData, type EntityLookup } from '../../src/policy/compiled/value.ts';
import type { DecisionEngine, DrtAnswer, DrtRequest, Unsupported } from './engines.ts';
import { strictConversion, type StrictConversion } from './compiled-strict.ts';

interface CompiledSet {
  authorizer: CompiledAuthorizer;
  strict?: StrictConversion;
}

class Refusal extends Error {}

/** No schema: no entity types, no actions. The schema-less reader consults the model only for enumerated ids. */
const NO_SCHEMA: SchemaModel = { entityTypes: new Map(), actions: new Map(), actionEntities: new Map(), actionType: 'Action' };

/** The compiled path's schema-less JSON reader (`convertUntypedValue`), refusing as cedar-wasm refuses. */
function untyped(x: unknown, where: string, levels: number): CedarValue {
  const site: ValueSite = { model: NO_SCHEMA, nestingLimit: nestingLimitBelow(levels), refuse: (path, message) => new Refusal(`${where}${path ? `.${path}` : ''}: ${message}`) };
  return convertUntypedValue(x, site, []);
}

function uidOf(x: unknown, where: string): EntityUid {
  const o = x as { type?: unknown; id?: unknown; __entity?: { type?: unknown; id?: unknown } } | null;
  const inner = o && typeof o === 'object' && o.__entity ? o.__entity : o;
  if (!inner || typeof inner.type !== 'string' || typeof inner.id !== 'string') throw new Refusal(`${where}: not an entity reference`);
  return new EntityUid(inner.type, inner.id);
}

/** Schema-less entities: values as written (escapes only), ancestors closed transitively. */
function untypedEntities(list: readonly unknown[]): EntityLookup {
  const raw = new Map<string, { json: unknown; uid: EntityUid; attrs: Record<string, unknown>; parents: EntityUid[]; tags: Record<string, unknown> }>();
  for (const e of list as { uid: unknown; attrs?: Record<string, unknown>; parents?: unknown[]; tags?: Record<string, unknown> }[]) {
    const uid = uidOf(e.uid, 'entity uid');
    const seen = raw.get(uid.key);
    // cedar-wasm takes the same description twice as one entity, and refuses two different ones.
    if (seen && JSON.stringify(seen.json) === JSON.stringify(e)) continue;
    if (seen) throw new Refusal(`entity ${uid.key} described twice, differently`);
    raw.set(uid.key, { json: e, uid, attrs: e.attrs ?? {}, parents: (e.parents ?? []).map((p) => uidOf(p, `${uid.key} parent`)), tags: e.tags ?? {} });
  }
  const map = new Map<string, EntityData>();
  for (const [key, e] of raw) {
    const ancestors = new Set<string>();
    const stack = e.parents.map((p) => p.key);
    while (stack.length > 0) {
      const k = stack.pop() as string;
      if (ancestors.has(k)) continue;
      ancestors.add(k);
      for (const p of raw.get(k)?.parents ?? []) stack.push(p.key);
    }
    if (ancestors.has(key)) throw new Refusal(`the hierarchy has a cycle through ${key}`);
    map.set(key, {
      uid: e.uid,
      attrs: new Map(Object.entries(e.attrs).map(([k, v]) => [k, untyped(v, `${key}.${k}`, 4)])),
      ancestors,
      tags: new Map(Object.entries(e.tags).map(([k, v]) => [k, untyped(v, `${key} tag ${k}`, 4)])),
    });
  }
  return map;
}

function decideUntyped(set: CompiledSet, req: DrtRequest): DrtAnswer {
  const context = untyped(req.context, 'context', 1);
  if (!(context instanceof CedarRecord)) throw new Refusal('context is not a record');
  const r = set.authorizer.isAuthorized({
    principal: uidOf(req.principal, 'principal'),
    action: uidOf(req.action, 'action'),
    resource: uidOf(req.resource, 'resource'),
    context,
    entities: untypedEntities(req.entities),
  });
  return answer(r);
}

function answer(r: { decision: 'allow' | 'deny'; reason: string[]; errors: { policyId: string }[] }): DrtAnswer {
  return { kind: 'decision', decision: r.decision, determining: [...new Set(r.reason)].sort(), erroring: [...new Set(r.errors.map((e) => e.policyId))].sort() };
}

/** The compiled evaluator as a {@link DecisionEngine}. */
export const compiledEngine: DecisionEngine<CompiledSet> = {
  name: 'compiled',
  prepare: (schemaText, policies): CompiledSet | Unsupported => {
    const list = Object.entries(policies).map(([id, text]) => {
      const json = cedar.policyToJson(text);
      if (json.type === 'failure') throw new TypeError(`policyToJson refused ${id}: ${json.errors.map((e) => e.message).join('; ')}`);
      return { id, effect: json.json.effect, json: json.json };
    });
    const compiled = compileAuthorizer(list);
    if (!compiled.ok) return { unsupported: compiled.unsupported.map((u) => `${u.policyId}: ${u.feature}`).join('; ') };
    if (schemaText === undefined) return { authorizer: compiled.authorizer };
    const strict = strictConversion(schemaText);
    if ('unsupported' in strict) return strict;
    return { authorizer: compiled.authorizer, strict };
  },
  decide: (set, req) => {
    try {
      if (!set.strict) return decideUntyped(set, req);
      const converted = set.strict.convert(req);
      if ('refused' in converted) return { kind: 'refused', message: converted.refused };
      return answer(set.authorizer.isAuthorized(converted.request));
    } catch (err) {
      if (err instanceof Refusal) return { kind: 'refused', message: err.message };
      // Not a refusal the adapter meant: shown as one so that the case is reported with the full data
      // (a difference unless cedar-wasm refused the request too).
      return { kind: 'refused', message: `THREW ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` };
    }
  },
};
