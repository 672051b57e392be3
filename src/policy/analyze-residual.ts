/**
 * Residual conditions for `mandate policy analyze`: how policies are prepared for Cedar's partial
 * evaluation with an unknown request context, and how the residual policies it returns are turned back
 * into short Cedar conditions that a person can read.
 *
 * Context attributes are given to the engine as `unknown("context.<name>")` values. An unknown value is
 * still present, so Cedar would fold `context has task` to `true` and lose the condition that a task is
 * there at all; optional attributes' `has` tests are therefore replaced by `unknown("context has <name>")`
 * before evaluation. After evaluation both kinds of unknowns are mapped back to `context.<name>` and
 * `context has <name>`, and the `true && ...` left where the scope was satisfied is folded away.
 *
 * @see https://docs.cedarpolicy.com/auth/partial-evaluation.html
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Expr, PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';

const HAS_PREFIX = 'context has ';
const ATTR_PREFIX = 'context.';

/** The unknown value that stands for context attribute `name` in a partial request. */
export function unknownContextValue(name: string): { __extn: { fn: 'unknown'; arg: string } } {
  return { __extn: { fn: 'unknown', arg: `${ATTR_PREFIX}${name}` } };
}

type ExprObject = Record<string, unknown>;

const isObject = (v: unknown): v is ExprObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const unknownCall = (arg: string): Expr => ({ unknown: [{ Value: arg }] }) as unknown as Expr;
const contextVar: Expr = { Var: 'context' };

/**
 * Replaces `context has <name>` for the given optional attributes with an unknown, so that partial
 * evaluation keeps the test in the residual instead of folding it to `true`.
 */
export function rewriteContextHas(policy: PolicyJson, optionalAttributes: ReadonlySet<string>): PolicyJson {
  const walk = (e: unknown): unknown => {
    if (Array.isArray(e)) return e.map(walk);
    if (!isObject(e)) return e;
    const has = e.has;
    if (isObject(has) && isObject(has.left) && has.left.Var === 'context') {
      const path = Array.isArray(has.attr) ? (has.attr as string[]) : [has.attr as string];
      const [first, ...rest] = path;
      if (first !== undefined && optionalAttributes.has(first)) {
        const present = unknownCall(`${HAS_PREFIX}${first}`);
        if (rest.length === 0) return present;
        // `context has a.b` is `context has a && context.a has b`.
        return { '&&': { left: present, right: { has: { left: { '.': { left: contextVar, attr: first } }, attr: rest.length === 1 ? rest[0] : rest } } } };
      }
    }
    const out: ExprObject = {};
    for (const [k, v] of Object.entries(e)) out[k] = walk(v);
    return out;
  };
  return { ...policy, conditions: walk(policy.conditions) as PolicyJson['conditions'] };
}

/** Maps the unknowns introduced for the context back to `context.<name>` and `context has <name>`. */
function restoreContext(e: unknown): unknown {
  if (Array.isArray(e)) return e.map(restoreContext);
  if (!isObject(e)) return e;
  const call = e.unknown;
  if (Array.isArray(call) && call.length === 1 && isObject(call[0]) && typeof call[0].Value === 'string') {
    const arg = call[0].Value;
    if (arg.startsWith(HAS_PREFIX)) return { has: { left: contextVar, attr: arg.slice(HAS_PREFIX.length) } };
    if (arg.startsWith(ATTR_PREFIX)) return { '.': { left: contextVar, attr: arg.slice(ATTR_PREFIX.length) } };
  }
  const out: ExprObject = {};
  for (const [k, v] of Object.entries(e)) out[k] = restoreContext(v);
  return out;
}

const NEGATED: Readonly<Record<string, string>> = { '<': '>=', '<=': '>', '>': '<=', '>=': '<', '==': '!=', '!=': '==' };

const boolValue = (e: unknown): boolean | undefined => (isObject(e) && typeof e.Value === 'boolean' ? e.Value : undefined);

/**
 * Folds what partial evaluation leaves behind: `true && x` → `x`, `false || x` → `x`, `!(a < b)` →
 * `a >= b`, `if true then x else y` → `x`, double negation. Only rewrites that keep the meaning.
 */
