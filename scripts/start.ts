/**
 * `npm start`: the whole of Mikrom on this machine, each service its own process. PostgreSQL and
 * NATS are the ones DATABASE_URL and NATS_URL name, which must answer; unset, Mikrom runs its own
 * (an embedded PostgreSQL and a nats-server, their data in MIKROM_HOME, `.mikrom/` by default).
 * Everything is checked before anything is created. Every service's JSON log lines go to stdout, or
 * to MIKROM_LOG_FILE; what people read (the banner, problems) goes to stderr. SIGINT, SIGTERM or
 * SIGHUP, or the parent going away, stops the services and then the servers.
 */
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Writable } from "node:stream";
import { ensureNatsServer, findNatsServer, type OwnServers, redact, startOwnServers } from "@mikrom/infra";
import { type Admin, adminFor, forgetAdmin, keepAdmin } from "./start/admin.ts";
import { check } from "./start/checks.ts";
import { serviceDatabases } from "./start/database-roles.ts";
import { type RunningSystem, startSystem } from "./system.ts";

const root = join(import.meta.dirname, "..");
const env: Record<string, string | undefined> = { ...process.env };
const home = env.MIKROM_HOME || join(root, ".mikrom");
const files = {
  lock: join(home, "mikrom.pid"),
  admin: join(home, "admin.json"),
};
env.PORT ||= "8080";
// The API on this machine only, unless HOST says otherwise (0.0.0.0: every interface).
env.HOST ||= "127.0.0.1";
env.MIKROM_HOST_ID ||= "local";

const say = (line: string): void => void process.stderr.write(`${line}\n`);
/** A path as the user would type it from here. */
const shown = (path: string): string => {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
};

let system: RunningSystem | undefined;
let servers: OwnServers | undefined;
let lockTaken = false;
let stopping: Promise<void> | undefined;
const logFile = env.MIKROM_LOG_FILE;
const sink: Writable = logFile ? createWriteStream(logFile, { flags: "a" }) : process.stdout;
if (logFile) sink.on("error", (error) => say(`the log file ${logFile} cannot be written: ${error.message}`));

function shutdown(code: number, why?: string): Promise<void> {
  stopping ??= (async () => {
    if (why) say(`stopping (${why})`);
    try {
      await system?.stop();
      await servers?.stop();
    } finally {
      if (lockTaken) rmSync(files.lock, { force: true });
      if (logFile) await new Promise<void>((resolve) => sink.end(resolve));
      process.exit(code);
    }
  })();
  return stopping;
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => void shutdown(0, signal));
}
// A closed terminal or reader must not end this process mid-stop: what it writes is then lost.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});
// npm runs this script with `exec`, so npm passes SIGINT and SIGTERM straight here and waits. It
// does not pass SIGHUP on, and dies of it: the process that started this going away stops it too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void shutdown(0, "the process that started it is gone");
}, 500).unref();

async function main(): Promise<void> {
  const port = Number(env.PORT);
  const { plan, problems } = await check(env, { lockFile: files.lock, home, port, host: env.HOST! });
  if (problems.length > 0) {
    for (const problem of problems) say(problem);
    return shutdown(1);
  }

  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(files.lock, `${process.pid}\n`);
  lockTaken = true;
  const natsBinary = plan.natsUrl ? undefined : (findNatsServer() ?? (await ensureNatsServer(say)));
  if (!plan.databaseUrl || natsBinary) {
    servers = await startOwnServers({
      home,
      ...(!plan.databaseUrl && { postgres: { database: "mikrom" } }),
      ...(natsBinary && { nats: { binary: natsBinary } }),
    });
  }
  if (stopping) return;
  env.DATABASE_URL = plan.databaseUrl ?? servers?.postgres?.url;
  env.NATS_URL = plan.natsUrl ?? servers?.nats?.url;

  const admin = await adminFor(env, files.admin);
  if (admin) {
    env.MIKROM_ADMIN_EMAIL = admin.email;
    env.MIKROM_ADMIN_PASSWORD = admin.password;
    if (admin.source === "new") await keepAdmin(files.admin, admin);
  }

  // A role per service, owning its database only; the superuser's URL stays here.
  const serviceEnv = await serviceDatabases(env, env.DATABASE_URL!, say);
  if (stopping) return;

  let adminResult: "created" | "exists" | undefined;
  // Supervised as an orchestrator would: a service that exits is started again after a back-off.
  system = startSystem({
    env,
    ...(serviceEnv && { serviceEnv }),
    onLine(service, line, stream) {
      if (stream === "stdout" && line.startsWith("{")) {
        sink.write(`${line}\n`);
        if (service === "api-gateway" && line.includes('"First superuser checked"')) {
          adminResult = (JSON.parse(line) as { result?: "created" | "exists" }).result;
        }
      } else {
        say(`${service}: ${line}`);
      }
    },
    onExit(service, code, signal) {
      say(`${service} exited (${signal ?? `code ${code}`}) without being asked to`);
    },
    onRestart(service, delayMs) {
      say(`restarting ${service} in ${delayMs / 1000} s`);
    },
  });
  // Five processes importing at once on a busy 2-core machine have taken a minute: wait longer.
  await system.ready(180_000);
  if (admin?.source === "new" && adminResult === "exists") await forgetAdmin(files.admin);
  say(banner(system.apiUrl, admin, adminResult));
}

function banner(apiUrl: string, admin: Admin | undefined, result: "created" | "exists" | undefined): string {
  const email = env.MIKROM_ADMIN_EMAIL;
  const keptIn = shown(files.admin);
  let who: string[];
  if (!admin) {
    who = [`Log in as ${email} with the password in MIKROM_ADMIN_PASSWORD.`];
  } else if (result === "created") {
    who = [
      `Superuser created: ${admin.email}   password: ${admin.password}`,
      `  (kept in ${keptIn}, readable by you only; it is not shown again)`,
    ];
  } else if (admin.source === "new" && result === "exists") {
    who = [`${admin.email} already exists in this database: log in with the password it was created with.`];
  } else {
    who = [`Log in as ${admin.email} with the password in ${keptIn} (jq -r .password ${keptIn}).`];
  }
  const database = servers?.postgres
    ? `embedded, kept in ${shown(join(home, "postgres"))} (${redact(servers.postgres.url)})`
    : redact(env.DATABASE_URL ?? "");
  const nats = servers?.nats
    ? `nats-server, kept in ${shown(join(home, "nats"))} (${servers.nats.url})`
    : env.NATS_URL;
  return [
    "",
    `Mikrom is up. API: ${apiUrl}/api/v1   docs: ${apiUrl}/docs`,
    `Web console: ${apiUrl}/ (open it in a browser)`,
    `PostgreSQL: ${database}`,
    `NATS: ${nats}`,
    `Logs: ${logFile ? shown(logFile) : "standard output"} (JSON lines)`,
    ...who,
    "Ctrl-C stops every service and the servers Mikrom started.",
    "",
  ].join("\n");
}

try {
  await main();
} catch (error) {
  say((error as Error).message);
  await shutdown(1);
}
