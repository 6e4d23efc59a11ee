import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { auditService } from "./service.ts";

await runService(auditService, loadConfig);
