import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type LogLine, parseLogLine } from "@mikrom/testkit";

const HOP = fileURLToPath(new URL("./fixtures/hop.ts", import.meta.url));

export interface Hop {
  readonly role: string;
  /** Every stdout line, parsed and checked as a log line as it arrives. */
  readonly logs: LogLine[];
  readonly stderr: string[];
  /** stdout lines that were not valid log lines (must stay empty), with the reason. */
  readonly unparsable: string[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  waitForLogs(predicate: (logs: LogLine[]) => boolean, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
}

/** Starts fixtures/hop.ts in its own Node process (the Node running vitest: 24, with type stripping). */
export function startHop(role: string, env: Record<string, string>): Hop {
  const child: ChildProcess = spawn(process.execPath, [HOP], {
    env: { ...process.env, ...env, ROLE: role },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const unparsable: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      logs.push(parseLogLine(line));
    } catch (error) {
      unparsable.push(`${line} -> ${String(error)}`);
    }
    for (const wake of waiters) wake();
  });
  createInterface({ input: child.stderr! }).on("line", (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    role,
    logs,
    stderr,
    unparsable,
    exited,
    waitForLogs(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        let settled = false;
        const finish = (): boolean => {
          if (settled) return false;
          settled = true;
          clearTimeout(timer);
          waiters.delete(check);
          return true;
        };
        const check = (): void => {
          if (predicate(logs) && finish()) resolve();
        };
        const onExit = (): void => {
          if (!finish()) return;
          if (predicate(logs)) resolve();
          else reject(new Error(`${role} exited before the expected logs; stderr: ${stderr.join("\n")}`));
        };
        const timer = setTimeout(() => {
          if (finish()) reject(new Error(`${role}: expected logs not seen within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
        void exited.then(onExit);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
