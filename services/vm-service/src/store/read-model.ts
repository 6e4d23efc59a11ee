import type { DriverName, HostView, VmListKey, VmStatus, VmView } from "@mikrom/contracts";
import { type Kysely, type Selectable, sql, type Updateable } from "kysely";
import type { HostLoad } from "../domain/hosts.ts";
import { transitions, type Vm, type VmEvent } from "../domain/vm.ts";
import type { Tables, VmsTable } from "./tables.ts";

type Tx = Kysely<Tables>;

/** Folds one VM event into the `vms` read table, in the transaction that appends it. */
export async function project(tx: Tx, event: VmEvent, at: Date): Promise<void> {
  const vmId = event.data.vmId;
  if (event.type === "VmCreated") {
    const d = event.data;
    await tx
      .insertInto("vms")
      .values({
        vm_id: vmId,
        user_id: d.userId,
        name: d.name,
        description: d.description,
        vcpu_count: d.vcpuCount,
        memory_mb: d.memoryMb,
        ip_address: null,
        status: "pending",
        error_message: null,
        host: null,
        created_at: at,
        updated_at: at,
        deleted: false,
      })
      .execute();
    return;
  }
  const to = transitions[event.type].to;
  const set: Updateable<VmsTable> = { updated_at: at };
  if (to === "deleted") set.deleted = true;
  else if (to !== null && to !== "absent") set.status = to;
  switch (event.type) {
    case "VmUpdated":
      if (event.data.name !== undefined) set.name = event.data.name;
      if (event.data.description !== undefined) set.description = event.data.description;
      break;
    case "VmAwaitingHost":
      set.ip_address = event.data.ipAddress;
      break;
    case "VmProvisioning":
      set.ip_address = event.data.ipAddress;
      set.host = event.data.hostId;
      break;
    case "VmRunning":
      set.ip_address = event.data.ipAddress;
      set.host = event.data.hostId;
      set.error_message = null;
      break;
    case "VmFailed":
      set.error_message = event.data.errorMessage;
      set.ip_address = null;
      set.host = null;
      break;
    case "VmDeleted":
      set.ip_address = null;
      set.host = null;
      break;
  }
  await tx.updateTable("vms").set(set).where("vm_id", "=", vmId).execute();
}

/** A VM row with its host's status (null: on no host). */
export type VmRow = Selectable<VmsTable> & { host_status: string | null };

