/**
 * Servers of one test's own, for the scenarios that stop them: the shared NATS and PostgreSQL that
 * other tests run against are never stopped.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const PG_BIN = "/usr/lib/postgresql/15/bin";
const NATS_SERVER = "/usr/sbin/nats-server";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once something accepts TCP connections on the port, or throws at the deadline. */
export async function listening(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` on this cluster. */
  url(database: string): string;
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: sessions are ended, the server goes away. */
  stop(): Promise<void>;
  /** `pg_ctl stop -m immediate`: the server dies as in a crash (recovery runs at the next start). */
  crash(): Promise<void>;
  /** The postmaster's process id while the server runs (from `postmaster.pid`). */
  pid(): Promise<number | undefined>;
  /** The server's own log (kept until `remove`). */
  readonly logFile: string;
  /** Stops the server and removes the cluster. */
  remove(): Promise<void>;
}

/**
 * A throwaway PostgreSQL cluster (trust auth, loopback, its socket in its own folder). PostgreSQL
 * refuses to run as root, so initdb and pg_ctl run as the `postgres` user in a folder it owns.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), "mikrom-pg-"));
  const data = join(dir, "data");
  const port = await freePort();
  const asPostgres = (args: string[]) =>
    process.getuid?.() === 0
      ? run("runuser", ["-u", "postgres", "--", ...args])
      : run(args[0]!, args.slice(1));
  if (process.getuid?.() === 0) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await asPostgres([
    `${PG_BIN}/initdb`,
    "-D",
    data,
    "-A",
    "trust",
    "-U",
    "postgres",
    "-E",
    "UTF8",
    "--no-sync",
  ]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const pgCtl = (...args: string[]) => asPostgres([`${PG_BIN}/pg_ctl`, "-D", data, ...args]);
  let running = false;
  const logFile = join(dir, "server.log");
  const cluster: PrivatePostgres = {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    logFile,
    async start() {
      await pgCtl("-o", options, "-l", logFile, "-w", "-t", "30", "start");
      running = true;
    },
    async stop() {
      await pgCtl("-m", "fast", "-w", "-t", "30", "stop");
      running = false;
    },
    async crash() {
      await pgCtl("-m", "immediate", "-w", "-t", "30", "stop");
      running = false;
    },
    async pid() {
      const text = await readFile(join(data, "postmaster.pid"), "utf8").catch(() => "");
      const pid = Number(text.split("\n")[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    },
    async remove() {
      if (running) await cluster.stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}

export interface PrivateNats {
  readonly url: string;
  /** The server's HTTP monitoring endpoint (`/varz`: messages in and out, for benchmarks). */
  readonly monitorUrl: string;
  /** The server's process id while it runs. */
  pid(): number | undefined;
  /** SIGKILL: the server dies as in a crash, with no goodbye to its clients. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store folder (JetStream recovers its streams from the store). */
  start(): Promise<void>;
  /** Kills the server and removes its store. */
  remove(): Promise<void>;
}

/** A nats-server with JetStream of one test's own, on a free loopback port. */
export async function startPrivateNats(): Promise<PrivateNats> {
  const dir = await mkdtemp(join(tmpdir(), "mikrom-nats-"));
  const port = await freePort();
  const monitorPort = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const nats: PrivateNats = {
    url: `nats://127.0.0.1:${port}`,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    pid: () => (child && child.exitCode === null && child.signalCode === null ? child.pid : undefined),
    async start() {
      const proc = spawn(
        NATS_SERVER,
        ["-js", "-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-sd", dir],
        {
          stdio: "ignore",
        },
      );
      child = proc;
      exited = new Promise((resolve) => proc.once("exit", () => resolve()));
      await listening(port, 10_000);
    },
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
    async remove() {
      await nats.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await nats.start();
  return nats;
}
