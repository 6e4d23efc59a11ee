import { Cidr, Ipv4, PoolDescription, PoolName, type PoolStats, type PoolView } from "@mikrom/contracts";
import { z } from "zod";

/** The IP pool API's shapes (the earlier system's field names) and their mapping from the contracts. */
export const PoolCreateBody = z.object({
  name: PoolName,
  cidr: Cidr,
  gateway: Ipv4,
  start_ip: Ipv4,
  end_ip: Ipv4,
  description: PoolDescription.nullable().optional(),
});
export const PoolPatchBody = z.object({
  name: PoolName.optional(),
  description: PoolDescription.nullable().optional(),
  is_active: z.boolean().optional(),
});
export const SuggestBody = z.object({ cidr: Cidr });

export const PoolOut = z
  .object({
    id: z.string(),
    name: z.string(),
    cidr: z.string(),
    prefix_length: z.int(),
    gateway: z.string(),
    start_ip: z.string(),
    end_ip: z.string(),
    description: z.string().nullable(),
    is_active: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .meta({ id: "IpPool" });
export const StatsOut = z.object({
  pool_id: z.string(),
  name: z.string(),
  is_active: z.boolean(),
  total: z.int(),
  allocated: z.int(),
  available: z.int(),
  usage_percent: z.number(),
});
export const AllStatsOut = z.object({
  pools: z.array(StatsOut),
  total: z.int(),
  allocated: z.int(),
  available: z.int(),
  usage_percent: z.number(),
});
export const SuggestOut = z.object({
  cidr: z.string(),
  network: z.string(),
  prefix_length: z.int(),
  netmask: z.string(),
  first_usable: z.string(),
  last_usable: z.string(),
  broadcast: z.string(),
  total_hosts: z.int(),
  gateway: z.string(),
  start_ip: z.string(),
  end_ip: z.string(),
  size: z.int(),
});

export const poolOut = (p: PoolView): z.infer<typeof PoolOut> => ({
  id: p.poolId,
  name: p.name,
  cidr: p.cidr,
  prefix_length: p.prefixLength,
  gateway: p.gateway,
  start_ip: p.rangeStart,
  end_ip: p.rangeEnd,
  description: p.description,
  is_active: p.active,
  created_at: p.createdAt,
  updated_at: p.updatedAt,
});
export const statsOut = (s: PoolStats): z.infer<typeof StatsOut> => ({
  pool_id: s.poolId,
  name: s.name,
  is_active: s.active,
  total: s.total,
  allocated: s.allocated,
  available: s.available,
  usage_percent: s.usagePercent,
});

/** API field names of the pool definition, for the validation problems ippool-service reports. */
export const FIELD: Record<string, string> = {
  name: "name",
  cidr: "cidr",
  gateway: "gateway",
  rangeStart: "start_ip",
  rangeEnd: "end_ip",
};

export const PoolAccepted = z.object({ message: z.string(), id: z.string() });

/** A pool's path. Not a PoolId: a malformed id reads as a pool that does not exist (404), not a 422. */
export const PoolPath = z.object({ pool_id: z.string() });
