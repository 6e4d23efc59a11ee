/**
 * `npm start`: the whole of Mikrom on this machine, each service its own process, against NATS and
 * PostgreSQL at NATS_URL / DATABASE_URL (local defaults). Every service's JSON log lines go to this
 * output; Ctrl-C stops everything cleanly.
 */
import { randomBytes } from "node:crypto";
import { startSystem } from "./system.ts";

const env: Record<string, string | undefined> = { ...process.env };
env.PORT ??= "8080";
env.MIKROM_HOST_ID ??= "local";
// A first superuser, so there is someone to log in as; the password is printed once below.
const adminGiven = env.MIKROM_ADMIN_EMAIL !== undefined;
env.MIKROM_ADMIN_EMAIL ??= "admin@mikrom.local";
env.MIKROM_ADMIN_PASSWORD ??= adminGiven ? undefined : randomBytes(9).toString("base64url");

let stopping = false;
// Supervised as an orchestrator would: a service that exits is started again after a back-off.
const system = startSystem({
  env,
  onExit(service, code, signal) {
    process.stderr.write(`${service} exited (${signal ?? `code ${code}`}) without being asked to\n`);
  },
  onRestart(service, delayMs) {
    process.stderr.write(`restarting ${service} in ${delayMs / 1000} s\n`);
  },
});

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await system.stop();
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(0));

try {
  await system.ready();
  const password = adminGiven ? "(MIKROM_ADMIN_PASSWORD)" : env.MIKROM_ADMIN_PASSWORD;
  process.stderr.write(
    [
      "",
      `Mikrom is up. API: ${system.apiUrl}/api/v1   docs: ${system.apiUrl}/docs`,
      `Web console: ${system.apiUrl}/ (open it in a browser)`,
      `Log in there, or with the API, as ${env.MIKROM_ADMIN_EMAIL} / ${password}:`,
      `  curl -s ${system.apiUrl}/api/v1/auth/login/json -H 'content-type: application/json' \\`,
      `    -d '{"username":"${env.MIKROM_ADMIN_EMAIL}","password":"${password}"}'`,
      "Ctrl-C stops every service.",
      "",
    ].join("\n"),
  );
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  await shutdown(1);
}
