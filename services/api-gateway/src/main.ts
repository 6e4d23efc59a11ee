import { runService } from "@mikrom/runtime";
import { loadConfig } from "./config.ts";
import { gatewayService } from "./service.ts";

await runService(gatewayService, loadConfig);
