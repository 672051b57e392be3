/** The configuration capability's public surface. */
export {
  CREDENTIAL_SCOPES,
  CredentialHashSchema,
  LOG_LEVELS,
  MandateConfigSchema,
  POLICY_ENGINES,
  STORE_DRIVERS,
  type CredentialHash,
  type MandateConfig,
} from './config-schema.ts';
export {
  DEFAULT_CONFIG_FILE,
  defaultConfig,
  ENV_OVERRIDES,
  findConfigFile,
  loadConfig,
  MAX_CONFIG_BYTES,
  parseConfig,
  type ConfigEnv,
  type ConfigFileLocation,
  type LoadConfigOptions,
  type ParseConfigOptions,
} from './load-config.ts';
export { type ConfigIssue } from './config-issues.ts';
export {
  CREDENTIAL_SECRET_PREFIX,
  generateCredentialSecret,
  hashCredential,
  matchCredential,
  verifyCredential,
} from './credentials.ts';
