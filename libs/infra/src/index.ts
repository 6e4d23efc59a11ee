export { canInstallNatsServer, ensureNatsServer, findNatsServer, HOW_TO_INSTALL_NATS } from "./nats.ts";
export { postgresBinaries } from "./postgres.ts";
export {
  PROBE_TIMEOUT_MS,
  type Problem,
  probeNats,
  probePostgres,
  redact,
  serverAddress,
  withDatabase,
} from "./probe.ts";
export { freePort, portFree } from "./processes.ts";
export { homeLayout, type OwnServers, type OwnServersRequest, startOwnServers } from "./servers.ts";
