/**
 * Random schemas: a few entity types with hierarchies (`in [...]`, including self-membership), attributes of
 * every type (optional ones too), tags, sometimes an enumerated type, sometimes a namespace; actions with
 * action groups and `appliesTo`; a context record (inline or a common type).
 */
import type { ActionDef, Attr, EntityTypeDef, ExtName, SchemaModel, Ty } from './model.ts';
import type { Rand } from './random.ts';

const TYPE_NAMES = ['User', 'Team', 'Doc', 'Folder', 'Org'];
/**
 * Attribute names, including ones that are not identifiers, ones that name JavaScript internals, and ones that
 * make a record look like an entity reference in JSON (`type`, `id`, `__entity`).
 */
export const ATTR_NAMES = ['a', 'b', 'n', 'flag', 'owner', 'when', 'addr', 'tags', 'x y', '__proto__', 'constructor', 'é', 'level', 'items', 'type', 'id', '__entity'];
const ACTION_NAMES = ['read', 'write', 'share', 'delete me'];
const GROUP_NAMES = ['group', 'all'];
export const EXT_NAMES: readonly ExtName[] = ['decimal', 'ipaddr', 'datetime', 'duration'];
export const ENUM_IDS = ['red', 'green', 'blue'];

/** A random type; `entityNames` are the types an entity reference may have. */
export function genType(r: Rand, entityNames: readonly string[], depth: number): Ty {
  const options: [number, () => Ty][] = [
    [3, () => ({ k: 'Long' })],
    [3, () => ({ k: 'String' })],
    [2, () => ({ k: 'Bool' })],
    [2, () => ({ k: 'Entity', name: r.pick(entityNames) })],
    [3, () => ({ k: 'Ext', name: r.pick(EXT_NAMES) })],
  ];
  if (depth > 0) {
    options.push([3, () => ({ k: 'Set', el: genType(r, entityNames, depth - 1) })]);
    options.push([2, () => ({ k: 'Record', attrs: genAttrs(r, entityNames, depth - 1, 1, 3) })]);
  }
  return r.weighted(options)();
}

function genAttrs(r: Rand, entityNames: readonly string[], depth: number, min: number, max: number): Attr[] {
  const count = r.int(min, max);
  const names = new Set<string>();
  const attrs: Attr[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.pick(ATTR_NAMES);
    if (names.has(name)) continue;
    names.add(name);
    attrs.push({ name, ty: genType(r, entityNames, depth), required: !r.chance(0.35) });
  }
  return attrs;
}

/** A random schema. */
export function genSchema(r: Rand): SchemaModel {
  const namespace = r.chance(0.25) ? 'Ns' : '';
  const q = (n: string) => (namespace ? `${namespace}::${n}` : n);
  const count = r.int(2, 4);
  const locals = TYPE_NAMES.slice(0, count);
  const hasEnum = r.chance(0.2);
  const refNames = [...locals.map(q), ...(hasEnum ? [q('Color')] : [])];

  const entityTypes: EntityTypeDef[] = locals.map((local) => ({
    name: q(local),
    local,
    memberOf: r.subset(locals, 0.3).map(q),
    attrs: r.chance(0.85) ? genAttrs(r, refNames, 2, 1, 4) : [],
    ...(r.chance(0.25) ? { tags: genType(r, refNames, 1) } : {}),
  }));
  if (hasEnum) entityTypes.push({ name: q('Color'), local: 'Color', memberOf: [], attrs: [], enumIds: ENUM_IDS.slice(0, r.int(1, 3)) });

  const commonContext = r.chance(0.5) ? { k: 'Record' as const, attrs: genAttrs(r, refNames, 2, 0, 4) } : undefined;
  const principalPool = refNames;
  const actionCount = r.int(1, ACTION_NAMES.length);
  const groups = GROUP_NAMES.slice(0, r.int(0, 2));
  const actions: ActionDef[] = [];
  for (const g of groups) {
    // A group may itself belong to a group declared before it.
    actions.push({ id: g, memberOf: r.subset(actions.map((a) => a.id), 0.5) });
  }
  for (const id of ACTION_NAMES.slice(0, actionCount)) {
    const principals = nonEmpty(r, principalPool);
    const resources = nonEmpty(r, principalPool);
    const useCommon = commonContext !== undefined && r.chance(0.7);
    const context = useCommon ? commonContext : { k: 'Record' as const, attrs: genAttrs(r, refNames, 2, 0, 3) };
    actions.push({
      id,
      memberOf: r.subset(groups, 0.6),
      appliesTo: { principals, resources, context, ...(useCommon ? { contextCommon: 'Ctx' } : {}) },
    });
  }
  return {
    namespace,
    entityTypes,
    actions,
    commonTypes: commonContext ? [{ name: 'Ctx', ty: commonContext }] : [],
    actionType: q('Action'),
  };
}

function nonEmpty(r: Rand, pool: readonly string[]): string[] {
  const chosen = r.subset(pool, 0.45);
  return chosen.length > 0 ? chosen : [r.pick(pool)];
}

/** The entity type definition named `name`. */
export function entityType(schema: SchemaModel, name: string): EntityTypeDef | undefined {
  return schema.entityTypes.find((t) => t.name === name);
}
