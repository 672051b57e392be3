/**
 * What the policy directory's entities say about data resources, for workflow ceilings: a Dataset's or Record's
 * `sensitivityLevel`, and the Dataset a Record belongs to (its parent). Read from the active set at each call, so
 * a reload is seen at once; unknown when the directory does not say (the step check then refuses data with an
 * unknown level).
 */
import type { EntityRef } from '../core/decision.ts';
import type { EntityJson } from '../policy/types.ts';
import type { ResourceLookup } from './step-check.ts';

/** The active set's directory entities by `Type::"id"`. */
export interface DirectoryEntities {
  activeSet(): { entities: ReadonlyMap<string, EntityJson> } | undefined;
}

const key = (ref: EntityRef) => `${ref.type}::${JSON.stringify(ref.id)}`;

/** A {@link ResourceLookup} over the active policy set's entities. */
export function directoryLookup(engine: DirectoryEntities): ResourceLookup {
  const entity = (ref: EntityRef) => engine.activeSet()?.entities.get(key(ref));
  return {
    sensitivityOf(ref) {
      const level = entity(ref)?.attrs?.sensitivityLevel;
      return typeof level === 'number' && Number.isInteger(level) ? level : undefined;
    },
    datasetOf(ref) {
      const parent = entity(ref)?.parents?.find((p) => p.type === 'Dataset');
      return parent?.id;
    },
  };
}
