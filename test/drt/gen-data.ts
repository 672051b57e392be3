/**
 * Entity stores and requests for a generated schema. Stores conform to the schema (attributes, tags,
 * parents of allowed types), form hierarchies with depth and shared ancestors, and sometimes reference
 * entities they do not hold. A few stores and contexts are deliberately non-conforming: both engines must
 * then refuse the request.
 */
import type { EntityTypeDef, PolicyModel, SchemaModel, ScopeConstraint, Ty, Val } from './model.ts';
import { actionsInScope } from './gen-policy.ts';
import type { Rand } from './random.ts';
import { genValue, genWrongValue, MISSING_ID, pickId, type UidPool } from './gen-values.ts';
import { valueToJson, type JsonStyle } from './print-cedar.ts';

const ID_POOL = ['a', 'b', 'c', 'root', 'é', 'a b'];
const TAG_KEYS = ['k', 'a', 'x y', '__proto__'];

/** A generated entity, before rendering. */
export interface EntityModel {
  type: string;
  id: string;
  attrs: [string, Val][];
  parents: { type: string; id: string }[];
  tags?: [string, Val][];
}

/** A generated request, before rendering. */
export interface RequestModel {
  principal: { type: string; id: string };
  action: string;
  resource: { type: string; id: string };
  context: [string, Val][];
}

/** What was done to make data non-conforming, if anything (for the report). */
export type Perturbation = string | undefined;

/** Generates the entity store: returns the entities, the id pool and the perturbation applied. */
export function genEntities(r: Rand, schema: SchemaModel, allowPerturb: boolean): { entities: EntityModel[]; pool: UidPool; perturbation: Perturbation } {
  const types = schema.entityTypes.filter((t) => !t.enumIds);
  const byType = new Map<string, string[]>();
  for (const t of types) {
    const n = r.int(0, 3);
    const ids = ID_POOL.slice(0, n);
    if (n > 0 && r.chance(0.15)) ids[n - 1] = r.pick(ID_POOL.slice(3));
    byType.set(t.name, [...new Set(ids)]);
  }
  const pool: UidPool = { byType };
  // Interleave types so that parents (drawn from earlier entities only, which keeps the graph acyclic)
  // can come from any allowed type and chains of the same type (Team in Team) get depth.
  const order: { def: EntityTypeDef; id: string }[] = [];
  for (let i = 0; i < 4; i++) for (const t of types) { const id = byType.get(t.name)?.[i]; if (id !== undefined) order.push({ def: t, id }); }

  const entities: EntityModel[] = [];
  for (const { def, id } of order) {
    const candidates = entities.filter((e) => def.memberOf.includes(e.type));
    const parents = r.subset(candidates, 0.5).map((e) => ({ type: e.type, id: e.id }));
    if (def.memberOf.length > 0 && r.chance(0.08)) parents.push({ type: r.pick(def.memberOf), id: MISSING_ID });
    const attrs = def.attrs.filter((a) => a.required || r.chance(0.6)).map((a) => [a.name, genValue(r, a.ty, schema, pool)] as [string, Val]);
    const e: EntityModel = { type: def.name, id, attrs, parents };
    if (def.tags) {
      const tagTy = def.tags;
      e.tags = r.subset(TAG_KEYS, 0.4).map((k) => [k, genValue(r, tagTy, schema, pool)] as [string, Val]);
    }
    entities.push(e);
  }

  let perturbation: Perturbation;
  if (allowPerturb && entities.length > 0 && r.chance(0.05)) perturbation = perturbEntities(r, schema, entities);
  else if (!allowPerturb && entities.length > 1 && r.chance(0.03)) {
    // Without a schema nothing is type-checked, but a cycle in the hierarchy or an entity described twice
    // is still refused.
    const [a, b] = [entities[0] as EntityModel, entities[entities.length - 1] as EntityModel];
    if (r.chance(0.5)) {
      a.parents.push({ type: b.type, id: b.id });
      b.parents.push({ type: a.type, id: a.id });
      perturbation = 'a cycle in the hierarchy';
    } else {
      entities.push({ ...a, attrs: [...a.attrs, ['zz_other', { k: 'bool', v: true }]] });
      perturbation = `${a.type}::${JSON.stringify(a.id)} described twice, differently`;
    }
  }
  return { entities, pool, perturbation };
}

function perturbEntities(r: Rand, schema: SchemaModel, entities: EntityModel[]): Perturbation {
  const e = r.pick(entities);
  const def = schema.entityTypes.find((t) => t.name === e.type) as EntityTypeDef;
  const kind = r.int(0, 6);
  const where = `${e.type}::${JSON.stringify(e.id)}`;
  switch (kind) {
    case 0:
      e.attrs.push(['zz_undeclared', { k: 'long', v: 1n }]);
      return `${where}: undeclared attribute`;
    case 1: {
      const req = def.attrs.find((a) => a.required);
      if (!req) break;
      e.attrs = e.attrs.filter(([n]) => n !== req.name);
      return `${where}: required attribute ${req.name} removed`;
    }
    case 2: {
      const a = def.attrs[0];
      if (!a) break;
      e.attrs = [...e.attrs.filter(([n]) => n !== a.name), [a.name, genWrongValue(r, a.ty)]];
      return `${where}: attribute ${a.name} of the wrong type`;
    }
    case 3: {
      const other = entities.find((x) => !def.memberOf.includes(x.type));
      if (!other) break;
      e.parents.push({ type: other.type, id: other.id });
      return `${where}: parent of a type it may not be in`;
    }
    case 4:
      entities.push({ type: 'Nope', id: 'x', attrs: [], parents: [] });
      return 'an entity of an undeclared type';
    case 5:
      entities.push({ ...e, attrs: [...e.attrs] });
      return `${where}: described twice`;
    case 6:
      if (def.tags) {
        e.tags = [['k', genWrongValue(r, def.tags)]];
        return `${where}: tag of the wrong type`;
      }
      e.tags = [['k', { k: 'long', v: 1n }]];
      return `${where}: tag on a type without tags`;
  }
  e.attrs.push(['zz_undeclared', { k: 'bool', v: true }]);
  return `${where}: undeclared attribute`;
}

