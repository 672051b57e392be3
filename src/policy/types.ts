/**
 * The policy capability's public types: what the server, the CLI and other capabilities see.
 */
import type { Decision, EntityRef } from '../core/decision.ts';

/** One source file of a policy set, as read from disk. */
export interface PolicySourceFile {
  /** Path relative to the policy directory, with forward slashes (e.g. `agents.cedar`). */
  path: string;
  text: string;
}

/** Where a diagnostic points: file, 1-based line and column (columns count Unicode code points). */
export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

/** A parse or validation problem in a policy set, mapped to its source. */
export interface PolicyDiagnostic {
  severity: 'error' | 'warning';
  message: string;
  help?: string;
  policyId?: string;
  position?: SourcePosition;
}

/** One policy of a loaded set. */
export interface LoadedPolicy {
  /** `@id("...")` when present, otherwise `<file>:<n>` (n counts from 0 within the file). */
  id: string;
  effect: 'permit' | 'forbid';
  /** Cedar text of this policy, as written. */
  text: string;
  file: string;
  /** 1-based line of the policy's first character in its file. */
  line: number;
  annotations: Record<string, string>;
  /** Cedar JSON form of the policy (from `policyToJson`). */
  json: unknown;
}

/**
 * Cedar entity in Cedar's JSON entity format. With a schema, entity references in attributes may be
 * written `{ "type": "User", "id": "alice" }` and extension values as plain strings.
 */
export interface EntityJson {
  uid: EntityRef;
  attrs: Record<string, unknown>;
  parents: EntityRef[];
  tags?: Record<string, unknown>;
}

/**
 * A request to the decision point, in Cedar terms.
 *
 * `principal` is the principal on whose authority the request is made (for a mandate: its `sub`, the user).
 * `delegation.actors` lists the actors acting for it, from the first delegate to the one making the call
 * (a mandate's `act` chain, innermost first). Each principal of `[principal, ...actors]` is evaluated as its own
 * Cedar request with the same action, resource and context; the decision is allow only if every one allows.
 */
export interface AuthorizationRequest {
  principal: EntityRef;
  /** Action id, e.g. `read`, `call`, `send` (type `Action`). */
  action: string;
  resource: EntityRef;
  /** Caller-supplied context, validated against the schema. `delegation` and `time` are set by Mandate. */
  context?: Record<string, unknown>;
  delegation?: { actors: EntityRef[] };
  /**
   * Caller-supplied entity data (attributes, parents) for entities that the policy directory does not
   * define. An entity the directory defines is authoritative: caller data for it is ignored.
   */
  entities?: EntityJson[];
}

/** A validated, pre-parsed policy set. Immutable; a reload produces a new one. */
export interface PolicySetInfo {
  /** `sha256:<hex>` over the schema, policies and entities, in path order. */
  version: string;
  loadedAt: number;
  policies: readonly LoadedPolicy[];
  /** Number of entities defined by the policy directory. */
  entityCount: number;
  /** Warnings from validation (a set with errors is never loaded). */
  warnings: readonly PolicyDiagnostic[];
  /** The engine deciding for this set. */
  engine: 'compiled' | 'reference';
  /** Why the compiled engine was not used although configured: policy ids and the features it lacks. */
  unsupported: ReadonlyArray<{ policyId: string; feature: string }>;
}

/** The narrow port the server and gateway use: decide one request. */
export interface DecisionPoint {
  /**
   * Decides a request. Never throws for a policy's own evaluation error (that is a deny with `errors`);
   * throws a `MandateError` for malformed input (unknown type or action, entity or context not matching
   * the schema) and `PolicyNotLoadedError` when no valid set is loaded.
   */
  decide(request: AuthorizationRequest): Decision;
}

/** The port `/readyz` and the admin API use to see and reload the active set. */
export interface PolicySetStatus {
  current(): PolicySetInfo | undefined;
}

/** One case of a policy test file (`*.test.yaml` next to the policies); see docs/policy-testing.md. */
export interface PolicyTestCase {
  name: string;
  request: AuthorizationRequest;
  expect: 'allow' | 'deny' | 'approval_required';
  /** Optional: policy ids that must be among the determining policies. */
  determining?: string[];
}
