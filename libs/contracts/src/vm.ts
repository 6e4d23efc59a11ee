import { z } from "zod";
import { Actor, HostId, Ipv4, Timestamp, UserId, VmId, VmName } from "./ids.ts";
import { PoolName } from "./ippool.ts";
import { command, event, query } from "./message.ts";
import { Text } from "./text.ts";

/** The service that owns VMs; commands go to `<ns>.cmd.vm.<verb>`, events to `<ns>.evt.vm.<vmId>.<Type>`. */
export const VM_SERVICE = "vm";

export const VmStatus = z.enum([
  "pending",
  "provisioning",
  "starting",
  "running",
  "stopping",
  "stopped",
  "restarting",
  "error",
  "deleting",
]);
export type VmStatus = z.infer<typeof VmStatus>;

export const VcpuCount = z.int().min(1).max(32);
export const MemoryMb = z.int().min(128).max(32768);
export const VmDescription = Text.max(500).nullable();

// Commands: the gateway mints vmId; every command carries its actor.
/**
 * A user's own limits, as a superuser set them in the gateway; each absent one is vm-service's
 * default (MAX_VMS_PER_USER, MAX_VCPUS_PER_USER, MAX_MEMORY_MB_PER_USER). vm-service checks them
 * all in one place, under the user's lock, against what the user's VMs hold.
 */
export const UserQuota = z.object({
  vms: z.int().min(0).max(100_000).optional(),
  vcpus: z.int().min(0).max(1_000_000).optional(),
  memoryMb: z.int().min(0).max(1_000_000_000).optional(),
});
export type UserQuota = z.infer<typeof UserQuota>;

export const CreateVm = command(
  "CreateVm",
  1,
  z.object({
    vmId: VmId,
    actor: Actor,
    name: VmName,
    description: VmDescription.default(null),
    vcpuCount: VcpuCount.default(1),
    memoryMb: MemoryMb.default(512),
    /** The pool to allocate from, by the name ippool-service allocates by (default pool when absent). */
    pool: PoolName.optional(),
    quota: UserQuota.optional(),
  }),
);
export const UpdateVm = command(
  "UpdateVm",
  1,
  z.object({ vmId: VmId, actor: Actor, name: VmName.optional(), description: VmDescription.optional() }),
);
export const StartVm = command("StartVm", 1, z.object({ vmId: VmId, actor: Actor }));
export const StopVm = command("StopVm", 1, z.object({ vmId: VmId, actor: Actor }));
export const RestartVm = command("RestartVm", 1, z.object({ vmId: VmId, actor: Actor }));
export const DeleteVm = command("DeleteVm", 1, z.object({ vmId: VmId, actor: Actor }));

// Events of the VM aggregate.
export const VmCreated = event(
  "VmCreated",
  1,
  z.object({
    vmId: VmId,
    userId: UserId,
    name: VmName,
    description: VmDescription,
    vcpuCount: VcpuCount,
    memoryMb: MemoryMb,
    pool: z.string().optional(),
  }),
);
export const VmUpdated = event(
  "VmUpdated",
  1,
  z.object({ vmId: VmId, name: VmName.optional(), description: VmDescription.optional() }),
);
/**
 * An address is held and a host chosen: the boot command goes out. `prefixLength` and `gateway` (of
 * the lease) make the event carry everything the boot command needs.
 */
export const VmProvisioning = event(
  "VmProvisioning",
  1,
  z.object({
    vmId: VmId,
    ipAddress: Ipv4,
    hostId: HostId,
    prefixLength: z.int().min(16).max(30).optional(),
    gateway: Ipv4.optional(),
  }),
);
/**
 * An address is held but no live host has room yet: the VM keeps its status (pending, or starting
 * when it provisions again) and waits for a host until the schedule deadline. The lease's
 * `prefixLength` and `gateway` travel along so the boot command can be built once a host is found.
 */
export const VmAwaitingHost = event(
  "VmAwaitingHost",
  1,
  z.object({
    vmId: VmId,
    ipAddress: Ipv4,
    prefixLength: z.int().min(16).max(30).optional(),
    gateway: Ipv4.optional(),
  }),
);
export const VmRunning = event("VmRunning", 1, z.object({ vmId: VmId, hostId: HostId, ipAddress: Ipv4 }));
export const VmStartRequested = event("VmStartRequested", 1, z.object({ vmId: VmId }));
export const VmStopRequested = event("VmStopRequested", 1, z.object({ vmId: VmId }));
export const VmStopped = event("VmStopped", 1, z.object({ vmId: VmId }));
export const VmRestartRequested = event("VmRestartRequested", 1, z.object({ vmId: VmId }));
export const VmDeleteRequested = event("VmDeleteRequested", 1, z.object({ vmId: VmId }));
export const VmDeleted = event("VmDeleted", 1, z.object({ vmId: VmId }));
/** The operation failed (or a deadline passed): status `error`; what it took is given back. */
export const VmFailed = event(
  "VmFailed",
  1,
  z.object({ vmId: VmId, step: z.string(), errorMessage: z.string().min(1) }),
);

