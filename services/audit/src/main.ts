import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { startService } from "./service.ts";

await runService("audit", () => startService(loadConfig()));
