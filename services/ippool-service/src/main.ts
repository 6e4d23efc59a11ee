import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { ippoolService } from "./service.ts";

await runService(ippoolService, loadConfig);