export function simplifyExpr(e: unknown): unknown {
  if (Array.isArray(e)) return e.map(simplifyExpr);
  if (!isObject(e)) return e;
  const [op] = Object.keys(e);
  if (op === undefined || Object.keys(e).length !== 1) return e;
  const node = e[op];
  if (op === 'Value' || op === 'Var' || !isObject(node)) {
    return op === 'Set' && Array.isArray(node) ? { Set: node.map(simplifyExpr) } : e;
  }
  if (op === '&&' || op === '||') {
    const left = simplifyExpr(node.left);
    const right = simplifyExpr(node.right);
    const l = boolValue(left);
    const r = boolValue(right);
    if (op === '&&') {
      if (l === true) return right;
      if (r === true) return left;
      if (l === false) return { Value: false };
    } else {
      if (l === false) return right;
      if (r === false) return left;
      if (l === true) return { Value: true };
    }
    return { [op]: { left, right } };
  }
  if (op === '!') {
    const arg = simplifyExpr(node.arg);
    const b = boolValue(arg);
    if (b !== undefined) return { Value: !b };
    if (isObject(arg)) {
      const [inner] = Object.keys(arg);
      if (inner === '!' && isObject(arg['!'])) return (arg['!'] as ExprObject).arg;
      const flipped = inner === undefined ? undefined : NEGATED[inner];
      if (flipped && inner) return { [flipped]: arg[inner] };
    }
    return { '!': { arg } };
  }
  if (op === 'if-then-else') {
    const cond = simplifyExpr(node.if);
    const b = boolValue(cond);
    if (b === true) return simplifyExpr(node.then);
    if (b === false) return simplifyExpr(node.else);
    return { 'if-then-else': { if: cond, then: simplifyExpr(node.then), else: simplifyExpr(node.else) } };
  }
  const out: ExprObject = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === 'attr' || k === 'entity_type' || k === 'pattern' ? v : simplifyExpr(v);
  return { [op]: out };
}

/** One residual policy's condition as one expression: its `when` bodies and the negation of its `unless` bodies. */
function conditionOf(policy: PolicyJson): unknown {
  const parts = policy.conditions.map((c) => (c.kind === 'when' ? c.body : { '!': { arg: c.body } }));
  return parts.reduce<unknown>((acc, p) => (acc === undefined ? p : { '&&': { left: acc, right: p } }), undefined) ?? { Value: true };
}

/**
 * Renders a residual policy's condition as Cedar text, e.g.
 * `context has authn && context.authn.method == "api-key"`. Returns `true` for a residual that holds.
 */
export function residualConditionText(residual: PolicyJson): string {
  return renderExpr(simplifyExpr(restoreContext(conditionOf(residual))));
}

const BINARY = new Set(['==', '!=', '<', '<=', '>', '>=', 'in', 'has', 'like', 'is', '+', '-', '*']);

/**
 * Renders an expression with only the parentheses a reader needs: `&&`, `||` and `!` are laid out here,
 * everything else is printed by the engine (`policyToText`), so the text is always valid Cedar.
 */
export function renderExpr(e: unknown): string {
  const op = isObject(e) ? Object.keys(e)[0] : undefined;
  if (op === '&&' || op === '||') {
    const parts: unknown[] = [];
    const flatten = (x: unknown) => {
      if (isObject(x) && isObject(x[op])) {
        flatten((x[op] as ExprObject).left);
        flatten((x[op] as ExprObject).right);
      } else {
        parts.push(x);
      }
    };
    flatten(e);
    return parts
      .map((x) => {
        const inner = isObject(x) ? Object.keys(x)[0] : undefined;
        const t = renderExpr(x);
        // Cedar binds && tighter than ||, but a reader should not have to know that.
        return inner === '&&' || inner === '||' || inner === 'if-then-else' ? `(${t})` : t;
      })
      .join(` ${op} `);
  }
  if (op === '!' && isObject(e) && isObject(e['!'])) {
    const arg = (e['!'] as ExprObject).arg;
    const inner = isObject(arg) ? Object.keys(arg)[0] : undefined;
    const t = renderExpr(arg);
    return inner === '&&' || inner === '||' || inner === 'if-then-else' || inner === '!' || (inner !== undefined && BINARY.has(inner)) ? `!(${t})` : `!${t}`;
  }
  return exprText(e);
}

/** Cedar text of one expression, via the engine's own printer, without redundant outer parentheses. */
export function exprText(expr: unknown): string {
  const wrapper = { effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [{ kind: 'when', body: expr }] } as unknown as PolicyJson;
  const answer = cedar.policyToText(wrapper);
  if (answer.type === 'failure') return JSON.stringify(expr);
  const m = /when \{ ([\s\S]*) \};\s*$/.exec(answer.text);
  return stripOuterParens(m?.[1] ?? answer.text);
}

function stripOuterParens(text: string): string {
  let t = text.trim();
  while (t.startsWith('(') && t.endsWith(')')) {
    // Only strip when the first parenthesis closes at the very end, and not inside a string.
    let depth = 0;
    let inString = false;
    let closesAtEnd = true;
    for (let i = 0; i < t.length; i++) {
      const c = t[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '(') depth++;
      else if (c === ')') {
        depth--;
        if (depth === 0 && i < t.length - 1) {
          closesAtEnd = false;
          break;
        }
      }
    }
    if (!closesAtEnd) break;
    t = t.slice(1, -1).trim();
  }
  return t;
}
