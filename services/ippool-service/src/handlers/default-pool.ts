import type { Refusal } from "@mikrom/eventstore";
import { DEFAULT_POOL_NAME } from "../domain/allocation.ts";
import type { IppoolStore } from "../store/event-store.ts";
import { getPoolByName } from "../store/reads.ts";
import { handlePoolCommand } from "./pools.ts";

/** The default pool's id is fixed, so instances starting together all target one stream: one wins. */
export const DEFAULT_POOL_ID = "pool-00000001";

/**
 * Creates the `default` pool from configuration on first start; at every later start (or in a
 * race between instances) it finds the pool and does nothing. A pool named `default` that differs
 * from the configuration is kept: configuration seeds the pool, it does not redefine it.
 */
export async function ensureDefaultPool(
  store: IppoolStore,
  layout: { cidr: string; gateway: string; rangeStart: string; rangeEnd: string },
): Promise<"created" | "found" | Refusal> {
  if (await getPoolByName(store.db, DEFAULT_POOL_NAME)) return "found";
  const result = await store.transaction((session) =>
    handlePoolCommand(session, {
      type: "CreatePool",
      data: {
        poolId: DEFAULT_POOL_ID,
        name: DEFAULT_POOL_NAME,
        description: "created at first start",
        ...layout,
      },
    }),
  );
  if (result.outcome === "refused") return result.refusal;
  return result.events.length > 0 ? "created" : "found";
}
