import type { Stream } from "@mikrom/eventstore";
import {
  decidePool,
  evolvePool,
  initialPoolState,
  type PoolCommand,
  type PoolState,
} from "../domain/pool.ts";
import { type IppoolSession, poolStreamId } from "../store/event-store.ts";
import { lockPoolCatalog } from "../store/locks.ts";
import { livePools, lockPoolById } from "../store/pools.ts";
import type { IppoolEvent } from "../store/projection.ts";

/** A pool's stream: its definition's events fold into the pool's state. */
export const poolStream = (poolId: string): Stream<PoolState, IppoolEvent> => ({
  id: poolStreamId(poolId),
  initialState: initialPoolState,
  evolve: (state, e) =>
    e.type === "PoolCreated" || e.type === "PoolUpdated" || e.type === "PoolDeleted"
      ? evolvePool(state, e)
      : state,
});

/**
 * CreatePool / UpdatePool / DeletePool, in the caller's transaction: the other pools (names,
 * overlaps) and the pool's allocations are read under the catalog lock, then Session.handle decides.
 * A refusal is answered as CommandRejected on `<ns>.evt.ippool.<poolId>.CommandRejected` by the
 * event store (not into the pool's stream: it is an answer, not a fact about the pool).
 */
export async function handlePoolCommand(session: IppoolSession, cmd: PoolCommand) {
  await lockPoolCatalog(session.db);
  const poolId = cmd.data.poolId;
  const others = await livePools(session.db, poolId);
  const allocated =
    cmd.type === "DeletePool" ? ((await lockPoolById(session.db, poolId))?.allocated ?? 0) : 0;
  return session.handle(poolStream(poolId), (state) => decidePool(cmd, state, { others, allocated }), {
    command: cmd.type,
  });
}
