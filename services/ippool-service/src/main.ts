import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { startService } from "./service.ts";

/** The ippool-service process: telemetry first, the service, and a graceful stop on SIGTERM/SIGINT. */
await runService("ippool-service", () => startService(loadConfig()));
