import { z } from "zod";
import { Ipv4, VmId } from "./ids.ts";
import { command, event } from "./message.ts";

/**
 * The service that owns IP pools: commands to `<ns>.cmd.ippool.<verb>`. Pool events go to
 * `<ns>.evt.ippool.<poolId>.<Type>`; allocation events are keyed by the VM:
 * `<ns>.evt.ippool.<vmId>.IpAllocated`, so a VM's whole story can be followed by its id.
 */
export const IPPOOL_SERVICE = "ippool";

export const PoolId = z.string().regex(/^pool-[0-9a-f]{8}$/, "must be pool- followed by 8 hex digits");
export const PoolName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]*$/, "letters, digits, '-' and '_' only");
export const Cidr = z.string().min(9).max(18);

export const PoolDefinition = z.object({
  name: PoolName,
  cidr: Cidr,
  gateway: Ipv4,
  rangeStart: Ipv4,
  rangeEnd: Ipv4,
  description: z.string().max(500).nullable().default(null),
});

export const CreatePool = command("CreatePool", 1, PoolDefinition.extend({ poolId: PoolId }));
export const UpdatePool = command(
  "UpdatePool",
  1,
  z.object({
    poolId: PoolId,
    name: PoolName.optional(),
    description: z.string().max(500).nullable().optional(),
    active: z.boolean().optional(),
  }),
);
export const DeletePool = command("DeletePool", 1, z.object({ poolId: PoolId }));
export const AllocateIp = command("AllocateIp", 1, z.object({ vmId: VmId, pool: PoolName.optional() }));
export const ReleaseIp = command("ReleaseIp", 1, z.object({ vmId: VmId }));

export const PoolCreated = event("PoolCreated", 1, PoolDefinition.extend({ poolId: PoolId }));
export const PoolUpdated = event(
  "PoolUpdated",
  1,
  z.object({
    poolId: PoolId,
    name: PoolName.optional(),
    description: z.string().max(500).nullable().optional(),
    active: z.boolean().optional(),
  }),
);
export const PoolDeleted = event("PoolDeleted", 1, z.object({ poolId: PoolId }));
export const IpAllocated = event(
  "IpAllocated",
  1,
  z.object({
    vmId: VmId,
    poolId: PoolId,
    pool: PoolName,
    address: Ipv4,
    prefixLength: z.int().min(16).max(30),
    gateway: Ipv4,
  }),
);
export const AllocationFailureReason = z.enum(["exhausted", "pool_inactive", "pool_not_found"]);
export const IpAllocationFailed = event(
  "IpAllocationFailed",
  1,
  z.object({ vmId: VmId, pool: z.string(), reason: AllocationFailureReason }),
);
export const IpReleased = event("IpReleased", 1, z.object({ vmId: VmId, poolId: PoolId, address: Ipv4 }));

export const ippoolCommands = [CreatePool, UpdatePool, DeletePool, AllocateIp, ReleaseIp] as const;
export const ippoolEvents = [
  PoolCreated,
  PoolUpdated,
  PoolDeleted,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
] as const;
