export {
  type DatabaseStore,
  ensureDatabase,
  hostDatabaseUrl,
  openDatabase,
  openMigratedDatabase,
  serverOf,
  serviceDatabaseUrl,
} from "./database.ts";
export {
  type DatabaseOwner,
  ensureServiceDatabase,
  type ServiceDatabase,
  type SetupOutcome,
  scramVerifier,
  serviceDatabaseOf,
  serviceUrl,
} from "./database-roles.ts";
export { BaseEnv, parseEnv } from "./env.ts";
export { type Checks, serveHealth } from "./health.ts";
export { runService } from "./main.ts";
export {
  PASSWORD,
  type SecretPolicy,
  SIGNING_KEY,
  secretProblem,
  URL_PASSWORD_COMMAND,
  urlCredentialProblem,
} from "./secrets.ts";
export {
  type ConsumerDefinition,
  type RunningService,
  type ServiceConfig,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceStore,
  startService,
  type Work,
} from "./service.ts";
export { Stopped, untilAvailable } from "./wait.ts";
