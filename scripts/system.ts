/**
 * The whole system on one machine: every service as its own process, with the same environment,
 * supervised as an orchestrator would: a service that exits without being asked to is started again
 * after a back-off. `npm start` runs it for people; the end-to-end tests and the chaos suite run it
 * for themselves.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const SERVICES = ["ippool-service", "vm-service", "provisioner", "audit", "api-gateway"] as const;
export type ServiceName = (typeof SERVICES)[number];

const root = join(import.meta.dirname, "..");

/**
 * Node's flags for every service process; the Dockerfile's CMD passes the same (deploy/test checks
 * it). Semi-spaces of 8 MiB: under a service's allocation rate V8 grows the young generation to two
 * semi-spaces of 64 MiB (its default for this heap limit), and vm-service held 260–300 MiB RSS with
 * 42 MiB of old space (16 MiB left it at 252 MiB with 10,000 VMs, 8 MiB at 235). docs/PERFORMANCE.md,
 * "Scale", has the figures and what it costs.
 */
export const NODE_FLAGS = ["--max-semi-space-size=8"] as const;

/**
 * The environment every service process gets, here and in the Dockerfile (deploy/test checks it).
 * Two malloc arenas: glibc gives each thread that allocates (libuv's pool, pg, argon2) an arena of
 * its own, up to 8 per core, and at 10,000 VMs about 70 MiB of vm-service's RSS was outside V8's
 * heap. docs/PERFORMANCE.md, "Scale", has the figures.
 */
export const PROCESS_ENV = { MALLOC_ARENA_MAX: "2" } as const;

/** Restart back-off: 1 s, doubling to 30 s; a service that ran a minute starts again at 1 s. */
const BACKOFF_MS = { initial: 1_000, max: 30_000, healthyAfter: 60_000 };

export interface SystemOptions {
  env: Record<string, string | undefined>;
  /** Variables for one service only, over `env` (e.g. one service's LOG_LEVEL). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Each output line of each service (default: written to this process's stdout/stderr as is). */
  onLine?: (service: ServiceName, line: string, stream: "stdout" | "stderr") => void;
  /** Called when a service exits without being asked to (a crash, as far as the system can tell). */
  onExit?: (service: ServiceName, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Called when a service that exited on its own is started again, after `delayMs`. */
  onRestart?: (service: ServiceName, delayMs: number) => void;
  /** Restart services that exit on their own (default true). */
  supervise?: boolean;
}

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

export interface RunningSystem {
  readonly apiUrl: string;
  /** The environment every service gets (for another replica started by hand). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The current process of each service (a restart replaces it). */
  readonly processes: ReadonlyMap<ServiceName, ServiceProcess>;
  /**
   * Resolves once the API answers its readiness check (NATS and its database) and vm-service knows
   * a live provisioner host, so the first VM asked for has somewhere to go.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** Starts a service again (after kill), with the same environment. */
  restart(name: ServiceName): ServiceProcess;
  /** Ends a service on purpose (default SIGKILL); it is not restarted until `restart`. */
  kill(name: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM to every service, SIGKILL to what is still running after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function startSystem(options: SystemOptions): RunningSystem {
  const env = { ...process.env, ...options.env };
  const port = env.PORT ?? "8080";
  const host = env.HOST && env.HOST !== "0.0.0.0" && env.HOST !== "::" ? env.HOST : "127.0.0.1";
  const apiUrl = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const supervise = options.supervise ?? true;
  const processes = new Map<ServiceName, ServiceProcess>();
  const expectedExit = new Set<ServiceName>();
  const restarts = new Map<ServiceName, ReturnType<typeof setTimeout>>();
  const failures = new Map<ServiceName, number>();
  let stopping = false;
  // vm-service says "host registered" at info level; below it, readiness is the API's alone.
  let hostKnown = ["warn", "error", "fatal", "silent"].includes(env.LOG_LEVEL ?? "info");

  function start(name: ServiceName): ServiceProcess {
    clearTimeout(restarts.get(name));
    restarts.delete(name);
    // An IPC channel, unused but for its end: a service whose parent dies sees it close and stops.
    const child = spawn(process.execPath, [...NODE_FLAGS, join(root, "services", name, "src", "main.ts")], {
      env: { ...PROCESS_ENV, ...env, ...options.serviceEnv?.[name] },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    const startedAt = Date.now();
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
        if (!expectedExit.delete(name) && !stopping) {
          options.onExit?.(name, code, signal);
          if (supervise) scheduleRestart(name, Date.now() - startedAt);
        }
        resolve();
      }),
    );
    const proc = { name, child, exited };
    processes.set(name, proc);
    return proc;
  }

  function scheduleRestart(name: ServiceName, ranMs: number): void {
    const n = ranMs >= BACKOFF_MS.healthyAfter ? 0 : (failures.get(name) ?? 0);
    failures.set(name, n + 1);
    const delayMs = Math.min(BACKOFF_MS.max, BACKOFF_MS.initial * 2 ** n);
    options.onRestart?.(name, delayMs);
    restarts.set(
      name,
      setTimeout(() => {
        if (!stopping) start(name);
      }, delayMs),
    );
  }

  for (const name of SERVICES) start(name);

  async function kill(name: ServiceName, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    clearTimeout(restarts.get(name));
    restarts.delete(name);
    const proc = processes.get(name);
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    expectedExit.add(name);
    proc.child.kill(signal);
    await proc.exited;
  }

  return {
    apiUrl,
    env,
    processes,
    async ready(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last = "no answer";
      while (Date.now() < deadline) {
        if (!supervise) {
          for (const proc of processes.values()) {
            if (proc.child.exitCode !== null)
              throw new Error(`${proc.name} exited (${proc.child.exitCode}) during start`);
          }
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
      stopping = true;
      for (const timer of restarts.values()) clearTimeout(timer);
      restarts.clear();
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
