import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { vmService } from "./service.ts";

await runService(vmService(), loadConfig);
