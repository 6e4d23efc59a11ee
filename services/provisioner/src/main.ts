import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";
import { loadConfig } from "./config.ts";
import { startProvisioner } from "./service.ts";

/**
 * The provisioner agent process: telemetry first, then the agent; SIGTERM/SIGINT stop it
 * gracefully. Its VMs are detached processes: they outlive the agent, even a SIGKILL.
 */
const telemetry = await startTelemetry({ serviceName: "provisioner", serviceVersion: "0.1.0" });
const log = createLogger("mikrom.provisioner.main");

try {
  const running = await startProvisioner(loadConfig());
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    try {
      await running.stop();
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
  log.fatal(errorFields(error), "provisioner failed to start");
  await telemetry.shutdown();
  process.exit(1);
}
