import { createLogger, errorFields, startTelemetry } from "@mikrom/telemetry";
import { serveHealth } from "./health.ts";
import {
  type RunningService,
  type ServiceConfig,
  type ServiceDefinition,
  type ServiceStore,
  startService,
} from "./service.ts";
import { Stopped } from "./wait.ts";

/** How long an ordered stop may take before the process exits anyway (scripts/system.ts waits 15 s). */
const STOP_DEADLINE_MS = 20_000;

/**
 * The life of a service process: telemetry first (so start-up is traced and logged), then the
 * service through the skeleton. It exits only when told to (SIGTERM, SIGINT, SIGHUP, or its parent
 * gone) or when its configuration is invalid: a dependency that is away is waited for, never a
 * reason to exit. HEALTH_PORT serves its liveness and readiness.
 */
export async function runService<C extends ServiceConfig, S extends ServiceStore, X extends object>(
  definition: ServiceDefinition<C, S, X>,
  loadConfig: () => C,
): Promise<void> {
  const { name } = definition;
  const telemetry = await startTelemetry({
    serviceName: name,
    serviceVersion: process.env.npm_package_version,
  });
  const log = createLogger(`mikrom.${name}.main`);
  // A stray rejection is a bug to fix, not a reason to drop every VM in flight.
  process.on("unhandledRejection", (reason) =>
    log.error(errorFields(reason), "unhandled promise rejection (kept running)"),
  );

  let config: C;
  try {
    config = loadConfig();
  } catch (error) {
    log.fatal(errorFields(error), `${name} cannot start: its configuration is invalid`);
    await telemetry.shutdown();
    process.exit(1);
  }

  const stopping = new AbortController();
  let service: RunningService<S> | undefined;
  let health: { close(): Promise<void> } | undefined;
  const stop = async (why: string): Promise<void> => {
    if (stopping.signal.aborted) return;
    stopping.abort();
    log.info({ signal: why }, "stopping");
    // A stop that cannot finish (NATS gone mid-drain, its parent gone and nobody left to kill it)
    // still ends the process.
    setTimeout(() => {
      log.error({ deadline_ms: STOP_DEADLINE_MS }, `${name} did not stop in time; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    try {
      await service?.stop();
      log.info({}, `${name} stopped`);
    } catch (error) {
      log.error(errorFields(error), "stop failed");
      process.exitCode = 1;
    } finally {
      await health?.close();
      await telemetry.shutdown();
    }
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const)
    process.once(signal, () => void stop(signal));
  // Started by a supervisor over an IPC channel (scripts/system.ts): when it dies, so do we.
  if (process.channel) {
    process.channel.unref();
    process.once("disconnect", () => void stop("parent gone"));
  }

  health =
    config.healthPort !== undefined
      ? await serveHealth(config.healthPort, "0.0.0.0", async () => ({
          started: service !== undefined,
          ready: (await service?.ready()) ?? false,
        }))
      : undefined;

  try {
    service = await startService(definition, config, { signal: stopping.signal });
    log.info({ namespace: config.namespace }, `${name} ready`);
  } catch (error) {
    if (error instanceof Stopped) return;
    log.fatal(errorFields(error), `${name} failed to start`);
    await health?.close();
    await telemetry.shutdown();
    process.exit(1);
  }
  if (stopping.signal.aborted) await service.stop();
}
