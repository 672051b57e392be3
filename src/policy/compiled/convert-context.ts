/**
 * Converts a request's context against its action's context type, and checks the request's principal and
 * resource types, as cedar-wasm 4.13 does with a schema and `validateRequest: true`: a missing required
 * attribute, an undeclared one or a value of the wrong type is refused (`convert-value.ts` holds the value
 * rules; `convert-context.test.ts` runs each case through both).
 *
 * @see https://docs.cedarpolicy.com/auth/authorization.html#request-validation
 */
import { InvalidContextError, InvalidEntityError, InvalidRequestError, UnknownActionError, UnknownEntityTypeError } from '../../core/errors.ts';
import type { EntityRef } from '../../core/decision.ts';
import { checkEnumId, convertRecordAttributes, nestingLimitBelow, type ValueSite } from './convert-value.ts';
import { findAction, type ActionModel, type SchemaModel } from './schema-model.ts';
import { CedarRecord, EntityUid } from './value.ts';

/**
 * Converts `json` (Cedar JSON, as `statefulIsAuthorized` takes it) to a record of the action's context type.
 * Throws `InvalidContextError` naming the attribute path for anything cedar-wasm would refuse, and
 * `UnknownActionError` when `action` names no action of the schema.
 *
 * @example convertContext({ time: { now: '2026-01-01T00:00:00Z' }, … }, findAction(model, 'read'), model)
 */
export function convertContext(json: unknown, action: ActionModel | EntityRef, model: SchemaModel): CedarRecord {
  let declared: ActionModel | undefined;
  if ('context' in action) declared = action;
  else {
    const key = new EntityUid(action.type, action.id).key;
    declared = model.actions.get(key);
    if (!declared) throw new UnknownActionError(`action ${key} is not defined by the policy schema`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InvalidContextError('context must be a JSON object');
  return new CedarRecord(convertRecordAttributes(json as Record<string, unknown>, declared.context, new ContextSite(model), [], 'context attribute'));
}

/** Refusals inside a context: `context.args.amount: …` (a class: no closure per request). */
class ContextSite implements ValueSite {
  readonly model: SchemaModel;
  // Context values sit at `{ "context": { here } }`.
  readonly nestingLimit = nestingLimitBelow(2);

  constructor(model: SchemaModel) {
    this.model = model;
  }

  refuse(path: string, message: string): Error {
    return new InvalidContextError(`context${path === '' ? '' : path.startsWith('[') ? path : `.${path}`}: ${message}`);
  }
}

/**
 * Checks what `validateRequest` checks of a request's entities: the action is declared, the principal and
 * resource types are declared and among those the action applies to, and an enumerated type's id is one it
 * lists. Errors and wording follow `authorize.ts` (`UnknownActionError`, `UnknownEntityTypeError`,
 * `InvalidRequestError`; an unlisted enumerated id is `InvalidEntityError`, as the reference path classifies
 * the engine's refusal). `action` is a bare id under the model's action type, or a full uid.
 *
 * @returns the action's model, for {@link convertContext}.
 */
export function checkRequestTypes(principal: EntityRef, action: string | EntityRef, resource: EntityRef, model: SchemaModel): ActionModel {
  const actionName = typeof action === 'string' ? action : new EntityUid(action.type, action.id).key;
  const declared = typeof action === 'string' ? findAction(model, action) : model.actions.get(actionName);
  if (!declared) {
    const known = [...new Set([...model.actions.values()].map((a) => a.uid.id))];
    throw new UnknownActionError(`action ${JSON.stringify(actionName)} is not defined by the policy schema; known actions: ${known.join(', ')}`);
  }
  const check = (ref: EntityRef, role: 'principal' | 'resource', allowed: readonly string[]) => {
    if (typeof ref !== 'object' || ref === null || typeof ref.type !== 'string' || typeof ref.id !== 'string') {
      throw new InvalidRequestError(`${role} must be { type: string, id: string }`);
    }
    if (!model.entityTypes.has(ref.type)) {
      throw new UnknownEntityTypeError(`${role} type ${JSON.stringify(ref.type)} is not defined by the policy schema; known types: ${[...model.entityTypes.keys()].sort().join(', ')}`);
    }
    if (!allowed.includes(ref.type)) {
      throw new UnknownActionError(`action ${JSON.stringify(actionName)} does not apply to ${role}s of type ${ref.type}; it applies to ${allowed.join(', ') || 'none'}`);
    }
  };
  check(principal, 'principal', declared.principalTypes);
  check(resource, 'resource', declared.resourceTypes);
  for (const [role, ref] of [['principal', principal], ['resource', resource]] as const) {
    checkEnumId(new EntityUid(ref.type, ref.id), enumSite(model, role), []);
  }
  return declared;
}

function enumSite(model: SchemaModel, role: string): ValueSite {
  return { model, nestingLimit: nestingLimitBelow(2), refuse: (_path, message) => new InvalidEntityError(`${role}: ${message}`) };
}
