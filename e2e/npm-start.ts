/**
 * `npm start` as a person runs it: the real npm, from the repository root, in a process group of
 * its own (so that what it leaves behind can be counted), with state in a folder of the test's.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

const run = promisify(execFile);
export const repoRoot = join(import.meta.dirname, "..");

export interface NpmStart {
  readonly child: ChildProcess;
  /** Every line npm start wrote to stderr so far (the banner, problems). */
  readonly stderr: string[];
  /** Resolves with the banner once "Mikrom is up"; rejects if npm exits first. */
  readonly up: Promise<string>;
  /** Resolves with npm's exit code (or signal) once it has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** ms from the spawn of npm to the banner. */
  readyMs(): number | undefined;
}

/** The environment of a person's shell: nothing npm set for the test run itself. */
export function personEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith("npm_") || key === "INIT_CWD") continue;
    if (key === "DATABASE_URL" || key === "NATS_URL" || key.startsWith("MIKROM_")) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Runs `npm start` (with `--silent` when asked; stdout to `stdoutFile` when given, else dropped).
 * Detached: npm leads a process group of its own, as a shell's job does.
 */
export function npmStart(options: {
  env: Record<string, string | undefined>;
  silent?: boolean;
  stdoutFile?: string;
}): NpmStart {
  const started = performance.now();
  let readyAt: number | undefined;
  const out = options.stdoutFile ? openSync(options.stdoutFile, "a") : "ignore";
  const child = spawn("npm", ["start", ...(options.silent ? ["--silent"] : [])], {
    cwd: repoRoot,
    env: personEnv(options.env),
    detached: true,
    stdio: ["ignore", out, "pipe"],
  });
  if (typeof out === "number") closeSync(out);
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const up = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on("line", (line) => {
      stderr.push(line);
      if (line.startsWith("Mikrom is up.")) readyAt = performance.now();
      // The banner ends with the line about Ctrl-C.
      if (readyAt !== undefined && line.startsWith("Ctrl-C stops")) {
        const from = stderr.findIndex((l) => l.startsWith("Mikrom is up."));
        resolve(stderr.slice(from).join("\n"));
      }
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`npm start exited (${signal ?? code}) before it was up:\n${stderr.join("\n")}`)),
    );
  });
  up.catch(() => {});
  return {
    child,
    stderr,
    up,
    exited,
    readyMs: () => (readyAt === undefined ? undefined : Math.round(readyAt - started)),
  };
}

/**
 * Processes in the group, or whose command line names `marker`: what a stopped npm start left
 * running. Zombies are not counted: they have exited, and only wait for whoever reaps orphans.
 */
export async function leftRunning(pgid: number, marker: string): Promise<string[]> {
  const { stdout } = await run("ps", ["-eo", "pid=,pgid=,stat=,args="], { maxBuffer: 16 * 1024 * 1024 });
  return stdout
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .filter(([, pid, group, stat, args]) => {
      if (Number(pid) === process.pid || stat!.startsWith("Z")) return false;
      return Number(group) === pgid || (args!.includes(marker) && !args!.startsWith("ps "));
    })
    .map(([, pid, , , args]) => `${pid} ${args}`);
}

/** Waits until nothing is left running (or the deadline), and returns what still is. */
export async function settle(pgid: number, marker: string, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await leftRunning(pgid, marker);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pid of start.ts under npm (npm runs it with exec: npm → node). */
export async function startScriptPid(npmPid: number): Promise<number> {
  const { stdout } = await run("pgrep", ["-f", "-g", String(npmPid), "scripts/start.ts"]);
  const pids = stdout.trim().split("\n").map(Number);
  if (pids.length !== 1) throw new Error(`expected one start.ts process under npm ${npmPid}, found ${pids}`);
  return pids[0]!;
}

export interface Credentials {
  email: string;
  password: string;
}

/** Logs in over the API; the access token, or the status and body when refused. */
export async function logIn(api: string, who: Credentials): Promise<{ status: number; token?: string }> {
  const res = await fetch(`${api}/api/v1/auth/login/json`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: who.email, password: who.password }),
  });
  const body = (await res.json()) as { access_token?: string };
  return { status: res.status, ...(body.access_token && { token: body.access_token }) };
}
