/**
 * The whole system on one machine: every service as its own process, with the same environment.
 * `npm start` runs it for people; the end-to-end tests run it for themselves.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const SERVICES = ["ippool-service", "vm-service", "provisioner", "audit", "api-gateway"] as const;
export type ServiceName = (typeof SERVICES)[number];

const root = join(import.meta.dirname, "..");

export interface SystemOptions {
  env: Record<string, string | undefined>;
  /** Each output line of each service (default: written to this process's stdout/stderr as is). */
  onLine?: (service: ServiceName, line: string, stream: "stdout" | "stderr") => void;
  /** Called when a service exits without being asked to. */
  onExit?: (service: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

export interface RunningSystem {
  readonly apiUrl: string;
  readonly processes: ReadonlyMap<ServiceName, ServiceProcess>;
  /**
   * Resolves once the API answers its readiness check (NATS and its database) and vm-service knows
   * a live provisioner host, so the first VM asked for has somewhere to go.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** Starts a service again (after kill), with the same environment. */
  restart(name: ServiceName): ServiceProcess;
  kill(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM to every service, SIGKILL to what is still running after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function startSystem(options: SystemOptions): RunningSystem {
  const env = { ...process.env, ...options.env };
  const port = env.PORT ?? "8080";
  const apiUrl = `http://127.0.0.1:${port}`;
  const processes = new Map<ServiceName, ServiceProcess>();
  const expectedExit = new Set<ServiceName>();
  // vm-service says "host registered" at info level; below it, readiness is the API's alone.
  let hostKnown = ["warn", "error", "fatal", "silent"].includes(env.LOG_LEVEL ?? "info");

  function start(name: ServiceName): ServiceProcess {
    const child = spawn(process.execPath, [join(root, "services", name, "src", "main.ts")], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of ["stdout", "stderr"] as const) {
      const input = child[stream];
      if (!input) continue;
      createInterface({ input }).on("line", (line) => {
        if (name === "vm-service" && !hostKnown && line.includes('"host registered"')) hostKnown = true;
        if (options.onLine) options.onLine(name, line, stream);
        else (stream === "stdout" ? process.stdout : process.stderr).write(`${line}\n`);
      });
    }
    const exited = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        if (!expectedExit.delete(name)) options.onExit?.(name, code, signal);
        resolve();
      }),
    );
    const proc = { name, child, exited };
    processes.set(name, proc);
    return proc;
  }

  for (const name of SERVICES) start(name);

  async function kill(name: ServiceName, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = processes.get(name);
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    expectedExit.add(name);
    proc.child.kill(signal);
    await proc.exited;
  }

  return {
    apiUrl,
    processes,
    async ready(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last = "no answer";
      while (Date.now() < deadline) {
        for (const proc of processes.values()) {
          if (proc.child.exitCode !== null)
            throw new Error(`${proc.name} exited (${proc.child.exitCode}) during start`);
        }
        try {
          const res = await fetch(`${apiUrl}/api/v1/health/ready`);
          if (res.ok && hostKnown) return;
          last = res.ok
            ? "no provisioner host registered with vm-service yet"
            : `${res.status} ${await res.text()}`;
        } catch (error) {
          last = String(error);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`the API at ${apiUrl} was not ready within ${timeoutMs} ms: ${last}`);
    },
    restart: start,
    kill,
    async stop(graceMs = 15_000) {
      const all = [...processes.values()];
      for (const proc of all) expectedExit.add(proc.name);
      for (const proc of all) if (proc.child.exitCode === null) proc.child.kill("SIGTERM");
      const timer = setTimeout(() => {
        for (const proc of all) if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
      }, graceMs);
      await Promise.all(all.map((p) => p.exited));
      clearTimeout(timer);
    },
  };
}