export function toView(row: VmRow): VmView {
  return {
    vmId: row.vm_id,
    name: row.name,
    description: row.description,
    vcpuCount: row.vcpu_count,
    memoryMb: row.memory_mb,
    ipAddress: row.ip_address,
    status: row.status as VmStatus,
    errorMessage: row.error_message,
    host: row.host,
    hostStatus: row.host === null ? null : row.host_status === "up" ? "reachable" : "unreachable",
    userId: row.user_id,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** The VMs with their host's status. */
function vmsWithHosts(db: Tx) {
  return db
    .selectFrom("vms")
    .leftJoin("hosts", "hosts.host_id", "vms.host")
    .selectAll("vms")
    .select("hosts.status as host_status");
}

/** The VM row, deleted ones included (history stays readable to its owner). */
export async function findVm(db: Tx, vmId: string): Promise<VmRow | undefined> {
  return vmsWithHosts(db).where("vms.vm_id", "=", vmId).executeTakeFirst();
}

/** `created_at` to the microsecond, as ISO 8601 text: a `Date` holds only milliseconds. */
const EXACT_CREATED_AT = sql<string>`to_char(vms.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * A page of the VMs, newest first (`created_at`, then `vm_id`, descending), with each one's place in
 * that order. `after` one of them, the page is read from the index at that place (keyset paging, as
 * cheap deep as on page 1); without it, `page` counts from the start (OFFSET: a deep page reads every
 * row before it).
 */
export async function listVms(
  db: Tx,
  opts: { userId: number | null; status?: VmStatus; page: number; pageSize: number; after?: VmListKey },
): Promise<{ items: VmView[]; keys: VmListKey[]; more: boolean; total: number }> {
  let q = db.selectFrom("vms").where("deleted", "=", false);
  if (opts.userId !== null) q = q.where("user_id", "=", opts.userId);
  if (opts.status) q = q.where("status", "=", opts.status);
  let page = vmsWithHosts(db).select(EXACT_CREATED_AT.as("created_key")).where("vms.deleted", "=", false);
  if (opts.userId !== null) page = page.where("vms.user_id", "=", opts.userId);
  if (opts.status) page = page.where("vms.status", "=", opts.status);
  if (opts.after)
    page = page.where(
      sql<boolean>`(vms.created_at, vms.vm_id) < (${opts.after.createdAt}::timestamptz, ${opts.after.vmId})`,
    );
  else page = page.offset((opts.page - 1) * opts.pageSize);
  const [rows, count] = await Promise.all([
    // One row past the page says whether another follows.
    page
      .orderBy("vms.created_at", "desc")
      .orderBy("vms.vm_id", "desc")
      .limit(opts.pageSize + 1)
      .execute(),
    q.select(sql<string>`count(*)`.as("n")).executeTakeFirstOrThrow(),
  ]);
  const shown = rows.slice(0, opts.pageSize);
  return {
    items: shown.map(toView),
    keys: shown.map((r) => ({ createdAt: r.created_key, vmId: r.vm_id })),
    more: rows.length > opts.pageSize,
    total: Number(count.n),
  };
}

/** VMs the user holds now, for the per-user limit. */
/** What a user's VMs hold now (every status but deleted): how many, their vCPUs and memory. */
export async function userUsage(
  tx: Tx,
  userId: number,
): Promise<{ vms: number; vcpus: number; memoryMb: number }> {
  const r = await tx
    .selectFrom("vms")
    .select([
      sql<string>`count(*)`.as("n"),
      sql<string>`coalesce(sum(vcpu_count), 0)`.as("vcpus"),
      sql<string>`coalesce(sum(memory_mb), 0)`.as("memory"),
    ])
    .where("user_id", "=", userId)
    .where("deleted", "=", false)
    .executeTakeFirstOrThrow();
  return { vms: Number(r.n), vcpus: Number(r.vcpus), memoryMb: Number(r.memory) };
}

/** Every known host with the capacity its placed VMs use. */
export async function hostLoads(tx: Tx): Promise<HostLoad[]> {
  const rows = await tx.selectFrom("hosts").selectAll().execute();
  return rows.map((r) => ({
    hostId: r.host_id,
    driver: r.driver,
    vcpus: r.vcpus,
    memoryMb: r.memory_mb,
    status: r.status,
    lastSeenMs: r.last_seen.getTime(),
    unreachableSinceMs: r.unreachable_since?.getTime() ?? null,
    vms: r.placed_vms,
    usedVcpus: r.used_vcpus,
    usedMemoryMb: r.used_memory_mb,
  }));
}

/**
 * Keeps the hosts' used capacity in step with placements: a VM holds its size on its host from
 * VmProvisioning until it fails or is deleted (the state's hostId says which, before and after).
 */
export async function trackPlacement(tx: Tx, before: Vm, after: Vm): Promise<void> {
  if (before.hostId === after.hostId) return;
  if (before.hostId !== null) await addLoad(tx, before.hostId, "-", before);
  if (after.hostId !== null) await addLoad(tx, after.hostId, "+", after);
}

/** Adds a VM and its size to its host's load ("+") or takes them off ("-"). */
async function addLoad(tx: Tx, hostId: string, op: "+" | "-", vm: Vm): Promise<void> {
  await tx
    .updateTable("hosts")
    .set((eb) => ({
      placed_vms: eb("placed_vms", op, 1),
      used_vcpus: eb("used_vcpus", op, vm.vcpuCount),
      used_memory_mb: eb("used_memory_mb", op, vm.memoryMb),
    }))
    .where("host_id", "=", hostId)
    .execute();
}

export async function vmsOnHost(db: Tx, hostId: string): Promise<string[]> {
  const rows = await db
    .selectFrom("vms")
    .select("vm_id")
    .where("host", "=", hostId)
    .where("deleted", "=", false)
    .execute();
  return rows.map((r) => r.vm_id);
}

/** Whether the host a VM is placed on is unreachable (false on no host): read with the VM's lock held. */
export async function vmHostUnreachable(tx: Tx, vmId: string): Promise<boolean> {
  const row = await tx
    .selectFrom("vms")
    .innerJoin("hosts", "hosts.host_id", "vms.host")
    .select("hosts.status")
    .where("vms.vm_id", "=", vmId)
    .executeTakeFirst();
  return row?.status === "unreachable";
}

/** Every host of the registry, by id. */
export async function listHosts(db: Tx): Promise<HostView[]> {
  const rows = await db.selectFrom("hosts").selectAll().orderBy("host_id").execute();
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return rows.map((h) => ({
    hostId: h.host_id,
    driver: h.driver as DriverName,
    vcpus: h.vcpus,
    memoryMb: h.memory_mb,
    status: h.status,
    registeredAt: iso(h.registered_at),
    lastSeenAt: h.last_seen.toISOString(),
    unreachableSince: iso(h.unreachable_since),
    stoppedAt: iso(h.stopped_at),
    placedVms: h.placed_vms,
    usedVcpus: h.used_vcpus,
    usedMemoryMb: h.used_memory_mb,
    runningVms: h.running_vms,
  }));
}
