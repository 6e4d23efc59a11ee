/**
 * The servers a chaos run owns: a private PostgreSQL cluster and a nats-server with JetStream (or a
 * three-node JetStream cluster on loopback), plus what faults need to reach them: process ids and
 * signals to every process of a server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, listening, startPrivateNats } from "../../e2e/private-infra.ts";
import { sleep } from "./random.ts";

const NATS_SERVER = "/usr/sbin/nats-server";

/** One nats-server: killed with SIGKILL, started again on the same port and store. */
export interface NatsNode {
  readonly name: string;
  readonly url: string;
  pid(): number | undefined;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export interface Nats {
  /** Every node's URL, comma-separated (NATS_URL). */
  readonly url: string;
  readonly nodes: readonly NatsNode[];
  /** Stream replicas the services should declare (MIKROM_STREAM_REPLICAS). */
  readonly replicas: number;
  remove(): Promise<void>;
}

/** One private nats-server (e2e/private-infra.ts) with JetStream. */
export async function startSingleNats(): Promise<Nats> {
  const server = await startPrivateNats();
  const node: NatsNode = {
    name: "nats",
    url: server.url,
    pid: () => server.pid(),
    kill: () => server.kill(),
    start: () => server.start(),
  };
  return { url: server.url, nodes: [node], replicas: 1, remove: () => server.remove() };
}

/**
 * Three nats-servers with JetStream clustered by routes on loopback; each logs to `logDir`. Resolves
 * once the JetStream meta group has a leader, so R3 streams can be created.
 */
export async function startNatsCluster(dir: string, logDir: string, size = 3): Promise<Nats> {
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({
      client: await freePort(),
      cluster: await freePort(),
      http: await freePort(),
    })),
  );
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.cluster}`).join(", ");
  const nodes = await Promise.all(
    ports.map(async (p, i) => {
      const name = `nats-${i + 1}`;
      const config = join(dir, `${name}.conf`);
      await mkdir(join(dir, name), { recursive: true });
      await writeFile(
        config,
        [
          `server_name: ${name}`,
          `listen: 127.0.0.1:${p.client}`,
          `http: 127.0.0.1:${p.http}`,
          `jetstream { store_dir: "${join(dir, name)}" }`,
          `cluster { name: mikrom-chaos, listen: 127.0.0.1:${p.cluster}, routes: [${routes}] }`,
        ].join("\n"),
      );
      return clusterNode(name, p.client, p.http, config, join(logDir, `${name}.log`));
    }),
  );
  await Promise.all(nodes.map((n) => n.start()));
  await metaLeader(ports.map((p) => p.http));
  return {
    url: nodes.map((n) => n.url).join(","),
    nodes,
    replicas: 3,
    async remove() {
      await Promise.all(nodes.map((n) => n.kill()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function clusterNode(name: string, port: number, httpPort: number, config: string, log: string): NatsNode {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const alive = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
  return {
    name,
    url: `nats://127.0.0.1:${port}`,
    pid: () => (alive() ? child!.pid : undefined),
    async start() {
      const proc = spawn(NATS_SERVER, ["-c", config, "-l", log], { stdio: "ignore" });
      child = proc;
      exited = new Promise((resolve) => proc.once("exit", () => resolve()));
      await listening(port, 15_000);
      // The monitoring port comes up with the server; a node that rejoins catches up by itself.
      await listening(httpPort, 5_000).catch(() => {});
    },
    async kill() {
      if (alive()) {
        child!.kill("SIGKILL");
        await exited;
      }
    },
  };
}

async function metaLeader(httpPorts: number[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const answers = await Promise.all(
        httpPorts.map(async (port) => {
          const res = await fetch(`http://127.0.0.1:${port}/jsz`);
          return (await res.json()) as { meta_cluster?: { leader?: string; cluster_size?: number } };
        }),
      );
      if (answers.every((a) => a.meta_cluster?.leader)) return;
      last = JSON.stringify(answers.map((a) => a.meta_cluster));
    } catch (error) {
      last = String(error);
    }
    await sleep(250);
  }
  throw new Error(`the JetStream cluster elected no meta leader within ${timeoutMs} ms: ${last}`);
}

/** A process and all its descendants (from /proc), e.g. the postmaster and its backends. */
export async function processTree(root: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  // Read synchronously: a few hundred tiny files take milliseconds this way, while queued on a busy
  // libuv thread pool they took seconds, and a pause's SIGCONT waited on them.
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let stat = "";
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // Fields after the command (which may hold spaces), in parentheses: state, ppid, …
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    if (!Number.isInteger(ppid)) continue;
    parents.set(ppid, [...(parents.get(ppid) ?? []), pid]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/** Sends `signal` to every pid that still exists. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone already (ESRCH): nothing to stop or continue.
    }
  }
}
