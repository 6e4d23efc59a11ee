import type { HostHeartbeat, HostRegistered, HostStopped, MessageOf } from "@mikrom/contracts";
import { createLogger, traceTransaction, withContext, withSpan } from "@mikrom/telemetry";
import { sql } from "kysely";
import type { HostStatus } from "../domain/hosts.ts";
import { lockScheduling, type Tx } from "../store/vm-store.ts";
import type { Delivery, HandlerDeps } from "./context.ts";
import { driveVm } from "./events.ts";

const log = createLogger("mikrom.vm-service.hosts");

export type HostEvent =
  | MessageOf<typeof HostRegistered>
  | MessageOf<typeof HostHeartbeat>
  | MessageOf<typeof HostStopped>;

/** VMs holding an address and waiting for a host (their schedule deadline runs), longest waiting first. */
async function vmsAwaitingHost(db: Tx): Promise<string[]> {
  const rows = await db
    .selectFrom("deadlines")
    .select("vm_id")
    .where("step", "=", "schedule")
    .orderBy("due_at")
    .limit(500)
    .execute();
  return rows.map((r) => r.vm_id);
}

/**
 * A host write under the scheduling lock: a placement that found no host either committed its wait
 * before this write (and placeWaitingVms, run after it, sees the VM) or reads the hosts after it.
 * Resolves the host's status before the write (undefined: unknown until now).
 */
async function underSchedulingLock(
  deps: HandlerDeps,
  hostId: string,
  write: (tx: Tx) => Promise<unknown>,
): Promise<HostStatus | undefined> {
  return traceTransaction(() =>
    deps.db.transaction().execute(async (tx) => {
      await lockScheduling(tx);
      const before = await tx
        .selectFrom("hosts")
        .select("status")
        .where("host_id", "=", hostId)
        .executeTakeFirst();
      await write(tx);
      return before?.status;
    }),
  );
}

/** A host registered or heartbeated: every VM waiting for a host gets a look at the hosts now. */
export async function placeWaitingVms(deps: HandlerDeps, hostId: string): Promise<void> {
  for (const vmId of await vmsAwaitingHost(deps.db))
    await driveVm(deps, vmId, { type: "HostAvailable", data: { hostId } }, null);
}

/** A heartbeat as it is written: when it arrived (our clock) and when the host sent it (its clock). */
export interface Beat {
  readonly hostId: string;
  readonly arrivedAt: Date;
  readonly sentAt: Date;
  /** The VMs the host says it runs. */
  readonly runningVms: number;
}

/**
 * Writes heartbeats that arrived together. The hosts that are up (nearly all) are written by one
 * statement, with no scheduling lock (a live host stays live: no placement can have missed it);
 * any other one (back after silence, not registered yet, or a beat from before its stop) on its own,
 * under the lock. The VMs waiting for a host are the caller's to place: a host's liveness must not
 * wait behind placements.
 */
export async function recordHeartbeats(deps: HandlerDeps, beats: readonly Beat[]): Promise<void> {
  if (beats.length === 0) return;
  await withContext({ action: "host" }, () =>
    withSpan("service.vm.heartbeats", { "mikrom.heartbeats": beats.length }, async () => {
      const { rows } = await sql<{ host_id: string }>`
        UPDATE hosts SET last_seen = greatest(hosts.last_seen, b.arrived), unreachable_since = NULL,
          running_vms = b.running
        FROM unnest(${beats.map((b) => b.hostId)}::text[],
                    ${beats.map((b) => b.arrivedAt.toISOString())}::timestamptz[],
                    ${beats.map((b) => b.sentAt.toISOString())}::timestamptz[],
                    ${beats.map((b) => b.runningVms)}::int[]) AS b(host_id, arrived, sent, running)
        WHERE hosts.host_id = b.host_id AND hosts.status = 'up'
          AND (hosts.stopped_at IS NULL OR hosts.stopped_at <= b.sent)
        RETURNING hosts.host_id`.execute(deps.db);
      const fresh = new Set(rows.map((r) => r.host_id));
      for (const beat of beats) if (!fresh.has(beat.hostId)) await takeHeartbeat(deps, beat);
    }),
  );
}

/**
 * One host's heartbeat, when it is not simply an up host's (recordHeartbeats writes those together):
 * under the scheduling lock, so a host that comes back is seen by any placement, and what its VMs wait
 * on is sent again. A beat sent before the host's last stop is stale and changes nothing.
 */
