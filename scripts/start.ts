/**
 * `npm start`: runs every Mikrom service on this machine, each as its own process, against NATS
 * and PostgreSQL at NATS_URL / DATABASE_URL (local defaults), with their JSON log lines on this
 * process's output. Ctrl-C stops them all.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const services = readdirSync(join(root, "services"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, "services", d.name, "src", "main.ts")))
  .map((d) => d.name);

if (services.length === 0) {
  process.stderr.write("No service has a src/main.ts yet: nothing to start.\n");
  process.exit(1);
}

const children = new Map<string, ChildProcess>();
let stopping = false;

function stopAll(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill("SIGTERM");
  const deadline = setTimeout(() => {
    for (const child of children.values()) child.kill("SIGKILL");
  }, 15_000);
  deadline.unref();
  const wait = () => (children.size === 0 ? process.exit(code) : setTimeout(wait, 50));
  wait();
}

for (const name of services) {
  const child = spawn(process.execPath, [join(root, "services", name, "src", "main.ts")], {
    stdio: ["ignore", "inherit", "inherit"],
    env: process.env,
  });
  children.set(name, child);
  child.on("exit", (code, signal) => {
    children.delete(name);
    if (!stopping) {
      process.stderr.write(`${name} exited (${signal ?? code}); stopping the rest\n`);
      stopAll(1);
    }
  });
}

process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));
