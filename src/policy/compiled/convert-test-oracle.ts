/**
 * Test support for the converters' differential tests: asks cedar-wasm (the reference) whether it accepts
 * entities or a context, and checks that the values, tags and ancestors the converters produce are the ones
 * Cedar evaluates, by evaluating one policy per fact in a single `isAuthorized` call.
 *
 * Used only by `*.test.ts` files beside it.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { Datetime, Decimal, Duration, IpAddr } from './extensions.ts';
import { CedarRecord, CedarSet, EntityUid, type CedarValue, type EntityData } from './value.ts';
import type { ActionModel, SchemaModel, SchemaType } from './schema-model.ts';

/** What the reference engine said: accepted, or refused with its messages. */
export type ReferenceOutcome = { ok: true } | { ok: false; message: string };

/** Cedar text for a string literal. */
export function cedarString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Cedar text for an entity reference. */
export function cedarEntity(uid: EntityUid): string {
  return `${uid.type}::${cedarString(uid.id)}`;
}

/** Cedar text for a value, such that Cedar's `==` with the original holds. */
export function cedarLiteral(v: CedarValue): string {
  switch (typeof v) {
    case 'boolean':
      return String(v);
    case 'string':
      return cedarString(v);
    case 'bigint':
      // The most negative Long has no literal of its own.
      return v < 0n ? `(0 - ${(-v - 1n).toString()} - 1)` : v.toString();
  }
  if (v instanceof EntityUid) return cedarEntity(v);
  if (v instanceof CedarSet) return `[${v.items.map(cedarLiteral).join(', ')}]`;
  if (v instanceof CedarRecord) return `{${[...v.attrs].map(([k, x]) => `${cedarString(k)}: ${cedarLiteral(x)}`).join(', ')}}`;
  if (v instanceof Decimal) {
    const abs = v.value < 0n ? -v.value : v.value;
    return `decimal("${v.value < 0n ? '-' : ''}${abs / 10_000n}.${(abs % 10_000n).toString().padStart(4, '0')}")`;
  }
  if (v instanceof IpAddr) {
    const text = v.version === 4
      ? [24n, 16n, 8n, 0n].map((s) => ((v.addr >> s) & 255n).toString()).join('.')
      : [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => ((v.addr >> s) & 0xffffn).toString(16)).join(':');
    return `ip("${text}/${v.prefix}")`;
  }
  if (v instanceof Datetime || v instanceof Duration) return v.toCedar();
  throw new TypeError(`no Cedar literal for ${String(v)}`);
}

/** A JSON value of type `t` that Cedar accepts (the first enumerated id for an enumerated entity type). */
export function sampleJson(t: SchemaType, model: SchemaModel): unknown {
  switch (t.kind) {
    case 'Bool':
      return false;
    case 'Long':
      return 0;
    case 'String':
      return '';
    case 'Set':
      return [];
    case 'Record': {
      const out: Record<string, unknown> = {};
      for (const [k, a] of t.attrs) if (a.required) out[k] = sampleJson(a.type, model);
      return out;
    }
    case 'Entity': {
      const ids = model.entityTypes.get(t.name)?.enumIds;
      return { type: t.name, id: ids ? [...ids][0] : 'sample' };
    }
    case 'Extension':
      return { ipaddr: '0.0.0.0', decimal: '0.0', datetime: '1970-01-01', duration: '0ms' }[t.name];
  }
}

/** A request for `action` that `validateRequest` accepts, with a sample context of its context type. */
export function sampleRequest(action: ActionModel, model: SchemaModel): { principal: { type: string; id: string }; resource: { type: string; id: string }; context: Record<string, unknown> } {
  const pick = (types: readonly string[]) => {
    const type = types[0] ?? Array.from(model.entityTypes.keys())[0] ?? 'Unknown';
    const ids = model.entityTypes.get(type)?.enumIds;
    return { type, id: ids ? ([...ids][0] as string) : 'sample' };
  };
  return { principal: pick(action.principalTypes), resource: pick(action.resourceTypes), context: sampleJson(action.context, model) as Record<string, unknown> };
}

function isAuthorized(
  schema: string,
  action: ActionModel,
  model: SchemaModel,
  entities: unknown,
  policies: Record<string, string>,
  overrides: { context?: unknown; validateRequest?: boolean } = {},
): cedar.AuthorizationAnswer {
  const req = sampleRequest(action, model);
  return cedar.isAuthorized({
    principal: req.principal,
    action: { type: action.uid.type, id: action.uid.id },
    resource: req.resource,
    context: ('context' in overrides ? overrides.context : req.context) as never,
    schema,
    validateRequest: overrides.validateRequest ?? false,
    policies: { staticPolicies: policies },
    entities: entities as never,
  });
}

function firstAction(model: SchemaModel): ActionModel {
  const [a] = model.actions.values();
  if (!a) throw new TypeError('the oracle needs a schema with at least one action');
  return a;
}