/** A command refused by the decider; the gateway turns `reason` into a 409 (or 404/422 by `code`). */
export const CommandRejected = event(
  "CommandRejected",
  1,
  z.object({
    entityId: z.string(),
    command: z.string(),
    code: z.enum(["conflict", "not_found", "forbidden", "invalid", "limit"]),
    reason: z.string(),
  }),
);

export const VmView = z.object({
  vmId: VmId,
  name: VmName,
  description: VmDescription,
  vcpuCount: VcpuCount,
  memoryMb: MemoryMb,
  ipAddress: Ipv4.nullable(),
  status: VmStatus,
  errorMessage: z.string().nullable(),
  host: HostId.nullable(),
  /**
   * Whether its host answers (null: on no host). An unreachable host's VMs keep their last known
   * status: most likely still running, their state is unknown until the host is back.
   */
  hostStatus: z.enum(["reachable", "unreachable"]).nullable().optional(),
  userId: UserId,
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type VmView = z.infer<typeof VmView>;

/** A VM as it reads once VmCreated is recorded (at `recordedAt`): pending, on no host, no address. */
export function createdView(data: z.infer<typeof VmCreated.schema>, recordedAt: string): VmView {
  const at = new Date(recordedAt).toISOString();
  return {
    vmId: data.vmId,
    name: data.name,
    description: data.description,
    vcpuCount: data.vcpuCount,
    memoryMb: data.memoryMb,
    ipAddress: null,
    status: "pending",
    errorMessage: null,
    host: null,
    hostStatus: null,
    userId: data.userId,
    createdAt: at,
    updatedAt: at,
  };
}

export const vmCommands = [CreateVm, UpdateVm, StartVm, StopVm, RestartVm, DeleteVm] as const;
export const vmEvents = [
  VmCreated,
  VmUpdated,
  VmProvisioning,
  VmAwaitingHost,
  VmRunning,
  VmStartRequested,
  VmStopRequested,
  VmStopped,
  VmRestartRequested,
  VmDeleteRequested,
  VmDeleted,
  VmFailed,
  CommandRejected,
] as const;

// Queries, `<ns>.qry.vm.<name>`; the actor decides what is visible (owner, or superuser for all).
export const Page = z.object({
  page: z.int().min(1).default(1),
  pageSize: z.int().min(1).max(100).default(10),
});
export const GetVm = query("get", z.object({ vmId: VmId, actor: Actor }), VmView);
/**
 * A place in the VM list, which runs newest first: a VM's `created_at` exactly as stored, to the
 * microsecond (VmView's is to the millisecond: a place rounded to it skips or repeats VMs), and its id.
 */
export const VmListKey = z.object({ createdAt: Timestamp, vmId: VmId });
export type VmListKey = z.infer<typeof VmListKey>;
export const ListVms = query(
  "list",
  Page.extend({
    actor: Actor,
    status: VmStatus.optional(),
    /** Keyset paging: the page holds the VMs after this one, and `page` is not read. */
    after: VmListKey.optional(),
  }),
  z.object({
    items: z.array(VmView),
    total: z.int().nonnegative(),
    /** Each item's place, to page on after any of them (optional: an earlier vm-service sent none). */
    keys: z.array(VmListKey).optional(),
    /** Whether VMs follow this page. */
    more: z.boolean().optional(),
  }),
);
export const VmHistoryEntry = z.object({
  eventId: z.string(),
  type: z.string(),
  version: z.int(),
  data: z.record(z.string(), z.unknown()),
  recordedAt: Timestamp,
  actor: z.object({ userId: UserId.optional(), userName: z.string().optional() }).nullable(),
  traceId: z.string().nullable(),
});
export const VmHistory = query(
  "history",
  z.object({ vmId: VmId, actor: Actor }),
  z.object({ events: z.array(VmHistoryEntry) }),
);
/** Answers when the VM reaches `status` (or is already there) or when the timeout passes. */
export const WaitVm = query(
  "wait",
  z.object({ vmId: VmId, actor: Actor, status: VmStatus, timeoutMs: z.int().min(0).max(300_000) }),
  z.object({ reached: z.boolean(), vm: VmView }),
);
export const vmQueries = [GetVm, ListVms, VmHistory, WaitVm] as const;
