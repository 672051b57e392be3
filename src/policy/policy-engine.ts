/**
 * The policy decision point: holds the active policy set, swaps it atomically on reload, and decides
 * requests. A set that does not validate is refused whole and the previous set stays active; a node never
 * serves with an empty or partial set.
 */
import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngineError, PolicyNotLoadedError } from '../core/errors.ts';
import type { Decision } from '../core/decision.ts';
import { systemClock, type Clock, type IdGenerator } from '../core/ports.ts';
import { authorize, referenceBackend, type ActiveSet, type DecisionBackend } from './authorize.ts';
import { createCompiledBackend } from './compiled/compiled-backend.ts';
import type { UnsupportedFeature } from './compiled/compiled-authorizer.ts';
import { compilePolicySet, type CompiledPolicySet } from './compile-policy-set.ts';
import { readPolicyDirectory, type PolicyDirectory } from './read-policy-directory.ts';
import type { AuthorizationRequest, DecisionPoint, PolicySetInfo, PolicySetStatus } from './types.ts';

/** Options of a `PolicyEngine`. */
export interface PolicyEngineOptions {
  clock?: Clock;
  ids?: IdGenerator;
  /** Maximum actors in a delegation chain (default 5). */
  maxDelegationDepth?: number;
  /** Maximum caller-supplied entities per request (default 100). */
  maxRequestEntities?: number;
  /**
   * `compiled` (default): Cedar policies compiled to JavaScript, proven equal to cedar-wasm by differential
   * testing; a set using a feature the compiler does not support is decided by the reference engine as a
   * whole. `reference`: cedar-wasm for every decision.
   */
  engine?: 'compiled' | 'reference';
}

/** What a load attempt did: the version now active, or why the new set was refused. */
export type LoadResult =
  | { ok: true; info: PolicySetInfo; changed: boolean }
  | { ok: false; error: unknown; activeVersion: string | undefined };

let engineCounter = 0;

/** Generates random UUIDs (decision ids). */
export const uuidGenerator: IdGenerator = { next: () => randomUUID() };

/** Cedar's version, for logs and metadata. */
export function cedarVersion(): string {
  return cedar.getCedarVersion();
}

/** The policy decision point. */
export class PolicyEngine implements DecisionPoint, PolicySetStatus {
  readonly #clock: Clock;
  readonly #ids: IdGenerator;
  readonly #maxDelegationDepth: number;
  readonly #maxRequestEntities: number;
  readonly #slotPrefix: string;
  readonly #engine: 'compiled' | 'reference';
  #slotToggle = 0;
  #active: ActiveSet | undefined;
  #info: PolicySetInfo | undefined;

  constructor(options: PolicyEngineOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? uuidGenerator;
    this.#maxDelegationDepth = options.maxDelegationDepth ?? 5;
    this.#maxRequestEntities = options.maxRequestEntities ?? 100;
    this.#slotPrefix = `mandate-${process.pid}-${++engineCounter}`;
    this.#engine = options.engine ?? 'compiled';
  }

  /** Info about the active set, or undefined when none is loaded. */
  current(): PolicySetInfo | undefined {
    return this.#info;
  }

  /** The active compiled set (for analysis tools). */
  activeSet(): CompiledPolicySet | undefined {
    return this.#active;
  }

  /**
   * Reads, validates and activates the policy directory `dir`. Throws `PolicySetInvalidError` (with
   * `extra.diagnostics`) when the set is refused; the previous set, if any, stays active.
   */
  async loadDirectory(dir: string): Promise<PolicySetInfo> {
    return this.activate(await readPolicyDirectory(dir));
  }

  /** Like `loadDirectory`, but never throws: reports what happened. */
  async reload(dir: string): Promise<LoadResult> {
    const before = this.#info?.version;
    try {
      const info = await this.loadDirectory(dir);
      return { ok: true, info, changed: info.version !== before };
    } catch (error) {
      return { ok: false, error, activeVersion: before };
    }
  }

  /** Validates and activates already-read directory contents. */
  activate(contents: Pick<PolicyDirectory, 'schema' | 'policies' | 'entities' | 'entitiesFile'>): PolicySetInfo {
    const compiled = compilePolicySet(contents);
    if (this.#active && this.#info && compiled.version === this.#active.version) return this.#info;
    // Alternate between two engine slots so that the active set is never overwritten before the switch.
    const slot = `${this.#slotPrefix}-${this.#slotToggle++ % 2}`;
    const schemaAnswer = cedar.preparseSchema(slot, compiled.schemaText);
    if (schemaAnswer.type === 'failure') {
      throw new PolicyEngineError('the policy engine refused a schema that validated', { detail: schemaAnswer.errors.map((e) => e.message).join('; ') });
    }
    const setAnswer = cedar.preparsePolicySet(slot, { staticPolicies: compiled.staticPolicies });
    if (setAnswer.type === 'failure') {
      throw new PolicyEngineError('the policy engine refused a policy set that validated', { detail: setAnswer.errors.map((e) => e.message).join('; ') });
    }
    // The reference engine stays pre-parsed even when the compiled one decides: analysis, `policy eval
    // --engine reference` and the differential tests use it, and a fallback needs no second load.
    let backend: DecisionBackend = referenceBackend;
    let unsupported: UnsupportedFeature[] = [];
    if (this.#engine === 'compiled') {
      const built = createCompiledBackend(compiled);
      if (built.ok) backend = built.backend;
      else unsupported = built.unsupported;
    }
    const loadedAt = this.#clock.now();
    this.#active = { ...compiled, slot, loadedAt, backend };
    this.#info = {
      version: compiled.version,
      loadedAt,
      policies: compiled.policies,
      entityCount: compiled.entities.size,
      warnings: compiled.warnings,
      engine: backend.name,
      unsupported,
    };
    return this.#info;
  }

  /** Decides a request against the active set. @see DecisionPoint.decide */
  decide(request: AuthorizationRequest): Decision {
    const set = this.#active;
    if (!set) throw new PolicyNotLoadedError('no valid policy set is loaded; every request is denied until one is');
    return authorize(set, request, {
      clock: this.#clock,
      ids: this.#ids,
      maxDelegationDepth: this.#maxDelegationDepth,
      maxRequestEntities: this.#maxRequestEntities,
    });
  }
}

/**
 * Watches a policy directory and calls `onChange` once a burst of file events has settled (debounced).
 * The caller reloads through its own path, so that every reload is counted and audited the same way.
 * Returns a function that stops watching; on a file system that cannot be watched it does nothing
 * (SIGHUP and the admin API still reload).
 */
export function watchPolicyDirectory(dir: string, onChange: () => void, debounceMs = 200): () => void {
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { recursive: true, persistent: false }, () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', () => undefined);
  } catch {
    watcher = undefined;
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}