async function takeHeartbeat(deps: HandlerDeps, beat: Beat): Promise<void> {
  const was = await underSchedulingLock(deps, beat.hostId, (tx) =>
    tx
      .updateTable("hosts")
      .set({
        last_seen: sql<Date>`greatest(last_seen, ${beat.arrivedAt})`,
        status: "up",
        unreachable_since: null,
      })
      .where("host_id", "=", beat.hostId)
      .where((eb) => eb.or([eb("stopped_at", "is", null), eb("stopped_at", "<=", beat.sentAt)]))
      .execute(),
  );
  if (was !== undefined && was !== "up") await hostIsBack(deps, beat.hostId, was);
}

/**
 * A host answers again after it was unreachable (a NATS outage, an agent restart): what its VMs were
 * waiting on is sent again now rather than at the next resend, and their deadlines run again from now.
 * What it no longer runs it reports itself (VmLost, through its outbox).
 */
async function hostIsBack(deps: HandlerDeps, hostId: string, was: HostStatus): Promise<void> {
  log.info({ host_id: hostId, was }, "host is back");
  await sql`
    UPDATE deadlines SET resend_at = now()
    WHERE vm_id IN (SELECT vm_id FROM vms WHERE host = ${hostId} AND NOT deleted)`.execute(deps.db);
}

/**
 * `<ns>.evt.host.*.*`: the host registry. A host is heard from when its message *arrives*, by this
 * service's clock; the host's own times only order its own messages (a heartbeat sent before its
 * HostStopped is stale), never compared with ours.
 */
export async function onHostEvent(deps: HandlerDeps, d: Delivery<HostEvent>): Promise<void> {
  const e = d.message;
  const hostId = e.data.hostId;
  const now = new Date(deps.now());
  await withContext({ action: "host" }, () =>
    withSpan(`service.vm.host`, { "mikrom.host.id": hostId, "mikrom.input": e.type }, async () => {
      let was: HostStatus | undefined;
      switch (e.type) {
        case "HostRegistered": {
          const started = new Date(e.data.startedAt);
          was = await underSchedulingLock(deps, hostId, (tx) =>
            tx
              .insertInto("hosts")
              .values({
                host_id: hostId,
                driver: e.data.driver,
                vcpus: e.data.vcpus,
                memory_mb: e.data.memoryMb,
                last_seen: now,
                registered_at: now,
                status: "up",
              })
              .onConflict((oc) =>
                oc
                  .column("host_id")
                  .doUpdateSet({
                    driver: e.data.driver,
                    vcpus: e.data.vcpus,
                    memory_mb: e.data.memoryMb,
                    last_seen: sql<Date>`greatest(hosts.last_seen, ${now})`,
                    registered_at: now,
                    status: "up",
                    unreachable_since: null,
                  })
                  // A registration from a run that has stopped since is stale.
                  .where((eb) =>
                    eb.or([eb("hosts.stopped_at", "is", null), eb("hosts.stopped_at", "<=", started)]),
                  ),
              )
              .execute(),
          );
          log.info({ host_id: hostId, driver: e.data.driver }, "host registered");
          break;
        }
        case "HostHeartbeat":
          // From an agent that still sends heartbeats on the events stream (before `<ns>.beat.<hostId>`).
          await recordHeartbeats(deps, [
            { hostId, arrivedAt: now, sentAt: new Date(e.data.at), runningVms: e.data.runningVms },
          ]);
          await placeWaitingVms(deps, hostId);
          return;
        case "HostStopped":
          // An agent that stops leaves its VMs running (unless it reports them lost): unreachable, not lost.
          await deps.db
            .updateTable("hosts")
            .set({
              status: sql<"unreachable">`CASE WHEN status = 'up' THEN 'unreachable' ELSE status END`,
              unreachable_since: sql<Date>`coalesce(unreachable_since, ${now})`,
              stopped_at: sql<Date>`greatest(stopped_at, ${new Date(e.data.at)})`,
            })
            .where("host_id", "=", hostId)
            .execute();
          log.info({ host_id: hostId }, "host stopped; its VMs wait for it");
          return;
      }
      if (was !== undefined && was !== "up") await hostIsBack(deps, hostId, was);
      await placeWaitingVms(deps, hostId);
    }),
  );
}
