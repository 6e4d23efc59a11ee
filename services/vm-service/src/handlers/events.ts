import type {
  HostHeartbeat,
  HostRegistered,
  HostStopped,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
  MessageOf,
} from "@mikrom/contracts";
import { createLogger, setContext, withContext, withSpan } from "@mikrom/telemetry";
import { sql } from "kysely";
import { type ProcessInput, react } from "../domain/lifecycle.ts";
import { hostLoads } from "../store/read-model.ts";
import { type HandleResult, handleVm, type Inbound, lockScheduling, type Tx } from "../store/vm-store.ts";
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
  }
}

/** Feeds one input to the lifecycle for one VM, in one transaction with its effects. */
export async function driveVm(
  deps: HandlerDeps,
  vmId: string,
  input: ProcessInput,
  inbound: Inbound | null,
): Promise<HandleResult> {
  const action = operationOf(input);
  return withContext({ vm_id: vmId, action }, () =>
    withSpan(`service.vm.${action}`, { "mikrom.vm.id": vmId, "mikrom.input": input.type }, async (span) => {
      const result = await handleVm(deps, vmId, inbound, null, async (vm, tx) => {
        if (vm.userId !== null) setContext({ user_id: String(vm.userId) });
        // Only a placement reads the hosts; it takes the scheduling lock so two VMs never share a last slot.
        const placing =
          (input.type === "IpAllocated" && vm.allocating) ||
          input.type === "HostAvailable" ||
          (input.type === "DeadlineReached" && input.data.step === "schedule");
        if (placing) await lockScheduling(tx);
        const hosts = placing ? await hostLoads(tx) : [];
        return react(input, vm, {
          hosts,
          nowMs: deps.now(),
          heartbeatTimeoutMs: deps.config.hostHeartbeatTimeoutMs,
        });
      });
      span.setAttribute("mikrom.outcome", result.kind);
      if (result.kind === "decided") {
        const fields = { status: result.vm.status };
        for (const e of result.decision.events) {
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
  return (deps: HandlerDeps, d: Delivery<ProcessInput>): Promise<HandleResult> => {
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
 */
async function underSchedulingLock(deps: HandlerDeps, write: (tx: Tx) => Promise<unknown>): Promise<void> {
  await deps.db.transaction().execute(async (tx) => {
    await lockScheduling(tx);
    await write(tx);
  });
}

/** A host registered or heartbeated: every VM waiting for a host gets a look at the hosts now. */
async function placeWaitingVms(deps: HandlerDeps, hostId: string): Promise<void> {
  for (const vmId of await vmsAwaitingHost(deps.db))
    await driveVm(deps, vmId, { type: "HostAvailable", data: { hostId } }, null);
}

/**
 * `<ns>.evt.host.*.*`: the host registry. Liveness goes by the time each event carries, and never
 * moves back, so a late or replayed heartbeat cannot revive a host.
 */
export async function onHostEvent(deps: HandlerDeps, d: Delivery<HostEvent>): Promise<void> {
  const e = d.message;
  const seen = new Date(e.type === "HostRegistered" ? e.data.startedAt : e.data.at);
  await withContext({ action: "host" }, () =>
    withSpan(`service.vm.host`, { "mikrom.host.id": e.data.hostId, "mikrom.input": e.type }, async () => {
      switch (e.type) {
        case "HostRegistered":
          await underSchedulingLock(deps, (tx) =>
            tx
              .insertInto("hosts")
              .values({
                host_id: e.data.hostId,
                driver: e.data.driver,
                vcpus: e.data.vcpus,
                memory_mb: e.data.memoryMb,
                last_seen: seen,
                live: true,
              })
              .onConflict((oc) =>
                oc.column("host_id").doUpdateSet({
                  driver: e.data.driver,
                  vcpus: e.data.vcpus,
                  memory_mb: e.data.memoryMb,
                  last_seen: sql<Date>`greatest(hosts.last_seen, ${seen})`,
                  live: sql<boolean>`hosts.last_seen <= ${seen}`,
                }),
              )
              .execute(),
          );
          log.info({ host_id: e.data.hostId, driver: e.data.driver }, "host registered");
          await placeWaitingVms(deps, e.data.hostId);
          break;
        case "HostHeartbeat":
          await underSchedulingLock(deps, (tx) =>
            tx
              .updateTable("hosts")
              .set({ last_seen: sql<Date>`greatest(last_seen, ${seen})` })
              .where("host_id", "=", e.data.hostId)
              .execute(),
          );
          await placeWaitingVms(deps, e.data.hostId);
          break;
        case "HostStopped":
          // The sweeper treats a host that said goodbye like one that went silent.
          await deps.db
            .updateTable("hosts")
            .set({ last_seen: new Date(0) })
            .where("host_id", "=", e.data.hostId)
            .where("last_seen", "<=", seen)
            .execute();
          log.info({ host_id: e.data.hostId }, "host stopped");
          break;
      }
    }),
  );
}