/** Whether cedar-wasm accepts these entities (in an authorization call, as the reference path makes it). */
export function referenceAcceptsEntities(schema: string, model: SchemaModel, entities: unknown): ReferenceOutcome {
  let answer: cedar.AuthorizationAnswer;
  try {
    answer = isAuthorized(schema, firstAction(model), model, entities, {});
  } catch (err) {
    return { ok: false, message: `threw: ${err instanceof Error ? err.message : String(err)}` };
  }
  return answer.type === 'success' ? { ok: true } : { ok: false, message: answer.errors.map((e) => e.message).join('; ') };
}

/** Whether cedar-wasm accepts this context for `action` (with `validateRequest`, as the reference path calls it). */
export function referenceAcceptsContext(schema: string, model: SchemaModel, action: ActionModel, context: unknown): ReferenceOutcome {
  let answer: cedar.AuthorizationAnswer;
  try {
    answer = isAuthorized(schema, action, model, [], {}, { context, validateRequest: true });
  } catch (err) {
    return { ok: false, message: `threw: ${err instanceof Error ? err.message : String(err)}` };
  }
  return answer.type === 'success' ? { ok: true } : { ok: false, message: answer.errors.map((e) => e.message).join('; ') };
}

/**
 * Checks every fact of the converted entities in Cedar: each attribute and tag equals its value, no
 * undeclared-but-absent attribute is present, and `e in k` holds exactly for the ancestors computed. Returns
 * the facts Cedar disagrees with (empty when all agree).
 */
export function disagreeingEntityFacts(schema: string, model: SchemaModel, entities: unknown, converted: ReadonlyMap<string, EntityData>): string[] {
  const policies: Record<string, string> = {};
  const expected = new Set<string>();
  const fact = (id: string, condition: string, holds: boolean) => {
    policies[id] = `permit(principal, action, resource) when { ${condition} };`;
    if (holds) expected.add(id);
  };
  const keys = new Set<string>();
  for (const e of converted.values()) {
    keys.add(e.uid.key);
    for (const a of e.ancestors) keys.add(a);
  }
  const uidOf = new Map([...converted.values()].map((e) => [e.uid.key, e.uid]));
  for (const e of converted.values()) {
    const ref = cedarEntity(e.uid);
    for (const [k, v] of e.attrs) fact(`attr ${e.uid.key}[${JSON.stringify(k)}]`, `${ref}[${cedarString(k)}] == ${cedarLiteral(v)}`, true);
    for (const k of model.entityTypes.get(e.uid.type)?.shape.attrs.keys() ?? []) {
      if (!e.attrs.has(k)) fact(`absent ${e.uid.key}[${JSON.stringify(k)}]`, `${ref} has ${cedarString(k)}`, false);
    }
    for (const [k, v] of e.tags) fact(`tag ${e.uid.key}[${JSON.stringify(k)}]`, `${ref}.hasTag(${cedarString(k)}) && ${ref}.getTag(${cedarString(k)}) == ${cedarLiteral(v)}`, true);
    for (const k of keys) {
      const other = uidOf.get(k) ?? parseKey(k);
      fact(`in ${e.uid.key} ${k}`, `${ref} in ${cedarEntity(other)}`, k === e.uid.key || e.ancestors.has(k));
    }
  }
  const answer = isAuthorized(schema, firstAction(model), model, entities, policies);
  if (answer.type === 'failure') return [`cedar refused: ${answer.errors.map((e) => e.message).join('; ')}`];
  const reason = new Set(answer.response.diagnostics.reason);
  const out: string[] = answer.response.diagnostics.errors.map((e) => `${e.policyId}: error ${e.error.message}`);
  for (const id of Object.keys(policies)) {
    if (reason.has(id) !== expected.has(id)) out.push(`${id}: cedar says ${reason.has(id)}, converted says ${expected.has(id)}`);
  }
  return out;
}

/** Checks in Cedar that the converted context equals the one Cedar builds (one `context == …` policy). */
export function disagreeingContext(schema: string, model: SchemaModel, action: ActionModel, context: unknown, converted: CedarRecord): string[] {
  const policies: Record<string, string> = { whole: `permit(principal, action, resource) when { context == ${cedarLiteral(converted)} };` };
  const answer = isAuthorized(schema, action, model, [], policies, { context, validateRequest: true });
  if (answer.type === 'failure') return [`cedar refused: ${answer.errors.map((e) => e.message).join('; ')}`];
  const errors = answer.response.diagnostics.errors.map((e) => `${e.policyId}: error ${e.error.message}`);
  return answer.response.decision === 'allow' ? errors : [...errors, `context differs from ${cedarLiteral(converted)}`];
}

function parseKey(key: string): EntityUid {
  const at = key.indexOf('::"');
  return new EntityUid(key.slice(0, at), JSON.parse(key.slice(at + 2)) as string);
}
