/** The policy capability's public surface: the decision point, loading and validating policy directories. */
export { PolicyEngine, watchPolicyDirectory, cedarVersion, uuidGenerator, type PolicyEngineOptions, type LoadResult } from './policy-engine.ts';
export { readPolicyDirectory, parseEntityFile, SCHEMA_FILE, ENTITY_FILES, type PolicyDirectory } from './read-policy-directory.ts';
export { compilePolicySet, describeSchema, type CompiledPolicySet, type SchemaInfo } from './compile-policy-set.ts';
export { APPROVAL_ANNOTATION, RESERVED_CONTEXT_KEYS, type DecisionBackend } from './authorize.ts';
export { SENSITIVITY_LEVELS } from './entities.ts';
export type {
  AuthorizationRequest,
  DecisionPoint,
  EntityJson,
  LoadedPolicy,
  PolicyDiagnostic,
  PolicySetInfo,
  PolicySetStatus,
  PolicySourceFile,
  PolicyTestCase,
  SourcePosition,
} from './types.ts';
