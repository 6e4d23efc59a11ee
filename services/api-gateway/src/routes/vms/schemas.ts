import { type Actor, PoolName, VmDescription, VmName, VmStatus, type VmView } from "@mikrom/contracts";
import { z } from "zod";
import { PageQuery, pageOf } from "../../http/paging.ts";
import type { UserRow } from "../../store/users.ts";

export const VmCreateBody = z.object({
  name: VmName,
  description: VmDescription.optional(),
  vcpu_count: z.int().min(1).max(32).default(1),
  memory_mb: z.int().min(128).max(32768).default(512),
  pool: PoolName.optional().describe("IP pool name (default pool when absent)"),
});

export const VmPatchBody = z.object({ name: VmName.optional(), description: VmDescription.optional() });

export const VmOut = z
  .object({
    id: z.string().describe("the same as vm_id"),
    vm_id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    vcpu_count: z.int(),
    memory_mb: z.int(),
    ip_address: z.string().nullable(),
    status: VmStatus,
    error_message: z.string().nullable(),
    host: z.string().nullable(),
    host_status: z
      .enum(["reachable", "unreachable"])
      .nullable()
      .describe("whether the VM's host answers; an unreachable host's VMs keep their last known status"),
    user_id: z.int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "Vm" });
export type VmOut = z.infer<typeof VmOut>;

export const VmAccepted = z.object({ message: z.string(), vm_id: z.string(), status: VmStatus });

export const VmListQuery = PageQuery.extend({
  status: VmStatus.optional(),
  page_token: z
    .string()
    .optional()
    .describe(
      "a page's next_page_token, as it was: the page after that one, however many VMs came or went before it",
    ),
});

export const VmPage = pageOf(VmOut).extend({
  next_page_token: z
    .string()
    .nullable()
    .describe("pass it as page_token for the next page; null on the last page"),
});

export const WaitQuery = z.object({
  status: VmStatus,
  timeout: z.coerce.number().int().min(0).max(300).default(60).describe("seconds"),
});
export const WaitOut = z.object({ reached: z.boolean(), vm: VmOut });

export const HistoryOut = z.object({
  vm_id: z.string(),
  events: z.array(
    z.object({
      event_id: z.string(),
      type: z.string(),
      version: z.int(),
      data: z.record(z.string(), z.unknown()),
      recorded_at: z.string(),
      actor: z.object({ user_id: z.int().optional(), user_name: z.string().optional() }).nullable(),
      trace_id: z.string().nullable(),
    }),
  ),
});

export function vmOut(v: VmView): VmOut {
  return {
    id: v.vmId,
    vm_id: v.vmId,
    name: v.name,
    description: v.description,
    vcpu_count: v.vcpuCount,
    memory_mb: v.memoryMb,
    ip_address: v.ipAddress,
    status: v.status,
    error_message: v.errorMessage,
    host: v.host,
    host_status: v.hostStatus ?? null,
    user_id: v.userId,
    created_at: v.createdAt,
    updated_at: v.updatedAt,
  };
}

export function actorOf(user: UserRow): Actor {
  return { userId: user.id, userName: user.username, superuser: user.is_superuser };
}

/** A VM's path. Not a VmId: a malformed id reads as a VM that does not exist (404), not a 422. */
export const VmPath = z.object({ vm_id: z.string() });
