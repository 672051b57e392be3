/**
 * Printers: a generated schema to Cedar schema text, a generated policy to Cedar policy text (fully
 * parenthesised, so precedence never changes what was generated), and values to Cedar JSON.
 */
import type { Attr, Expr, PatternElem, PolicyModel, SchemaModel, ScopeConstraint, Ty, Val } from './model.ts';

const RESERVED = new Set(['true', 'false', 'if', 'then', 'else', 'in', 'is', 'like', 'has', '__cedar', 'principal', 'action', 'resource', 'context']);

/** True when `name` can be written bare (`e.name`, `name: Long`). */
export function isIdent(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !RESERVED.has(name);
}

/** A Cedar string literal (escapes as the Cedar grammar defines them). */
export function cedarString(s: string, escapeStar = false): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '*' && escapeStar) out += '\\*';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else out += `\\u{${cp.toString(16)}}`;
  }
  return `${out}"`;
}

// ---- schema ----------------------------------------------------------------------------------------

function local(schema: SchemaModel, name: string): string {
  return schema.namespace && name.startsWith(`${schema.namespace}::`) ? name.slice(schema.namespace.length + 2) : name;
}

function attrName(name: string): string {
  return isIdent(name) ? name : cedarString(name);
}

/** A type in schema syntax. */
export function printSchemaType(schema: SchemaModel, ty: Ty): string {
  switch (ty.k) {
    case 'Bool':
      return 'Bool';
    case 'Long':
      return 'Long';
    case 'String':
      return 'String';
    case 'Set':
      return `Set<${printSchemaType(schema, ty.el)}>`;
    case 'Entity':
      return local(schema, ty.name);
    case 'Ext':
      return ty.name;
    case 'Record':
      return printAttrs(schema, ty.attrs);
  }
}

function printAttrs(schema: SchemaModel, attrs: Attr[]): string {
  return `{ ${attrs.map((a) => `${attrName(a.name)}${a.required ? '' : '?'}: ${printSchemaType(schema, a.ty)}`).join(', ')} }`;
}

/** The schema as Cedar schema text. */
export function printSchema(schema: SchemaModel): string {
  const lines: string[] = [];
  for (const c of schema.commonTypes) lines.push(`type ${c.name} = ${printSchemaType(schema, c.ty)};`);
  for (const t of schema.entityTypes) {
    if (t.enumIds) {
      lines.push(`entity ${t.local} enum [${t.enumIds.map((id) => cedarString(id)).join(', ')}];`);
      continue;
    }
    const parents = t.memberOf.length > 0 ? ` in [${t.memberOf.map((m) => local(schema, m)).join(', ')}]` : '';
    const shape = t.attrs.length > 0 ? ` ${printAttrs(schema, t.attrs)}` : '';
    const tags = t.tags ? ` tags ${printSchemaType(schema, t.tags)}` : '';
    lines.push(`entity ${t.local}${parents}${shape}${tags};`);
  }
  for (const a of schema.actions) {
    const parents = a.memberOf.length > 0 ? ` in [${a.memberOf.map((m) => cedarString(m)).join(', ')}]` : '';
    let applies = '';
    if (a.appliesTo) {
      const ctx = a.appliesTo.contextCommon ?? printSchemaType(schema, a.appliesTo.context);
      applies = ` appliesTo {\n  principal: [${a.appliesTo.principals.map((p) => local(schema, p)).join(', ')}],\n  resource: [${a.appliesTo.resources.map((r) => local(schema, r)).join(', ')}],\n  context: ${ctx}\n}`;
    }
    lines.push(`action ${cedarString(a.id)}${parents}${applies};`);
  }
  if (!schema.namespace) return `${lines.join('\n')}\n`;
  return `namespace ${schema.namespace} {\n${lines.map((l) => l.split('\n').map((x) => `  ${x}`).join('\n')).join('\n')}\n}\n`;
}

// ---- policies --------------------------------------------------------------------------------------

function uidText(type: string, id: string): string {
  return `${type}::${cedarString(id)}`;
}

function isAtomic(e: Expr): boolean {
  return e.k === 'var' || e.k === 'uid' || e.k === 'call' || e.k === 'set' || e.k === 'record' || (e.k === 'lit' && !(typeof e.v === 'bigint' && e.v < 0n));
}

function wrap(e: Expr): string {
  const s = printExpr(e);
  return isAtomic(e) ? s : `(${s})`;
}

function patternText(p: PatternElem[]): string {
  // Each literal is escaped on its own, `*` as `\*`; a wildcard is a bare `*`.
  return `"${p.map((x) => ('wild' in x ? '*' : cedarString(x.lit, true).slice(1, -1))).join('')}"`;
}

