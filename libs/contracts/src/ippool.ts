import { z } from "zod";
import { Ipv4, Timestamp, VmId } from "./ids.ts";
import { command, event, query } from "./message.ts";
import { Text } from "./text.ts";

/**
 * The service that owns IP pools: commands to `<ns>.cmd.ippool.<verb>`. Pool events go to
 * `<ns>.evt.ippool.<poolId>.<Type>`; allocation events are keyed by the VM:
 * `<ns>.evt.ippool.<vmId>.IpAllocated`, so a VM's whole story can be followed by its id.
 */
export const IPPOOL_SERVICE = "ippool";

export const PoolId = z.string().regex(/^pool-[0-9a-f]{8}$/, "must be pool- followed by 8 hex digits");
export const PoolName = Text.min(1)
  .max(64)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]*$/, "letters, digits, '-' and '_' only");
export const Cidr = Text.min(9).max(18);
export const PoolDescription = Text.max(500);

export const PoolDefinition = z.object({
  name: PoolName,
  cidr: Cidr,
  gateway: Ipv4,
  rangeStart: Ipv4,
  rangeEnd: Ipv4,
  description: PoolDescription.nullable().default(null),
});

export const CreatePool = command("CreatePool", 1, PoolDefinition.extend({ poolId: PoolId }));
export const UpdatePool = command(
  "UpdatePool",
  1,
  z.object({
    poolId: PoolId,
    name: PoolName.optional(),
    description: PoolDescription.nullable().optional(),
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
    description: PoolDescription.nullable().optional(),
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

/** The verb each command is sent under, `<ns>.cmd.ippool.<verb>` (the service dispatches on `Mikrom-Type`). */
export const IppoolVerb = {
  CreatePool: "create",
  UpdatePool: "update",
  DeletePool: "delete",
  AllocateIp: "allocate",
  ReleaseIp: "release",
} as const;

export const ippoolCommands = [CreatePool, UpdatePool, DeletePool, AllocateIp, ReleaseIp] as const;
export const ippoolEvents = [
  PoolCreated,
  PoolUpdated,
  PoolDeleted,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
] as const;

// Queries, `<ns>.qry.ippool.<name>` (admin routes of the gateway; authorization is the gateway's).
export const PoolView = PoolDefinition.extend({
  poolId: PoolId,
  active: z.boolean(),
  prefixLength: z.int().min(16).max(30),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type PoolView = z.infer<typeof PoolView>;

export const PoolStats = z.object({
  poolId: PoolId,
  name: PoolName,
  active: z.boolean(),
  total: z.int().nonnegative(),
  allocated: z.int().nonnegative(),
  available: z.int().nonnegative(),
  /** allocated / total × 100, two decimals. */
  usagePercent: z.number().min(0).max(100),
});
export type PoolStats = z.infer<typeof PoolStats>;

/** One address held by one VM for a while; `releasedAt` is null while it still holds it. */
export const AllocationRecord = z.object({
  vmId: VmId,
  poolId: PoolId,
  pool: PoolName,
  address: Ipv4,
  allocatedAt: Timestamp,
  releasedAt: Timestamp.nullable(),
});
export type AllocationRecord = z.infer<typeof AllocationRecord>;

export const PoolIssue = z.object({
  field: z.enum(["name", "cidr", "gateway", "rangeStart", "rangeEnd"]),
  message: z.string(),
});

export const ListPools = query("list", z.object({}), z.object({ items: z.array(PoolView) }));
export const GetPool = query("get", z.object({ poolId: PoolId }), PoolView);
export const GetPoolStats = query("stats", z.object({ poolId: PoolId }), PoolStats);
export const AllPoolStats = query(
  "stats-all",
  z.object({}),
  z.object({
    pools: z.array(PoolStats),
    total: z.int().nonnegative(),
    allocated: z.int().nonnegative(),
    available: z.int().nonnegative(),
    usagePercent: z.number().min(0).max(100),
  }),
);
/** The layout of a CIDR and the range to offer (gateway first usable, range the rest). */
export const SuggestRange = query(
  "suggest-range",
  z.object({ cidr: Cidr }),
  z.object({
    cidr: z.string(),
    network: Ipv4,
    prefixLength: z.int().min(16).max(30),
    netmask: Ipv4,
    firstUsable: Ipv4,
    lastUsable: Ipv4,
    broadcast: Ipv4,
    totalHosts: z.int().positive(),
    suggestedGateway: Ipv4,
    suggestedStart: Ipv4,
    suggestedEnd: Ipv4,
    suggestedSize: z.int().positive(),
  }),
);
/** Checks a definition against the rules and the live pools without creating it (422 with every field). */
export const ValidatePool = query(
  "validate",
  PoolDefinition,
  z.object({ valid: z.boolean(), issues: z.array(PoolIssue) }),
);
/** Provenance: which VMs held an address, and when (newest first). */
export const AddressHistory = query(
  "address-history",
  z.object({ address: Ipv4 }),
  z.object({ address: Ipv4, allocations: z.array(AllocationRecord) }),
);
/** Provenance: every address a VM held (newest first), and the one it holds now. */
export const VmAllocations = query(
  "vm-allocations",
  z.object({ vmId: VmId }),
  z.object({ vmId: VmId, current: AllocationRecord.nullable(), allocations: z.array(AllocationRecord) }),
);

export const ippoolQueries = [
  ListPools,
  GetPool,
  GetPoolStats,
  AllPoolStats,
  SuggestRange,
  ValidatePool,
  AddressHistory,
  VmAllocations,
] as const;
