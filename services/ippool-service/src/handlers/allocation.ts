import type { AllocateIp, MessageOf, ReleaseIp } from "@mikrom/contracts";
import type { Stream } from "@mikrom/eventstore";
import {
  decideAllocation,
  decideRelease,
  evolveAllocation,
  initialVmAllocation,
  poolNameOf,
  type VmAllocationState,
} from "../domain/allocation.ts";
import { nextFreeAddress } from "../store/addresses.ts";
import { type IppoolSession, vmStreamId } from "../store/event-store.ts";
import { lockVm } from "../store/locks.ts";
import { lockHeldPool, lockPoolByName } from "../store/pools.ts";
import type { IppoolEvent } from "../store/projection.ts";

/** A VM's allocations are one stream: they fold into what it holds. */
const allocationStream = (vmId: string): Stream<VmAllocationState, IppoolEvent> => ({
  id: vmStreamId(vmId),
  initialState: initialVmAllocation,
  evolve: (state, e) =>
    e.type === "IpAllocated" || e.type === "IpReleased" || e.type === "IpAllocationFailed"
      ? evolveAllocation(state, e)
      : state,
});

/**
 * AllocateIp, in the caller's transaction: lock the VM, lock the pool it names and read the address
 * the pool would hand out now, then Session.handle decides (the same address again for a VM that
 * holds one) and appends; the projection takes the address.
 */
export async function allocateIp(session: IppoolSession, cmd: MessageOf<typeof AllocateIp>) {
  const { vmId } = cmd.data;
  await lockVm(session.db, vmId);
  const pool = await lockPoolByName(session.db, poolNameOf(cmd));
  const free = pool?.active ? await nextFreeAddress(session.db, pool.poolId) : null;
  return session.handle(allocationStream(vmId), (state) => decideAllocation(cmd, state, pool, free));
}

/** ReleaseIp, in the caller's transaction: the address goes back to its pool; nothing held, nothing done. */
export async function releaseIp(session: IppoolSession, cmd: MessageOf<typeof ReleaseIp>) {
  const { vmId } = cmd.data;
  await lockVm(session.db, vmId);
  await lockHeldPool(session.db, vmId);
  return session.handle(allocationStream(vmId), (state) => decideRelease(cmd, state));
}
