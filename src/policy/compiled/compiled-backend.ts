/**
 * The compiled decision backend: Cedar policies compiled to JavaScript closures (compiled-authorizer.ts)
 * over entities converted once at load (convert-entities.ts), with only the caller-described entities and the
 * context converted per request. It plugs into `authorize` behind the same request checks as the reference
 * backend, and must answer exactly as cedar-wasm does (test/drt/ proves it by differential testing).
 */
import { InvalidContextError, InvalidEntityError, PolicyEngineError, isMandateError } from '../../core/errors.ts';
import type { EntityRef } from '../../core/decision.ts';
import { requestSlice, type BackendAnswer, type DecisionBackend } from '../authorize.ts';
import type { CompiledPolicySet } from '../compile-policy-set.ts';
import { compileAuthorizer, type UnsupportedFeature } from './compiled-authorizer.ts';
import { convertContext } from './convert-context.ts';
import { convertEntities, convertEntitiesOnto } from './convert-entities.ts';
import { entityKey } from '../entities.ts';
import { buildSchemaModel, findAction } from './schema-model.ts';
import { EntityUid, type EntityLookup } from './value.ts';

/** Refusals read the same whichever backend decides: the reference backend's prefix, then the detail. */
function sameWordsAsReference(err: unknown): unknown {
  if (err instanceof InvalidContextError) return new InvalidContextError(`context does not match the policy schema: ${err.description}`, { cause: err });
  if (err instanceof InvalidEntityError) return new InvalidEntityError(`entity data does not match the policy schema: ${err.description}`, { cause: err });
  return err;
}

/**
 * Builds the compiled backend for a validated set, or reports what the compiler does not support (the set is
 * then decided, as a whole, by the reference engine — nothing is approximated).
 */
export function createCompiledBackend(set: CompiledPolicySet): { ok: true; backend: DecisionBackend } | { ok: false; unsupported: UnsupportedFeature[] } {
  const compiled = compileAuthorizer(set.policies.map((p) => ({ id: p.id, effect: p.effect, json: p.json })));
  if (!compiled.ok) return { ok: false, unsupported: compiled.unsupported };
  const { authorizer } = compiled;
  const model = buildSchemaModel(set.schemaText);
  // Directory entities are converted (and checked against the schema) once, at load.
  const base = convertEntities([...set.entities.values()], model);
  const uid = (ref: EntityRef) => new EntityUid(ref.type, ref.id);

  const backend: DecisionBackend = {
    name: 'compiled',
    begin(req) {
      const action = findAction(model, req.action);
      if (!action) throw new PolicyEngineError('the compiled engine does not know an action the schema defines', { detail: req.action });
      let entities: EntityLookup;
      let context;
      try {
        // The same slice the reference engine is given: outside it an entity does not exist, and caller
        // entities outside it are not checked, on either path.
        const slice = requestSlice(req);
        const described = slice.dynamic.filter((e) => req.requestEntities.has(entityKey(e.uid)));
        const data: EntityLookup = described.length > 0 ? convertEntitiesOnto(described, model, base) : base;
        const { literalKeys, dynamicKeys } = slice;
        entities = { get: (key) => (dynamicKeys.has(key) || literalKeys.has(key) || model.actionEntities.has(key) ? data.get(key) : undefined) };
        context = convertContext(req.context, action, model);
      } catch (err) {
        throw sameWordsAsReference(err);
      }
      const actionUid = new EntityUid(model.actionType, req.action);
      const resource = uid(req.resource);
      return {
        evaluate(principal): BackendAnswer {
          try {
            return authorizer.isAuthorized({ principal: uid(principal), action: actionUid, resource, context, entities });
          } catch (err) {
            // The authorizer reports policy errors as values; anything thrown is a defect: fail closed.
            if (isMandateError(err)) throw err;
            throw new PolicyEngineError('the policy engine failed; the request is denied', { cause: err, detail: 'compiled authorizer threw' });
          }
        },
      };
    },
  };
  return { ok: true, backend };
}
