import { type CommandRejected, type DataOf, IPPOOL_SERVICE, type Names } from "@mikrom/contracts";
import {
  decidePool,
  evolvePool,
  initialPoolState,
  type PoolCommand,
  type PoolEvent,
} from "../domain/pool.ts";
import { isRefusal, type Refusal } from "../domain/refusal.ts";
import { lockPoolCatalog } from "../store/locks.ts";
import { livePools, lockPoolById } from "../store/pools.ts";
import type { IppoolEvent } from "../store/projection.ts";
import { poolStreamId, type UnitOfWork } from "./unit-of-work.ts";

/**
 * CreatePool / UpdatePool / DeletePool, in the caller's transaction. A refusal is not an error:
 * it is sent as CommandRejected on `<ns>.evt.ippool.<poolId>.CommandRejected` (through the outbox,
 * not into the pool's stream: it is an answer, not a fact about the pool).
 */
export async function handlePoolCommand(
  uow: UnitOfWork,
  names: Names,
  cmd: PoolCommand,
): Promise<PoolEvent[] | Refusal> {
  await lockPoolCatalog(uow.db);
  const poolId = cmd.data.poolId;
  const { version, events } = await uow.readStream(poolStreamId(poolId));
  const state = events.filter(isPoolEvent).reduce(evolvePool, initialPoolState);
  const others = await livePools(uow.db, poolId);
  const allocated = cmd.type === "DeletePool" ? ((await lockPoolById(uow.db, poolId))?.allocated ?? 0) : 0;
  const decision = decidePool(cmd, state, { others, allocated });
  if (isRefusal(decision)) {
    const data: DataOf<typeof CommandRejected> = {
      entityId: poolId,
      command: cmd.type,
      code: decision.code,
      reason: decision.reason,
    };
    await uow.send([
      {
        subject: names.event(IPPOOL_SERVICE, poolId, "CommandRejected"),
        type: "CommandRejected",
        schemaVersion: 1,
        data,
      },
    ]);
    return decision;
  }
  if (decision.length > 0) await uow.append(poolStreamId(poolId), decision, { expectedVersion: version });
  return decision;
}

function isPoolEvent(e: IppoolEvent): e is PoolEvent {
  return e.type === "PoolCreated" || e.type === "PoolUpdated" || e.type === "PoolDeleted";
}
