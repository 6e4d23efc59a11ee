import type { AllocateIp, MessageOf, ReleaseIp } from "@mikrom/contracts";
import {
  type AllocationEvent,
  decideAllocate,
  decideRelease,
  decideTaken,
  evolveAllocation,
  initialVmAllocation,
  poolNameOf,
  type VmAllocationState,
} from "../domain/allocation.ts";
import { nextFreeAddress } from "../store/addresses.ts";
import { lockVm } from "../store/locks.ts";
import { lockPoolById, lockPoolByName } from "../store/pools.ts";
import type { IppoolEvent } from "../store/projection.ts";
import { type UnitOfWork, vmStreamId } from "./unit-of-work.ts";

async function loadVm(uow: UnitOfWork, vmId: string): Promise<{ state: VmAllocationState; version: number }> {
  await lockVm(uow.db, vmId);
  const { version, events } = await uow.readStream(vmStreamId(vmId));
  const state = events.filter(isAllocationEvent).reduce(evolveAllocation, initialVmAllocation);
  return { state, version };
}

/**
 * AllocateIp, in the caller's transaction: lock the VM, read its stream, and when it holds nothing
 * lock the pool and look at the next free address; decide; append (the projection takes the
 * address). Returns what was appended: IpAllocated (new, or the same again) or IpAllocationFailed.
 */
export async function allocateIp(
  uow: UnitOfWork,
  cmd: MessageOf<typeof AllocateIp>,
): Promise<AllocationEvent[]> {
  const { state, version } = await loadVm(uow, cmd.data.vmId);
  const pool = state.held ? null : await lockPoolByName(uow.db, poolNameOf(cmd));
  const step = decideAllocate(cmd, state, pool);
  const events =
    step.next === "answer"
      ? step.events
      : decideTaken(cmd, step.pool, await nextFreeAddress(uow.db, step.pool.poolId));
  await uow.append(vmStreamId(cmd.data.vmId), events, { expectedVersion: version });
  return events;
}

/** ReleaseIp, in the caller's transaction: the address goes back to its pool; nothing held, nothing done. */
export async function releaseIp(
  uow: UnitOfWork,
  cmd: MessageOf<typeof ReleaseIp>,
): Promise<AllocationEvent[]> {
  const { state, version } = await loadVm(uow, cmd.data.vmId);
  const events = decideRelease(cmd, state);
  if (events.length === 0) return events;
  if (state.held) await lockPoolById(uow.db, state.held.poolId);
  await uow.append(vmStreamId(cmd.data.vmId), events, { expectedVersion: version });
  return events;
}

function isAllocationEvent(e: IppoolEvent): e is AllocationEvent {
  return e.type === "IpAllocated" || e.type === "IpReleased" || e.type === "IpAllocationFailed";
}
