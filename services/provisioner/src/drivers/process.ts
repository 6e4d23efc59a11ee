import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { BootFailed } from "./errors.ts";

/**
 * Starts a hypervisor that outlives the agent: its own session and process group (so a signal to
 * the agent's group never reaches it), no pipes to the agent (a dead reader would stall it),
 * stdout and stderr appended to files (`stderr` defaults to the stdout file).
 */
export function spawnDetached(argv: readonly string[], output: { stdout: string; stderr?: string }): number {
  const [command, ...args] = argv;
  if (!command) throw new Error("spawnDetached: empty command");
  const out = openSync(output.stdout, "a");
  const err = output.stderr && output.stderr !== output.stdout ? openSync(output.stderr, "a") : out;
  try {
    const child = spawn(command, args, { detached: true, stdio: ["ignore", out, err] });
    // Without a pid the spawn failed synchronously (ENOENT is reported as an 'error' event).
    child.on("error", () => {});
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${command}`);
    return child.pid;
  } finally {
    closeSync(out);
    if (err !== out) closeSync(err);
  }
}

/** spawnDetached, with a failure to start reported as a BootFailed at the spawn step. */
export function spawnOrFail(argv: readonly string[], output: { stdout: string; stderr?: string }): number {
  try {
    return spawnDetached(argv, output);
  } catch (error) {
    throw new BootFailed("spawn", (error as Error).message);
  }
}

/** /proc/<pid>/stat state: a zombie has ended even though kill(pid, 0) still succeeds. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

export async function isAlive(pid: number): Promise<boolean> {
  const state = await procState(pid);
  return state !== undefined && state !== "Z" && state !== "X";
}

/** The process's argv, or undefined when it does not exist. */
export async function commandLine(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((part) => part.length > 0);
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` is alive and its command line holds `marker`: an argument containing it (a path
 * unique to the VM), or, given a list, those arguments in a row (`--id <vm id>`). A pid in a stored
 * record may have been reused by an unrelated process since.
 */
export async function isOurProcess(pid: number, marker: string | readonly string[]): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const argv = await commandLine(pid);
  if (!argv) return false;
  if (typeof marker === "string") return argv.some((arg) => arg.includes(marker));
  return argv.some((_, start) => marker.every((part, i) => argv[start + i] === part));
}

/** Resolves true once the process has ended, false if it still runs at the deadline. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (performance.now() >= deadline) return false;
    await delay(Math.min(20, Math.max(1, deadline - performance.now())));
  }
}

/** Sends a signal to the process group (the hypervisor leads its own), falling back to the pid. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Ends the process: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
export async function terminate(pid: number, graceMs = 1000): Promise<void> {
  if (!(await isAlive(pid))) return;
  signalGroup(pid, "SIGTERM");
  if (await waitForExit(pid, graceMs)) return;
  signalGroup(pid, "SIGKILL");
  if (!(await waitForExit(pid, 5000))) throw new Error(`process ${pid} survived SIGKILL`);
}
