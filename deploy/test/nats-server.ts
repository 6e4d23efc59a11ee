/**
 * A nats-server of a test's own (a free port, a temporary store, never the shared server) running
 * a rendered auth.conf, and probes that tell whether a connection may publish or subscribe.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";

export interface TestNatsServer {
  readonly port: number;
  stop(): void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts nats-server with `authConf` included and `env` (the passwords it reads) in its
 * environment; resolves once `user` can connect with `pass`.
 */
export async function startNatsServer(
  authConf: string,
  env: Record<string, string>,
  probe: { user: string; pass: string },
): Promise<TestNatsServer> {
  const dir = mkdtempSync(join(tmpdir(), "mikrom-nats-perms-"));
  const port = await freePort();
  writeFileSync(join(dir, "auth.conf"), authConf);
  writeFileSync(
    join(dir, "nats.conf"),
    `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir, "js")}" }\ninclude ./auth.conf\n`,
  );
  const server: ChildProcess = spawn("/usr/sbin/nats-server", ["-c", join(dir, "nats.conf")], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  // A configuration it cannot read ends it at once: say why rather than time out.
  let stderr = "";
  server.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const stop = (): void => {
    server.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const nc = await connect({ servers: `127.0.0.1:${port}`, ...probe, noAsyncTraces: true });
      await nc.close();
      return { port, stop };
    } catch (error) {
      if (server.exitCode !== null) {
        stop();
        throw new Error(`nats-server exited (${server.exitCode}): ${stderr.trim()}`);
      }
      if (Date.now() > deadline) {
        stop();
        throw error;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface PermissionProbe {
  /** Every permission violation the server reported to this connection, in order. */
  readonly violations: string[];
  canPublish(subject: string): Promise<boolean>;
  canSubscribe(subject: string): Promise<boolean>;
}

/**
 * The server answers a refused publish or subscription with -ERR before the PONG of a flush; nats.js
 * has queued the status by the time flush resolves, and its iterator delivers it on the next turn.
 */
export async function settled(nc: NatsConnection): Promise<void> {
  await nc.flush();
  await new Promise((resolve) => setImmediate(resolve));
}

/** Watches `nc`'s permission violations: a subject is refused when one naming it follows the attempt. */
export function permissionProbe(nc: NatsConnection): PermissionProbe {
  const violations: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && s.error.name === "PermissionViolationError") violations.push(s.error.message);
    }
  })();
  const allowed = async (subject: string, attempt: () => () => void): Promise<boolean> => {
    const before = violations.length;
    const undo = attempt();
    await settled(nc);
    undo();
    return !violations.slice(before).some((v) => v.includes(`"${subject}"`));
  };
  return {
    violations,
    canPublish: (subject) =>
      allowed(subject, () => {
        nc.publish(subject, "{}");
        return () => {};
      }),
    canSubscribe: (subject) =>
      allowed(subject, () => {
        const sub = nc.subscribe(subject);
        return () => sub.unsubscribe();
      }),
  };
}
