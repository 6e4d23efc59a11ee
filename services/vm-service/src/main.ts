import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";
import { ConfigError, loadConfig } from "./config.ts";
import { startVmService } from "./service.ts";

const log = createLogger("mikrom.vm-service");

async function main(): Promise<void> {
  const config = loadConfig();
  const telemetry = await startTelemetry({ serviceName: "vm-service", serviceVersion: "0.1.0" });
  const service = await startVmService(config);
  log.info(
    { namespace: config.namespace, database: new URL(config.databaseUrl).pathname },
    "vm-service ready",
  );

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "vm-service stopping");
    try {
      await service.stop();
    } finally {
      await telemetry.shutdown();
    }
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error: unknown) => {
  log.fatal(errorFields(error), error instanceof ConfigError ? error.message : "vm-service failed to start");
  process.exit(1);
});
