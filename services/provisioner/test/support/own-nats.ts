import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BINARY = "/usr/sbin/nats-server";

/** A nats-server of the test's own (never the shared one), which the test kills and starts again. */
export interface OwnNatsServer {
  readonly url: string;
  /** SIGKILL, as a crash; resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts clients. */
  start(): Promise<void>;
  /** Kills it and removes its store. */
  dispose(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

export async function startOwnNatsServer(): Promise<OwnNatsServer> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), "mikrom-prov-nats-"));
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const proc = spawn(BINARY, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${output}`)), 10_000);
      proc.stderr?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${output}`));
      });
    });
  }

  async function kill(): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    kill,
    start,
    async dispose() {
      await kill();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}
