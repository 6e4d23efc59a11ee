import { runService } from "@mikrom/runtime";
import { createLogger } from "@mikrom/telemetry";
import { loadConfig } from "./config.ts";
import { startVmService } from "./service.ts";

const log = createLogger("mikrom.vm-service");

await runService("vm-service", async () => {
  const config = loadConfig();
  const service = await startVmService(config);
  log.info(
    { namespace: config.namespace, database: new URL(config.databaseUrl).pathname },
    "vm-service ready",
  );
  return service;
});
