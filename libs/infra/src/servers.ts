import { spawn } from "node:child_process";
import { chmod, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { NatsServerOptions } from "./nats.ts";
import type { EmbeddedPostgresOptions } from "./postgres.ts";
import { appendFd, closeFd, tail } from "./processes.ts";

/** What the keeper is asked to run (ports are its own pick). */
export interface KeeperSpec {
  readonly postgres?: Omit<EmbeddedPostgresOptions, "port">;
  readonly nats?: Omit<NatsServerOptions, "port">;
}

export type KeeperMessage =
  | {
      type: "ready";
      postgres?: { url: string; pid: number; initialised: boolean };
      nats?: { url: string; pid: number };
    }
  | { type: "failed"; message: string };

/** Where a home folder (`.mikrom/`, or a test run's) keeps each server's files. */
export function homeLayout(home: string) {
  return {
    home,
    postgresDir: join(home, "postgres"),
    postgresPassword: join(home, "postgres-password"),
    postgresLog: join(home, "postgres.log"),
    natsDir: join(home, "nats"),
    natsLog: join(home, "nats.log"),
    keeperLog: join(home, "servers.log"),
  };
}

export interface OwnServers {
  readonly postgres?: { readonly url: string; readonly pid: number; readonly initialised: boolean };
  readonly nats?: { readonly url: string; readonly pid: number };
  readonly keeperPid: number;
  /** Stops both servers (fast shutdown) and resolves once the keeper and they have exited. */
  stop(): Promise<void>;
}

export interface OwnServersRequest {
  /** The folder everything is kept in; created when missing. */
  readonly home: string;
  /** Run an embedded PostgreSQL; the URL names `database`. */
  readonly postgres?: { readonly database: string; readonly durable?: boolean };
  /** Run this nats-server binary with JetStream. */
  readonly nats?: { readonly binary: string };
}

const KEEPER = join(import.meta.dirname, "keeper.ts");

/**
 * Starts the servers asked for in a keeper process (see keeper.ts) and resolves with their URLs once
 * they answer; rejects with the reason when one cannot start (and nothing is left running).
 */
export async function startOwnServers(request: OwnServersRequest, timeoutMs = 120_000): Promise<OwnServers> {
  const paths = homeLayout(request.home);
  await mkdir(request.home, { recursive: true });
  // As root the embedded PostgreSQL runs as another user, who must pass through to its folder.
  await chmod(request.home, process.getuid?.() === 0 ? 0o711 : 0o700);
  const spec: KeeperSpec = {
    ...(request.postgres && {
      postgres: {
        dataDir: paths.postgresDir,
        passwordFile: paths.postgresPassword,
        logFile: paths.postgresLog,
        ...request.postgres,
      },
    }),
    ...(request.nats && {
      nats: { binary: request.nats.binary, storeDir: paths.natsDir, logFile: paths.natsLog },
    }),
  };
  const log = appendFd(paths.keeperLog);
  const keeper = spawn(process.execPath, [KEEPER, JSON.stringify(spec)], {
    detached: true,
    stdio: ["ignore", log, log, "ipc"],
  });
  closeFd(log);
  const exited = new Promise<void>((resolve) => keeper.once("exit", () => resolve()));
  const killGroup = (): void => {
    try {
      if (keeper.pid) process.kill(-keeper.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };

  const answer = await new Promise<KeeperMessage>((resolve) => {
    const timer = setTimeout(
      () => resolve({ type: "failed", message: `the servers did not start within ${timeoutMs / 1000} s` }),
      timeoutMs,
    );
    keeper.once("message", (m: KeeperMessage) => {
      clearTimeout(timer);
      resolve(m);
    });
    keeper.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({
        type: "failed",
        message: `the servers' keeper exited (${signal ?? `exit ${code}`}); ${paths.keeperLog}:\n${tail(paths.keeperLog)}`,
      });
    });
  });
  if (answer.type === "failed") {
    const ended = await Promise.race([exited.then(() => true), sleep(30_000).then(() => false)]);
    if (!ended) killGroup();
    throw new Error(answer.message);
  }

  let stopped: Promise<void> | undefined;
  return {
    ...(answer.postgres && { postgres: answer.postgres }),
    ...(answer.nats && { nats: answer.nats }),
    keeperPid: keeper.pid ?? 0,
    stop() {
      stopped ??= (async () => {
        if (keeper.connected) keeper.send({ type: "stop" });
        else keeper.kill("SIGTERM");
        const ended = await Promise.race([exited.then(() => true), sleep(45_000).then(() => false)]);
        if (!ended) killGroup();
        await exited;
      })();
      return stopped;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
