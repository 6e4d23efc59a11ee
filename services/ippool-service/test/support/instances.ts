import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const MAIN = join(import.meta.dirname, "..", "..", "src", "main.ts");

export interface Instance {
  readonly name: string;
  readonly child: ChildProcess;
  /** The `message` of every JSON log line so far. */
  readonly messages: string[];
  /** Every JSON log line so far. */
  readonly lines: Array<Record<string, unknown>>;
  /** Resolves when a log line with this message appears (or has appeared), rejects after `ms`. */
  waitFor(message: string, ms: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts the real main.ts as its own process (Node 24 via process.execPath), reading its JSON logs. */
export function startInstance(name: string, env: Record<string, string>): Instance {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, OTEL_TRACES_EXPORTER: "none", OTEL_METRICS_EXPORTER: "none", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const messages: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ message: string; resolve: () => void }> = [];
  const errors: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      const message = String(parsed.message);
      lines.push(parsed);
      messages.push(message);
      for (const w of waiters.filter((x) => x.message === message)) w.resolve();
    } catch {
      messages.push(line);
    }
  });
  createInterface({ input: child.stderr! }).on("line", (line) => errors.push(line));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    name,
    child,
    messages,
    lines,
    waitFor(message, ms) {
      if (messages.includes(message)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${name}: no "${message}" within ${ms} ms; stderr: ${errors.join("\n")}`)),
          ms,
        );
        waiters.push({
          message,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(
            new Error(`${name} exited (${child.exitCode}) before "${message}"; stderr: ${errors.join("\n")}`),
          );
        });
      });
    },
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}
