import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { probeNats } from "./probe.ts";
import { appendFd, closeFd, run, stopChild, tail, until } from "./processes.ts";

const BINARY = "nats-server";
/** Where package managers put it, though a user's PATH may lack them (sbin for non-root). */
const USUAL_PLACES = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin", "/usr/bin"];

export const HOW_TO_INSTALL_NATS =
  "install it (Debian/Ubuntu: apt-get install nats-server; macOS: brew install nats-server), " +
  "or set NATS_URL to a NATS server with JetStream";

/** The nats-server on PATH (or where package managers put it); undefined when there is none. */
export function findNatsServer(path = process.env.PATH ?? ""): string | undefined {
  for (const dir of [...path.split(delimiter).filter(Boolean), ...USUAL_PLACES]) {
    const candidate = join(dir, BINARY);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** As root on Debian or Ubuntu, a missing nats-server is installed with apt-get. */
export function canInstallNatsServer(): boolean {
  return process.getuid?.() === 0 && existsSync("/etc/debian_version") && findOn("apt-get") !== undefined;
}

function findOn(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter).concat(USUAL_PLACES)) {
    if (dir && existsSync(join(dir, binary))) return join(dir, binary);
  }
  return undefined;
}

/**
 * The nats-server to run: the one installed, else (as root on Debian or Ubuntu) Debian's package,
 * installed now with apt-get. Anywhere else a missing one is an error saying how to install it.
 */
export async function ensureNatsServer(say: (line: string) => void): Promise<string> {
  const found = findNatsServer();
  if (found) return found;
  if (!canInstallNatsServer()) throw new Error(`nats-server is not installed: ${HOW_TO_INSTALL_NATS}`);
  say("nats-server is not installed: installing Debian's package with apt-get");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const lists = readdirSafe("/var/lib/apt/lists").some((f) => f.endsWith("_Packages"));
  try {
    if (!lists) await run("apt-get", ["update", "-qq"], { env });
    await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", BINARY], { env });
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim().split("\n").at(-1) ?? String(error);
    throw new Error(
      `nats-server is not installed and apt-get could not install it (${detail}): ${HOW_TO_INSTALL_NATS}`,
    );
  }
  const installed = findNatsServer();
  if (!installed)
    throw new Error(`apt-get installed nats-server but it is not on PATH: ${HOW_TO_INSTALL_NATS}`);
  return installed;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface NatsServerOptions {
  readonly binary: string;
  /** JetStream's store (kept across starts). */
  readonly storeDir: string;
  readonly logFile: string;
  readonly port: number;
}

export interface RunningNats {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream on 127.0.0.1:`port`; resolves once it takes clients with JetStream on. */
export async function startNatsServer(options: NatsServerOptions): Promise<RunningNats> {
  await mkdir(options.storeDir, { recursive: true, mode: 0o700 });
  const url = `nats://127.0.0.1:${options.port}`;
  const log = appendFd(options.logFile);
  const child = spawn(
    options.binary,
    ["-a", "127.0.0.1", "-p", String(options.port), "-js", "-sd", options.storeDir, "-n", "mikrom"],
    { stdio: ["ignore", log, log] },
  );
  closeFd(log);
  let failure: Error | undefined;
  child.once("error", (error) => {
    failure = error;
  });
  child.once("exit", (code, signal) => {
    failure ??= new Error(
      `nats-server exited during start (${signal ?? `exit ${code}`}); its log, ${options.logFile}:\n${tail(options.logFile)}`,
    );
  });
  try {
    await until(
      async () => (await probeNats(url)) === undefined,
      () => failure,
      30_000,
      "nats-server",
    );
  } catch (error) {
    await stopChild(child, "SIGTERM", 5_000);
    throw error;
  }
  return { url, child, stop: () => stopChild(child, "SIGTERM", 15_000) };
}
