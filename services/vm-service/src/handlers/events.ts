import type {
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
  MessageOf,
} from "@mikrom/contracts";
import { createLogger, setContext, traceTransaction, withContext, withSpan } from "@mikrom/telemetry";
import { sql } from "kysely";
import type { HostLoad, HostStatus } from "../domain/hosts.ts";
import { type ProcessInput, react } from "../domain/lifecycle.ts";
import { hostLoads } from "../store/read-model.ts";
import { handleVm, type Inbound, lockScheduling, type Tx, type VmResult } from "../store/vm-store.ts";
import type { Delivery, HandlerDeps } from "./context.ts";

const log = createLogger("mikrom.vm-service.lifecycle");

export type IppoolEvent =
  | MessageOf<typeof IpAllocated>
  | MessageOf<typeof IpAllocationFailed>
  | MessageOf<typeof IpReleased>;
export type HostEvent =
  | MessageOf<typeof HostRegistered>
  | MessageOf<typeof HostHeartbeat>
  | MessageOf<typeof HostStopped>;

/** `service.vm.<operation>` for the step an input completes. */
function operationOf(input: ProcessInput): string {
  switch (input.type) {
    case "IpAllocated":
    case "IpAllocationFailed":
    case "IpReleased":
      return "allocate";
    case "VmBooted":
    case "VmBootFailed":
      return "boot";
    case "VmShutDown":
    case "VmShutdownFailed":
      return "stop";
    case "VmDestroyed":
      return "delete";
    case "VmLost":
    case "HostLost":
      return "host_lost";
    case "HostAvailable":
      return "schedule";
    case "DeadlineReached":
      return "deadline";
    case "ResendDue":
      return "resend";
  }
}

/**
 * The hosts an input needs: a placement reads them under the scheduling lock, so two VMs never share
 * a last slot; a deadline reads them to know whether the VM's host is only unreachable.
 */
async function hostsFor(tx: Tx, input: ProcessInput): Promise<HostLoad[]> {
  const placing =
    input.type === "IpAllocated" ||
    input.type === "HostAvailable" ||
    (input.type === "DeadlineReached" && input.data.step === "schedule");
  if (placing) await lockScheduling(tx);
  return placing || input.type === "DeadlineReached" ? hostLoads(tx) : [];
}

/** Feeds one input to the lifecycle for one VM, in one transaction with its effects. */
export async function driveVm(
  deps: HandlerDeps,
  vmId: string,
  input: ProcessInput,
  inbound: Inbound | null,
): Promise<VmResult> {
  const action = operationOf(input);
  return withContext({ vm_id: vmId, action }, () =>
    withSpan(`service.vm.${action}`, { "mikrom.vm.id": vmId, "mikrom.input": input.type }, async (span) => {
      const result = await handleVm(deps, {
        vmId,
        inbound,
        context: (tx) => hostsFor(tx, input),
        decide: (vm, hosts) =>
          react(input, vm, {
            hosts,
            nowMs: deps.now(),
            heartbeatTimeoutMs: deps.config.hostHeartbeatTimeoutMs,
          }),
      });
      span.setAttribute("mikrom.outcome", result.outcome);
      if (result.outcome === "accepted") {
        if (result.state.userId !== null) setContext({ user_id: String(result.state.userId) });
        const fields = { status: result.state.status };
        for (const e of result.decided.events) {
          if (e.type === "VmFailed")
            log.warn({ ...fields, step: e.data.step, error_message: e.data.errorMessage }, "VM failed");
          else log.info(fields, `${e.type} after ${input.type}`);
        }
      }
      return result;
    }),
  );
}

/** `<ns>.evt.ippool.*.*` and `<ns>.evt.provisioner.*.*`: answers to the commands this service sent. */
export function onProcessEvent(consumer: string) {
  return (deps: HandlerDeps, d: Delivery<ProcessInput>): Promise<VmResult> => {
    // An allocation answer is matched to the request it answers by its causation id.
    const answer = d.message.type === "IpAllocated" || d.message.type === "IpAllocationFailed";
    const input: ProcessInput =
      answer && d.causationId ? { ...d.message, causationId: d.causationId } : d.message;
    const vmId = (input.data as { vmId: string }).vmId;
    return driveVm(deps, vmId, input, {
      consumer,
      messageId: d.messageId,
      correlationId: d.correlationId,
      actor: null,
    });
  };
}

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
async function placeWaitingVms(deps: HandlerDeps, hostId: string): Promise<void> {
  for (const vmId of await vmsAwaitingHost(deps.db))
    await driveVm(deps, vmId, { type: "HostAvailable", data: { hostId } }, null);
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
        case "HostHeartbeat": {
          const beat = (db: HandlerDeps["db"], upOnly: boolean) =>
            db
              .updateTable("hosts")
              .set({
                last_seen: sql<Date>`greatest(last_seen, ${now})`,
                status: "up",
                unreachable_since: null,
              })
              .where("host_id", "=", hostId)
              .$if(upOnly, (q) => q.where("status", "=", "up"))
              .where((eb) =>
                eb.or([eb("stopped_at", "is", null), eb("stopped_at", "<=", new Date(e.data.at))]),
              )
              .executeTakeFirst();
          // A host that is up stays up: no placement can have missed it, so its heartbeat takes no
          // scheduling lock. Under load, heartbeats queued behind placements for that lock and
          // live hosts were judged unreachable.
          const fresh = await beat(deps.db, true);
          if (fresh.numUpdatedRows > 0n) was = "up";
          else was = await underSchedulingLock(deps, hostId, (tx) => beat(tx, false));
          break;
        }
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
