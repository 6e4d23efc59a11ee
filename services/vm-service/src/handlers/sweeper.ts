import { createLogger, errorFields } from "@mikrom/telemetry";
import { sql } from "kysely";
import { expiredHosts } from "../domain/hosts.ts";
import type { Step } from "../domain/vm.ts";
import { vmsOnHost } from "../store/read-model.ts";
import type { HandlerDeps } from "./context.ts";
import { driveVm } from "./events.ts";

const log = createLogger("mikrom.vm-service.sweeper");

/**
 * Fires due step deadlines and declares silent hosts lost. Deadlines live in the database, written
 * with the event that starts the step, so they survive a restart; every replica may sweep (the
 * per-VM lock and the stale-deadline check make a double fire harmless).
 */
export async function sweepOnce(deps: HandlerDeps): Promise<{ deadlines: number; hostsLost: number }> {
  const now = deps.now();
  const due = await deps.db
    .selectFrom("deadlines")
    .selectAll()
    .where("due_at", "<=", sql<Date>`now()`)
    .orderBy("due_at")
    .limit(200)
    .execute();
  for (const d of due) {
    // The inbox key makes one deadline fire once even when two replicas sweep together.
    await driveVm(
      deps,
      d.vm_id,
      { type: "DeadlineReached", data: { step: d.step as Step, timeoutMs: d.timeout_ms } },
      {
        consumer: "deadlines",
        messageId: `${d.vm_id}:${d.step}:${d.due_at.getTime()}`,
        correlationId: null,
        actor: null,
      },
    );
    await deps.db
      .deleteFrom("deadlines")
      .where("vm_id", "=", d.vm_id)
      .where("due_at", "=", d.due_at)
      .execute();
  }

  const hosts = await deps.db.selectFrom("hosts").selectAll().where("live", "=", true).execute();
  const timeout = deps.config.hostHeartbeatTimeoutMs;
  const lost = expiredHosts(
    hosts.map((h) => ({
      hostId: h.host_id,
      driver: h.driver,
      vcpus: h.vcpus,
      memoryMb: h.memory_mb,
      lastSeenMs: h.last_seen.getTime(),
      live: h.live,
    })),
    now,
    timeout,
  );
  for (const hostId of lost) {
    const host = hosts.find((h) => h.host_id === hostId)!;
    const reason =
      host.last_seen.getTime() === 0
        ? `host ${hostId} stopped`
        : `no heartbeat from host ${hostId} for ${timeout} ms`;
    log.warn({ host_id: hostId, reason }, "host lost");
    for (const vmId of await vmsOnHost(deps.db, hostId))
      await driveVm(deps, vmId, { type: "HostLost", data: { hostId, reason } }, null);
    // Marked dead only after its VMs are handled: a crash in between repeats the sweep, not loses it.
    await deps.db
      .updateTable("hosts")
      .set({ live: false })
      .where("host_id", "=", hostId)
      .where("last_seen", "=", host.last_seen)
      .execute();
  }
  return { deadlines: due.length, hostsLost: lost.length };
}

export function startSweeper(deps: HandlerDeps): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const timer = setInterval(() => {
    running = running.then(() =>
      stopped ? undefined : sweepOnce(deps).catch((error) => log.error(errorFields(error), "sweep failed")),
    );
  }, deps.config.sweepIntervalMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