/** Action entities with their groups: what Cedar takes from the schema, spelled out for runs without one. */
export function actionEntities(schema: SchemaModel): EntityModel[] {
  return schema.actions.map((a) => ({ type: schema.actionType, id: a.id, attrs: [], parents: a.memberOf.map((m) => ({ type: schema.actionType, id: m })) }));
}

/** Renders entities in Cedar's JSON entity format. */
export function entitiesToJson(entities: EntityModel[], style: JsonStyle): unknown[] {
  const counter = { n: 0 };
  return entities.map((e) => ({
    uid: { type: e.type, id: e.id },
    attrs: Object.fromEntries(e.attrs.map(([k, v]) => [k, valueToJson(v, style, counter)])),
    parents: e.parents.map((p) => ({ type: p.type, id: p.id })),
    ...(e.tags ? { tags: Object.fromEntries(e.tags.map(([k, v]) => [k, valueToJson(v, style, counter)])) } : {}),
  }));
}

/** Renders a context record. */
export function contextToJson(ctx: [string, Val][], style: JsonStyle): Record<string, unknown> {
  const counter = { n: 0 };
  return Object.fromEntries(ctx.map(([k, v]) => [k, valueToJson(v, style, counter)]));
}

/**
 * A request: an action, and a principal and resource that usually fit its `appliesTo` (and usually exist);
 * a context that usually conforms. `strict` requests stay within the schema's actions.
 */
export function genRequest(r: Rand, schema: SchemaModel, pool: UidPool, strict: boolean, aim?: PolicyModel): { request: RequestModel; perturbation: Perturbation } {
  const withApplies = schema.actions.filter((a) => a.appliesTo);
  // Aimed at a policy: an action, principal and resource its scope matches, so its conditions are evaluated.
  const pinned = (c: ScopeConstraint | undefined) => (c?.op === '==' || c?.op === 'is' ? c.type : undefined);
  const [pPin, rPin] = [pinned(aim?.principal), pinned(aim?.resource)];
  const inScope = aim ? actionsInScope(schema, aim.action).filter((a) => a.appliesTo) : [];
  const fitting = inScope.filter((a) => (!pPin || a.appliesTo?.principals.includes(pPin)) && (!rPin || a.appliesTo?.resources.includes(rPin)));
  const aimed = fitting.length > 0 ? fitting : inScope;
  const action = aimed.length > 0 ? r.pick(aimed) : withApplies.length > 0 && r.chance(0.96) ? r.pick(withApplies) : r.pick(schema.actions);
  const allTypes = schema.entityTypes.map((t) => t.name);
  const applies = action.appliesTo;
  const fit = strict ? 0.96 : 0.85;
  const pick = (scope: ScopeConstraint | undefined, allowed: string[] | undefined): { type: string; id: string } => {
    if (scope?.op === '==') return { type: scope.type, id: scope.id };
    const type = scope?.op === 'is' ? scope.type : allowed && r.chance(fit) ? r.pick(allowed) : r.pick(allTypes);
    return { type, id: pickId(r, schema, pool, type, 0.15) };
  };
  const principal = pick(aim?.principal, applies?.principals);
  const resource = pick(aim?.resource, applies?.resources);
  const [pType, rType] = [principal.type, resource.type];
  const ctxTy: Ty = applies?.context ?? { k: 'Record', attrs: [] };
  const ctxVal = genValue(r, ctxTy, schema, pool);
  let context = ctxVal.k === 'rec' ? ctxVal.fields : [];
  let perturbation: Perturbation;
  if (!applies) perturbation = `action ${action.id} applies to nothing`;
  else if (!applies.principals.includes(pType) || !applies.resources.includes(rType)) perturbation = `action ${action.id} does not apply to ${pType} × ${rType}`;
  if (strict && r.chance(0.05)) {
    const kind = r.int(0, 2);
    if (kind === 0) {
      context = [...context, ['zz_undeclared', { k: 'long', v: 1n }]];
      perturbation = 'context: undeclared attribute';
    } else if (kind === 1 && ctxTy.k === 'Record' && ctxTy.attrs.some((a) => a.required)) {
      const req = ctxTy.attrs.find((a) => a.required) as { name: string };
      context = context.filter(([n]) => n !== req.name);
      perturbation = `context: required attribute ${req.name} removed`;
    } else if (ctxTy.k === 'Record' && ctxTy.attrs[0]) {
      const a = ctxTy.attrs[0];
      context = [...context.filter(([n]) => n !== a.name), [a.name, genWrongValue(r, a.ty)]];
      perturbation = `context: attribute ${a.name} of the wrong type`;
    }
  }
  // Without a schema any action may be asked for, declared or not.
  const actionId = !strict && r.chance(0.03) ? 'undeclared' : action.id;
  return { request: { principal, action: actionId, resource, context }, perturbation };
}
