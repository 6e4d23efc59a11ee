import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { startProvisioner } from "./service.ts";

/**
 * The provisioner agent process: telemetry first, then the agent; SIGTERM/SIGINT stop it
 * gracefully. Its VMs are detached processes: they outlive the agent, even a SIGKILL.
 */
await runService("provisioner", () => startProvisioner(loadConfig()));
