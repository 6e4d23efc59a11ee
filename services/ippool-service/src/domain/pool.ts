import type {
  CreatePool,
  DeletePool,
  MessageOf,
  PoolCreated,
  PoolDeleted,
  PoolUpdated,
  UpdatePool,
} from "@mikrom/contracts";
import { type Refusal, refuse } from "@mikrom/eventstore/decider";
import { type ExistingPool, validatePool } from "./validation.ts";

export type PoolCommand =
  | MessageOf<typeof CreatePool>
  | MessageOf<typeof UpdatePool>
  | MessageOf<typeof DeletePool>;
export type PoolEvent =
  | MessageOf<typeof PoolCreated>
  | MessageOf<typeof PoolUpdated>
  | MessageOf<typeof PoolDeleted>;

export interface Pool {
  poolId: string;
  name: string;
  cidr: string;
  gateway: string;
  rangeStart: string;
  rangeEnd: string;
  description: string | null;
  active: boolean;
}

/** A pool's stream folded: never created, live, or deleted (its history stays; its id is not reused). */
export type PoolState =
  | { status: "absent" }
  | { status: "live"; pool: Pool }
  | { status: "deleted"; pool: Pool };

export const initialPoolState: PoolState = { status: "absent" };

/** What the decider needs beyond the pool's own stream, read by the shell in the same transaction. */
export interface PoolSurroundings {
  /** The other live pools (names and networks must not collide). */
  others: readonly ExistingPool[];
  /** Live allocations in this pool: a pool that holds addresses cannot be deleted. */
  allocated: number;
}

export function evolvePool(state: PoolState, event: PoolEvent): PoolState {
  switch (event.type) {
    case "PoolCreated":
      return { status: "live", pool: { ...event.data, active: true } };
    case "PoolUpdated": {
      if (state.status !== "live") return state;
      const { poolId: _, ...changes } = event.data;
      const pool = { ...state.pool };
      if (changes.name !== undefined) pool.name = changes.name;
      if (changes.description !== undefined) pool.description = changes.description;
      if (changes.active !== undefined) pool.active = changes.active;
      return { status: "live", pool };
    }
    case "PoolDeleted":
      return state.status === "live" ? { status: "deleted", pool: state.pool } : state;
  }
}

export function decidePool(
  cmd: PoolCommand,
  state: PoolState,
  around: PoolSurroundings,
): PoolEvent[] | Refusal {
  switch (cmd.type) {
    case "CreatePool": {
      const d = cmd.data;
      if (state.status === "deleted") return refuse("conflict", `pool ${d.poolId} was deleted; use a new id`);
      const checked = validatePool(d, around.others);
      if (state.status === "live") {
        // The same definition again (a retried request, or the default pool at every start) is a no-op.
        const p = state.pool;
        const normalizedCidr = checked.ok ? checked.normalized.cidr : d.cidr;
        const same =
          p.name === d.name &&
          p.cidr === normalizedCidr &&
          p.gateway === d.gateway &&
          p.rangeStart === d.rangeStart &&
          p.rangeEnd === d.rangeEnd &&
          p.description === d.description;
        return same ? [] : refuse("conflict", `pool ${d.poolId} exists with a different definition`);
      }
      if (!checked.ok) {
        return refuse("invalid", checked.issues.map((i) => `${i.field}: ${i.message}`).join("; "));
      }
      return [{ type: "PoolCreated", data: { ...d, cidr: checked.normalized.cidr } }];
    }
    case "UpdatePool": {
      const d = cmd.data;
      if (state.status !== "live") return refuse("not_found", `pool ${d.poolId} does not exist`);
      const p = state.pool;
      const changes: MessageOf<typeof PoolUpdated>["data"] = { poolId: d.poolId };
      if (d.name !== undefined && d.name !== p.name) {
        const taken = around.others.find((o) => o.name === d.name);
        if (taken) {
          const message = `a pool named "${d.name}" exists (${taken.poolId})`;
          return refuse("conflict", `name: ${message}`);
        }
        changes.name = d.name;
      }
      if (d.description !== undefined && d.description !== p.description) changes.description = d.description;
      if (d.active !== undefined && d.active !== p.active) changes.active = d.active;
      // Always an event, even when nothing changes: the caller waits for an answer to its command.
      return [{ type: "PoolUpdated", data: changes }];
    }
    case "DeletePool": {
      const d = cmd.data;
      if (state.status !== "live") return refuse("not_found", `pool ${d.poolId} does not exist`);
      if (around.allocated > 0) {
        return refuse(
          "conflict",
          `pool "${state.pool.name}" has ${around.allocated} allocated address(es); release them before deleting it`,
        );
      }
      return [{ type: "PoolDeleted", data: { poolId: d.poolId } }];
    }
  }
}
