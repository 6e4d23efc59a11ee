import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";

export interface Running {
  /** Stops taking work, finishes what is in flight, publishes what is committed, closes. */
  stop(): Promise<void>;
}

/**
 * The life of a service process: telemetry first (so start-up is traced and logged), then the
 * service; SIGTERM or SIGINT stops it gracefully and flushes telemetry. A failed start is logged
 * with its cause and exits 1.
 */
export async function runService(name: string, start: () => Promise<Running>): Promise<void> {
  const telemetry = await startTelemetry({
    serviceName: name,
    serviceVersion: process.env.npm_package_version,
  });
  const log = createLogger(`mikrom.${name}.main`);
  let service: Running;
  try {
    service = await start();
  } catch (error) {
    log.fatal(errorFields(error), `${name} failed to start`);
    await telemetry.shutdown();
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    try {
      await service.stop();
      log.info({}, `${name} stopped`);
    } catch (error) {
      log.error(errorFields(error), "stop failed");
      process.exitCode = 1;
    } finally {
      await telemetry.shutdown();
    }
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
