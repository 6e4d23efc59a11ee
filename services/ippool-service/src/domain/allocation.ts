import type {
  AllocateIp,
  IpAllocated,
  IpAllocationFailed,
  IpReleased,
  MessageOf,
  ReleaseIp,
} from "@mikrom/contracts";

/** The pool used when an AllocateIp names none; created at first start from configuration. */
export const DEFAULT_POOL_NAME = "default";

export type AllocationEvent =
  | MessageOf<typeof IpAllocated>
  | MessageOf<typeof IpAllocationFailed>
  | MessageOf<typeof IpReleased>;

export type Holding = MessageOf<typeof IpAllocated>["data"];

/** A VM's allocation stream folded: the address it holds now, if any (at most one, in one pool). */
export interface VmAllocationState {
  held: Holding | null;
}

export const initialVmAllocation: VmAllocationState = { held: null };

/** The pool an allocation would draw from, as the shell found it in the read model. */
export interface PoolSnapshot {
  poolId: string;
  name: string;
  active: boolean;
  prefixLength: number;
  gateway: string;
}

export function evolveAllocation(state: VmAllocationState, event: AllocationEvent): VmAllocationState {
  switch (event.type) {
    case "IpAllocated":
      return { held: event.data };
    case "IpReleased":
      return state.held?.address === event.data.address ? { held: null } : state;
    case "IpAllocationFailed":
      return state;
  }
}

export function poolNameOf(cmd: MessageOf<typeof AllocateIp>): string {
  return cmd.data.pool ?? DEFAULT_POOL_NAME;
}

/**
 * First half of an allocation: either the answer is known without touching the pool's free
 * addresses, or the shell must take one address from `pool` and call `decideTaken`.
 *
 * A VM that already holds an address gets the same IpAllocated again (same pool, same address),
 * whatever pool it names now: asking twice is how a caller that lost the answer gets it back, and
 * a VM holds at most one address.
 */
export type AllocationStep =
  | { next: "answer"; events: AllocationEvent[] }
  | { next: "take-address"; pool: PoolSnapshot };

export function decideAllocate(
  cmd: MessageOf<typeof AllocateIp>,
  state: VmAllocationState,
  pool: PoolSnapshot | null,
): AllocationStep {
  const vmId = cmd.data.vmId;
  if (state.held) return { next: "answer", events: [{ type: "IpAllocated", data: state.held }] };
  const name = poolNameOf(cmd);
  if (!pool) return failed(vmId, name, "pool_not_found");
  if (!pool.active) return failed(vmId, name, "pool_inactive");
  return { next: "take-address", pool };
}

/** Second half: the address the shell took (null when the pool has none free). */
export function decideTaken(
  cmd: MessageOf<typeof AllocateIp>,
  pool: PoolSnapshot,
  address: string | null,
): AllocationEvent[] {
  const vmId = cmd.data.vmId;
  if (address === null)
    return [{ type: "IpAllocationFailed", data: { vmId, pool: pool.name, reason: "exhausted" } }];
  return [
    {
      type: "IpAllocated",
      data: {
        vmId,
        poolId: pool.poolId,
        pool: pool.name,
        address,
        prefixLength: pool.prefixLength,
        gateway: pool.gateway,
      },
    },
  ];
}

/**
 * The whole allocation, from the pool (locked) and the address it would hand out now, both read by
 * the shell before the VM's stream: a VM that holds its address gets it again and neither is used.
 */
export function decideAllocation(
  cmd: MessageOf<typeof AllocateIp>,
  state: VmAllocationState,
  pool: PoolSnapshot | null,
  free: string | null,
): AllocationEvent[] {
  const step = decideAllocate(cmd, state, pool);
  return step.next === "answer" ? step.events : decideTaken(cmd, step.pool, free);
}

/** Releasing what is not held is harmless and says nothing: a second release finds nothing to do. */
export function decideRelease(cmd: MessageOf<typeof ReleaseIp>, state: VmAllocationState): AllocationEvent[] {
  if (!state.held) return [];
  const { poolId, address } = state.held;
  return [{ type: "IpReleased", data: { vmId: cmd.data.vmId, poolId, address } }];
}

function failed(
  vmId: string,
  pool: string,
  reason: MessageOf<typeof IpAllocationFailed>["data"]["reason"],
): AllocationStep {
  return { next: "answer", events: [{ type: "IpAllocationFailed", data: { vmId, pool, reason } }] };
}
