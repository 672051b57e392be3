/**
 * The workflows a node runs tasks against, loaded from the policy directory's `workflows/` folder together with
 * the policy set: a reload validates the workflows first and the policies second, and activates both or neither
 * (a bad workflow file refuses the whole reload with file:line:col diagnostics, the previous set and workflows
 * stay). After a reload that changed anything, `onChange` runs and is awaited (open tasks are re-evaluated there).
 */
import { PolicySetInvalidError } from '../core/errors.ts';
import type { LoadResult } from '../policy/policy-engine.ts';
import type { PolicyEnginePort } from '../server/server-context.ts';
import { readPolicyDirectory } from '../policy/read-policy-directory.ts';
import { checkWorkflowEntities, loadWorkflowDirectory, workflowSetVersion, WORKFLOWS_FOLDER, type Workflow } from './workflows.ts';

/** The current workflows. */
export class WorkflowCatalog {
  #workflows: ReadonlyMap<string, Workflow> = new Map();
  #version = workflowSetVersion(new Map());

  /** The loaded workflows by id. */
  current(): ReadonlyMap<string, Workflow> {
    return this.#workflows;
  }

  /** Content version of the loaded workflows. */
  version(): string {
    return this.#version;
  }

  /** Replaces the workflows (used by the reloader once the policy set is active too). */
  set(workflows: ReadonlyMap<string, Workflow>): boolean {
    const version = workflowSetVersion(workflows);
    const changed = version !== this.#version;
    this.#workflows = workflows;
    this.#version = version;
    return changed;
  }
}

/**
 * Wraps the policy engine so that every reload (startup, watch, SIGHUP, admin API) also loads the workflows,
 * all or nothing. Everything else is the engine's.
 */
export function withWorkflows(engine: PolicyEnginePort, catalog: WorkflowCatalog, onChange?: () => Promise<void>): PolicyEnginePort {
  const reload = async (dir: string): Promise<LoadResult> => {
    const wf = await loadWorkflowDirectory(dir);
    if (wf.ok) {
      // The directory's Workflow entities are what Cedar sees: they must say what the workflow files say.
      const contents = await readPolicyDirectory(dir).catch(() => undefined);
      if (contents !== undefined) {
        const mismatches = checkWorkflowEntities(wf.workflows, contents.entities, contents.entitiesFile).filter((d) => d.severity === 'error');
        if (mismatches.length > 0) {
          return {
            ok: false,
            error: new PolicySetInvalidError(`the Workflow entities in the policy directory differ from their workflow files (${mismatches.length}); nothing was loaded`, { extra: { diagnostics: mismatches } }),
            activeVersion: engine.current()?.version,
          };
        }
      }
    }
    if (!wf.ok) {
      const errors = wf.diagnostics.filter((d) => d.severity === 'error').length;
      return {
        ok: false,
        error: new PolicySetInvalidError(`the workflows in ${WORKFLOWS_FOLDER}/ are invalid (${errors} error${errors === 1 ? '' : 's'}); nothing was loaded`, {
          extra: { diagnostics: wf.diagnostics },
        }),
        activeVersion: engine.current()?.version,
      } as LoadResult;
    }
    const result = await engine.reload(dir);
    if (!result.ok) return result;
    const workflowsChanged = catalog.set(wf.workflows);
    // The reload completes once open tasks were re-decided: the next request already sees their revocation.
    if (result.changed || workflowsChanged) await onChange?.();
    return workflowsChanged && !result.changed ? { ...result, changed: true } : result;
  };
  return {
    decide: (request) => engine.decide(request),
    current: () => engine.current(),
    activeSet: () => engine.activeSet(),
    reload,
  };
}
