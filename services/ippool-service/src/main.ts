import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";
import { loadConfig } from "./config.ts";
import { startService } from "./service.ts";

/** The ippool-service process: telemetry first, the service, and a graceful stop on SIGTERM/SIGINT. */
const telemetry = await startTelemetry({ serviceName: "ippool-service", serviceVersion: "0.1.0" });
const log = createLogger("mikrom.ippool-service.main");

try {
  const service = await startService(loadConfig());
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    try {
      await service.stop();
    } catch (error) {
      log.error(errorFields(error), "stop failed");
      process.exitCode = 1;
    } finally {
      await telemetry.shutdown();
    }
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
} catch (error) {
  log.fatal(errorFields(error), "ippool-service failed to start");
  await telemetry.shutdown();
  process.exit(1);
}
