/**
 * The generators' own model of Cedar: types, values, schemas and an expression tree. Kept separate from
 * cedar-wasm's JSON types because Longs here are `bigint` (the JSON policy form holds them as JavaScript
 * numbers, which cannot represent the i64 limits the generators aim at).
 */

/** Extension types, by their schema names. */
export type ExtName = 'decimal' | 'ipaddr' | 'datetime' | 'duration';

/** A Cedar type. Entity names are fully qualified (`Ns::User`). */
export type Ty =
  | { k: 'Bool' }
  | { k: 'Long' }
  | { k: 'String' }
  | { k: 'Set'; el: Ty }
  | { k: 'Record'; attrs: Attr[] }
  | { k: 'Entity'; name: string }
  | { k: 'Ext'; name: ExtName };

/** One attribute of a record or entity shape. */
export interface Attr {
  name: string;
  ty: Ty;
  required: boolean;
}

/** An entity type of a generated schema. */
export interface EntityTypeDef {
  /** Fully qualified name. */
  name: string;
  /** Name as written inside its namespace. */
  local: string;
  memberOf: string[];
  attrs: Attr[];
  tags?: Ty;
  /** For an enumerated entity type: its ids (no attributes, no parents). */
  enumIds?: string[];
}

/** An action of a generated schema. */
export interface ActionDef {
  id: string;
  memberOf: string[];
  appliesTo?: { principals: string[]; resources: string[]; context: Ty & { k: 'Record' }; contextCommon?: string };
}

/** A generated schema. */
export interface SchemaModel {
  namespace: string;
  entityTypes: EntityTypeDef[];
  actions: ActionDef[];
  /** Common type declarations (name → record type), printed before their use. */
  commonTypes: { name: string; ty: Ty & { k: 'Record' } }[];
  /** `Action` or `Ns::Action`. */
  actionType: string;
}

/** A Cedar value (entity data, context, request). */
export type Val =
  | { k: 'bool'; v: boolean }
  | { k: 'long'; v: bigint }
  | { k: 'str'; v: string }
  | { k: 'set'; items: Val[] }
  | { k: 'rec'; fields: [string, Val][] }
  | { k: 'ent'; type: string; id: string }
  | { k: 'ext'; fn: 'decimal' | 'ip' | 'datetime' | 'duration'; arg: string };

/** One element of a `like` pattern. */
export type PatternElem = { wild: true } | { lit: string };

/** A Cedar expression. */
export type Expr =
  | { k: 'lit'; v: boolean | bigint | string }
  | { k: 'var'; v: 'principal' | 'action' | 'resource' | 'context' }
  | { k: 'uid'; type: string; id: string }
  | { k: 'not'; arg: Expr }
  | { k: 'neg'; arg: Expr }
  | { k: 'bin'; op: BinOp; l: Expr; r: Expr }
  | { k: 'method'; name: MethodName; recv: Expr; args: Expr[] }
  | { k: 'call'; fn: 'decimal' | 'ip' | 'datetime' | 'duration'; arg: Expr }
  | { k: 'attr'; e: Expr; attr: string }
  | { k: 'has'; e: Expr; path: string[] }
  | { k: 'like'; e: Expr; pattern: PatternElem[] }
  | { k: 'is'; e: Expr; type: string; in?: Expr }
  | { k: 'if'; c: Expr; t: Expr; e: Expr }
  | { k: 'set'; items: Expr[] }
  | { k: 'record'; fields: [string, Expr][] };

export type BinOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||' | '+' | '-' | '*' | 'in';

export type MethodName =
  | 'contains'
  | 'containsAll'
  | 'containsAny'
  | 'isEmpty'
  | 'getTag'
  | 'hasTag'
  | 'lessThan'
  | 'lessThanOrEqual'
  | 'greaterThan'
  | 'greaterThanOrEqual'
  | 'isIpv4'
  | 'isIpv6'
  | 'isLoopback'
  | 'isMulticast'
  | 'isInRange'
  | 'offset'
  | 'durationSince'
  | 'toDate'
  | 'toTime'
  | 'toDays'
  | 'toHours'
  | 'toMinutes'
  | 'toSeconds'
  | 'toMilliseconds';

/** A policy scope constraint on the principal or the resource. */
export type ScopeConstraint =
  | { op: 'All' }
  | { op: '=='; type: string; id: string }
  | { op: 'in'; type: string; id: string }
  | { op: 'is'; type: string; in?: { type: string; id: string } };

/** A policy scope constraint on the action. */
export type ActionScope = { op: 'All' } | { op: '=='; id: string } | { op: 'in'; ids: string[]; list: boolean };

/** A generated policy. */
export interface PolicyModel {
  effect: 'permit' | 'forbid';
  principal: ScopeConstraint;
  action: ActionScope;
  resource: ScopeConstraint;
  conditions: { kind: 'when' | 'unless'; body: Expr }[];
}

export const BOOL: Ty = { k: 'Bool' };
export const LONG: Ty = { k: 'Long' };
export const STRING: Ty = { k: 'String' };

/** Structural type equality (record attribute order ignored). */
export function sameType(a: Ty, b: Ty): boolean {
  if (a.k !== b.k) return false;
  switch (a.k) {
    case 'Set':
      return sameType(a.el, (b as typeof a).el);
    case 'Entity':
      return a.name === (b as typeof a).name;
    case 'Ext':
      return a.name === (b as typeof a).name;
    case 'Record': {
      const bb = b as typeof a;
      if (a.attrs.length !== bb.attrs.length) return false;
      return a.attrs.every((x) => bb.attrs.some((y) => y.name === x.name && y.required === x.required && sameType(x.ty, y.ty)));
    }
    default:
      return true;
  }
}
