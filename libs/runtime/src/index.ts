export { ensureDatabase, serviceDatabaseUrl } from "./database.ts";
export { BaseEnv, parseEnv } from "./env.ts";
export { type Running, runService } from "./main.ts";
