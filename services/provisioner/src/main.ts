import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { provisionerService } from "./service.ts";

/**
 * The provisioner agent process. Its VMs are detached processes: they outlive the agent, even a
 * SIGKILL, and the next agent adopts them.
 */
await runService(provisionerService, loadConfig);
