/**
 * Strict mode for the compiled adapter: a request converted against the schema by the compiled path's own
 * converters (`checkRequestTypes`, `convertContext`, `convertEntities`), which refuse what cedar-wasm refuses
 * with a schema and `validateRequest: true`. The entities are split between a "directory" part and a "request"
 * part, as production converts them (see {@link splitEntities}).
 */
import { isMandateError } from '../../src/core/errors.ts';
import type { CompiledAuthorizationRequest } from '../../src/policy/compiled/compiled-authorizer.ts';
import { checkRequestTypes, convertContext } from '../../src/policy/compiled/convert-context.ts';
import { convertEntities, convertEntitiesOnto } from '../../src/policy/compiled/convert-entities.ts';
import { buildSchemaModel, type SchemaModel } from '../../src/policy/compiled/schema-model.ts';
import { EntityUid, type EntityLookup } from '../../src/policy/compiled/value.ts';
import type { EntityJson } from '../../src/policy/types.ts';
import type { DrtRequest, Unsupported } from './engines.ts';

/** Converts requests against one schema: a compiled-path request, or the refusal. */
export interface StrictConversion {
  convert(req: DrtRequest): { request: CompiledAuthorizationRequest } | { refused: string };
}

/**
 * The entities as production holds them: every other one as the policy directory's (`convertEntities`, once
 * per load), the others as the request's own (`convertEntitiesOnto`), without the uids the directory defines (Mandate
 * ignores caller data for those). cedar-wasm gets them all together; the answers must not differ.
 */
function splitEntities(all: EntityJson[], model: SchemaModel): EntityLookup {
  // Interleaved, so that request entities are parents of directory entities as well as the other way round.
  const directory = all.filter((_, i) => i % 2 === 1);
  const base = convertEntities(directory, model);
  const defined = new Set(directory.map((e) => new EntityUid(e.uid.type, e.uid.id).key));
  const caller = all.filter((e, i) => i % 2 === 0 && !defined.has(new EntityUid(e.uid.type, e.uid.id).key));
  return caller.length > 0 ? convertEntitiesOnto(caller, model, base) : base;
}

/** The conversion for `schemaText`, or why strict mode is not available for it. */
export function strictConversion(schemaText: string): StrictConversion | Unsupported {
  let model: SchemaModel;
  try {
    model = buildSchemaModel(schemaText);
  } catch (err) {
    return { unsupported: `schema model: ${err instanceof Error ? err.message : String(err)}` };
  }
  return {
    convert(req) {
      try {
        const action = checkRequestTypes(req.principal, req.action, req.resource, model);
        const context = convertContext(req.context, action, model);
        const entities = splitEntities(req.entities as EntityJson[], model);
        return {
          request: {
            principal: new EntityUid(req.principal.type, req.principal.id),
            action: new EntityUid(req.action.type, req.action.id),
            resource: new EntityUid(req.resource.type, req.resource.id),
            context,
            entities,
          },
        };
      } catch (err) {
        if (isMandateError(err)) return { refused: err.message };
        throw err;
      }
    },
  };
}