/** An expression as Cedar text. */
export function printExpr(e: Expr): string {
  switch (e.k) {
    case 'lit':
      if (typeof e.v === 'boolean') return String(e.v);
      if (typeof e.v === 'string') return cedarString(e.v);
      // A negative literal is written `-N` so that i64::MIN (whose absolute value is no Long) parses.
      return e.v.toString();
    case 'var':
      return e.v;
    case 'uid':
      return uidText(e.type, e.id);
    case 'not':
      return `!${wrap(e.arg)}`;
    case 'neg':
      return `-${wrapNeg(e.arg)}`;
    case 'bin':
      return `${wrap(e.l)} ${e.op} ${wrap(e.r)}`;
    case 'method':
      return `${wrap(e.recv)}.${e.name}(${e.args.map(printExpr).join(', ')})`;
    case 'call':
      return `${e.fn}(${printExpr(e.arg)})`;
    case 'attr':
      return isIdent(e.attr) ? `${wrap(e.e)}.${e.attr}` : `${wrap(e.e)}[${cedarString(e.attr)}]`;
    case 'has':
      if (e.path.every(isIdent)) return `${wrap(e.e)} has ${e.path.join('.')}`;
      if (e.path.length === 1) return `${wrap(e.e)} has ${cedarString(e.path[0] as string)}`;
      return hasChain(e.e, e.path);
    case 'like':
      return `${wrap(e.e)} like ${patternText(e.pattern)}`;
    case 'is':
      return `${wrap(e.e)} is ${e.type}${e.in ? ` in ${wrap(e.in)}` : ''}`;
    case 'if':
      return `if ${printExpr(e.c)} then ${printExpr(e.t)} else ${printExpr(e.e)}`;
    case 'set':
      return `[${e.items.map(printExpr).join(', ')}]`;
    case 'record':
      return `{${e.fields.map(([k, v]) => `${cedarString(k)}: ${printExpr(v)}`).join(', ')}}`;
  }
}

/** `-` before a literal would fold into it; parenthesise anything but a variable-like operand. */
function wrapNeg(e: Expr): string {
  return e.k === 'var' || e.k === 'attr' ? wrap(e) : `(${printExpr(e)})`;
}

/** `e has a.b` with a non-identifier step, written as the conjunction it stands for. */
function hasChain(base: Expr, path: string[]): string {
  const parts: string[] = [];
  let cur: Expr = base;
  for (const step of path) {
    parts.push(`(${printExpr({ k: 'has', e: cur, path: [step] })})`);
    cur = { k: 'attr', e: cur, attr: step };
  }
  return parts.join(' && ');
}

function scopeText(v: 'principal' | 'resource', c: ScopeConstraint): string {
  switch (c.op) {
    case 'All':
      return v;
    case '==':
      return `${v} == ${uidText(c.type, c.id)}`;
    case 'in':
      return `${v} in ${uidText(c.type, c.id)}`;
    case 'is':
      return `${v} is ${c.type}${c.in ? ` in ${uidText(c.in.type, c.in.id)}` : ''}`;
  }
}

/** A policy as Cedar text. */
export function printPolicy(p: PolicyModel, actionType: string): string {
  let action = 'action';
  if (p.action.op === '==') action = `action == ${uidText(actionType, p.action.id)}`;
  else if (p.action.op === 'in') {
    action = p.action.list
      ? `action in [${p.action.ids.map((id) => uidText(actionType, id)).join(', ')}]`
      : `action in ${uidText(actionType, p.action.ids[0] as string)}`;
  }
  const head = `${p.effect} (\n  ${scopeText('principal', p.principal)},\n  ${action},\n  ${scopeText('resource', p.resource)}\n)`;
  const body = p.conditions.map((c) => `\n${c.kind} { ${printExpr(c.body)} }`).join('');
  return `${head}${body};`;
}

// ---- values ----------------------------------------------------------------------------------------

/** How entity references and extension values are written in JSON. */
export type JsonStyle = 'explicit' | 'mixed';

/**
 * A value in Cedar's JSON data format. `explicit` writes `__entity` / `__extn` everywhere (needed without a
 * schema); `mixed` alternates between those and the schema-directed short forms (`{type, id}`, plain strings
 * for extension values), deterministically.
 */
export function valueToJson(v: Val, style: JsonStyle, counter = { n: 0 }): unknown {
  switch (v.k) {
    case 'bool':
      return v.v;
    case 'long':
      return Number(v.v);
    case 'str':
      return v.v;
    case 'set':
      return v.items.map((x) => valueToJson(x, style, counter));
    case 'rec':
      return Object.fromEntries(v.fields.map(([k, x]) => [k, valueToJson(x, style, counter)]));
    case 'ent':
      return style === 'mixed' && counter.n++ % 2 === 0 ? { type: v.type, id: v.id } : { __entity: { type: v.type, id: v.id } };
    case 'ext':
      return style === 'mixed' && counter.n++ % 2 === 0 ? v.arg : { __extn: { fn: v.fn, arg: v.arg } };
  }
}

/** A value as a policy expression (a literal). */
export function valueToExpr(v: Val): Expr {
  switch (v.k) {
    case 'bool':
    case 'long':
    case 'str':
      return { k: 'lit', v: v.v };
    case 'set':
      return { k: 'set', items: v.items.map(valueToExpr) };
    case 'rec':
      return { k: 'record', fields: v.fields.map(([k, x]) => [k, valueToExpr(x)]) };
    case 'ent':
      return { k: 'uid', type: v.type, id: v.id };
    case 'ext':
      return { k: 'call', fn: v.fn, arg: { k: 'lit', v: v.arg } };
  }
}
