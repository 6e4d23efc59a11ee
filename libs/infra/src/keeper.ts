/**
 * The keeper: a process of its own that runs the embedded PostgreSQL and nats-server for the
 * process that started it (`npm start`, a test run) and stops them when told to, when it is
 * signalled, or when that process is gone (its IPC channel closes), so no server outlives the
 * system it served. Started detached, in a process group of its own: a Ctrl-C at the terminal
 * reaches the services, which stop first, and not the servers they still need while they stop.
 */
import { startNatsServer } from "./nats.ts";
import { startEmbeddedPostgres } from "./postgres.ts";
import { freePort } from "./processes.ts";
import type { KeeperMessage, KeeperSpec } from "./servers.ts";

const spec = JSON.parse(process.argv[2] ?? "{}") as KeeperSpec;
const stops: Array<() => Promise<void>> = [];

async function started<T extends { stop(): Promise<void> }>(
  server: Promise<T> | undefined,
): Promise<T | undefined> {
  if (!server) return undefined;
  const running = await server;
  stops.push(() => running.stop());
  return running;
}

// Both start at once; when one fails the other is still waited for, so that it is stopped too.
const starting = Promise.allSettled([
  started(spec.postgres && freePort().then((port) => startEmbeddedPostgres({ ...spec.postgres!, port }))),
  started(spec.nats && freePort().then((port) => startNatsServer({ ...spec.nats!, port }))),
]);

let stopping: Promise<void> | undefined;
function stop(why: string): Promise<void> {
  stopping ??= (async () => {
    await starting;
    process.stderr.write(`${new Date().toISOString()} keeper: stopping the servers (${why})\n`);
    await Promise.allSettled(stops.map((s) => s()));
    process.exit(0);
  })();
  return stopping;
}

function say(message: KeeperMessage): void {
  if (process.connected) process.send?.(message);
}

process.on("disconnect", () => void stop("its parent is gone"));
process.on("message", (m: { type?: string }) => {
  if (m?.type === "stop") void stop("asked to");
});
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => void stop(signal));

const [pgResult, natsResult] = await starting;
const failures = [pgResult, natsResult].flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
if (failures.length > 0) {
  say({ type: "failed", message: failures.map((f) => f.message).join("\n") });
  await stop("a server failed to start");
} else if (!stopping) {
  const postgres = pgResult.status === "fulfilled" ? pgResult.value : undefined;
  const nats = natsResult.status === "fulfilled" ? natsResult.value : undefined;
  say({
    type: "ready",
    ...(postgres && {
      postgres: { url: postgres.url, pid: postgres.child.pid ?? 0, initialised: postgres.initialised },
    }),
    ...(nats && { nats: { url: nats.url, pid: nats.child.pid ?? 0 } }),
  });
}
