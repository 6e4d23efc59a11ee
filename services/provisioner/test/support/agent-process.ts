import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "../../src/main.ts");

export interface AgentProcess {
  readonly child: ChildProcess;
  /** The last 20 kB of its output, for a failure's message. */
  output(): string;
  /** SIGKILL, as a crash; resolves once it is gone. */
  kill(): Promise<void>;
}

/** The real agent (src/main.ts) as a child process, with these variables on top of the test's. */
export function startAgentProcess(variables: Record<string, string>): AgentProcess {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ...variables },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return {
    child,
    output: () => output,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
    },
  };
}
