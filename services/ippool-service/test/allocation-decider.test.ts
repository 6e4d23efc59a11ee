import type { AllocateIp, MessageOf } from "@mikrom/contracts";
import { describe, expect, it } from "vitest";
import {
  type AllocationEvent,
  decideAllocate,
  decideAllocation,
  decideRelease,
  decideTaken,
  evolveAllocation,
  initialVmAllocation,
  type PoolSnapshot,
  type VmAllocationState,
} from "../src/domain/allocation.ts";

const vmId = "srv-0000abcd";
const pool: PoolSnapshot = {
  poolId: "pool-00000001",
  name: "default",
  active: true,
  prefixLength: 24,
  gateway: "172.16.0.1",
};
const allocate = (poolName?: string): MessageOf<typeof AllocateIp> => ({
  type: "AllocateIp",
  data: poolName ? { vmId, pool: poolName } : { vmId },
});
const allocated: AllocationEvent = {
  type: "IpAllocated",
  data: {
    vmId,
    poolId: pool.poolId,
    pool: "default",
    address: "172.16.0.2",
    prefixLength: 24,
    gateway: "172.16.0.1",
  },
};
const holding = evolveAllocation(initialVmAllocation, allocated);

describe("allocating an address", () => {
  it("a VM without an address asks the shell to take one from the pool", () => {
    expect(decideAllocate(allocate(), initialVmAllocation, pool)).toEqual({ next: "take-address", pool });
  });

  it("the address taken becomes IpAllocated with the pool's prefix and gateway", () => {
    expect(decideTaken(allocate(), pool, "172.16.0.2")).toEqual([allocated]);
  });

  it("no free address is an exhausted outcome, not an error", () => {
    expect(decideTaken(allocate(), pool, null)).toEqual([
      { type: "IpAllocationFailed", data: { vmId, pool: "default", reason: "exhausted" } },
    ]);
  });

  it("a pool that does not exist is pool_not_found", () => {
    expect(decideAllocate(allocate("nope"), initialVmAllocation, null)).toEqual({
      next: "answer",
      events: [{ type: "IpAllocationFailed", data: { vmId, pool: "nope", reason: "pool_not_found" } }],
    });
  });

  it("an inactive pool is pool_inactive, named as the command named it (the default when it named none)", () => {
    expect(decideAllocate(allocate(), initialVmAllocation, { ...pool, active: false })).toEqual({
      next: "answer",
      events: [{ type: "IpAllocationFailed", data: { vmId, pool: "default", reason: "pool_inactive" } }],
    });
  });

  it("asking again for a VM that holds an address answers the same address, whatever pool it names", () => {
    expect(decideAllocate(allocate("other"), holding, null)).toEqual({ next: "answer", events: [allocated] });
  });

  it("a failed allocation leaves the VM free to ask again", () => {
    const failed = evolveAllocation(initialVmAllocation, {
      type: "IpAllocationFailed",
      data: { vmId, pool: "default", reason: "exhausted" },
    });
    expect(failed).toEqual(initialVmAllocation);
    expect(decideAllocate(allocate(), failed, pool)).toEqual({ next: "take-address", pool });
  });
});

describe("the whole allocation, from the pool and its next free address", () => {
  it("a VM without an address gets the free one", () => {
    expect(decideAllocation(allocate(), initialVmAllocation, pool, "172.16.0.2")).toEqual([allocated]);
  });

  it("a VM that holds an address gets it again, not the free one", () => {
    expect(decideAllocation(allocate(), holding, pool, "172.16.0.9")).toEqual([allocated]);
  });

  it("a pool that does not exist is pool_not_found, whatever address is free", () => {
    expect(decideAllocation(allocate("nope"), initialVmAllocation, null, "172.16.0.2")).toEqual([
      { type: "IpAllocationFailed", data: { vmId, pool: "nope", reason: "pool_not_found" } },
    ]);
  });
});

/** A VM's allocation history and what it then holds: at most one address, given back only by its own release. */
const histories: Array<[string, AllocationEvent[], VmAllocationState]> = [
  ["an allocation holds its address", [allocated], { held: allocated.data }],
  [
    "releasing the held address gives it back",
    [allocated, { type: "IpReleased", data: { vmId, poolId: pool.poolId, address: "172.16.0.2" } }],
    { held: null },
  ],
  [
    "releasing another address keeps the one held",
    [allocated, { type: "IpReleased", data: { vmId, poolId: pool.poolId, address: "172.16.0.3" } }],
    { held: allocated.data },
  ],
  [
    "a failure after an allocation keeps the address held",
    [allocated, { type: "IpAllocationFailed", data: { vmId, pool: "default", reason: "exhausted" } }],
    { held: allocated.data },
  ],
  [
    "a release with nothing held holds nothing",
    [{ type: "IpReleased", data: { vmId, poolId: pool.poolId, address: "172.16.0.2" } }],
    { held: null },
  ],
];

describe("a VM's allocation history", () => {
  it.each(histories)("%s", (_, events, expected) => {
    expect(events.reduce(evolveAllocation, initialVmAllocation)).toEqual(expected);
  });
});

describe("releasing an address", () => {
  const release = { type: "ReleaseIp" as const, data: { vmId } };

  it("a held address is released", () => {
    expect(decideRelease(release, holding)).toEqual([
      { type: "IpReleased", data: { vmId, poolId: pool.poolId, address: "172.16.0.2" } },
    ]);
  });

  it("releasing twice is harmless: the second finds nothing to release", () => {
    const [released] = decideRelease(release, holding);
    const after = evolveAllocation(holding, released!);
    expect(after).toEqual(initialVmAllocation);
    expect(decideRelease(release, after)).toEqual([]);
  });

  it("after a release the VM may be given an address again", () => {
    const [released] = decideRelease(release, holding);
    expect(decideAllocate(allocate(), evolveAllocation(holding, released!), pool).next).toBe("take-address");
  });
});
