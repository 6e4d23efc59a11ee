import { isRefusal } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import {
  decidePool,
  evolvePool,
  initialPoolState,
  type PoolCommand,
  type PoolEvent,
  type PoolState,
} from "../src/domain/pool.ts";

const poolId = "pool-0000000a";
const definition = {
  poolId,
  name: "lab",
  cidr: "10.8.0.0/24",
  gateway: "10.8.0.1",
  rangeStart: "10.8.0.2",
  rangeEnd: "10.8.0.254",
  description: null,
};
const create: PoolCommand = { type: "CreatePool", data: definition };
const quiet = { others: [], allocated: 0 };
const fold = (events: PoolEvent[]): PoolState => events.reduce(evolvePool, initialPoolState);
const created = fold([{ type: "PoolCreated", data: definition }]);

describe("creating a pool", () => {
  it("a valid definition creates an active pool", () => {
    const events = decidePool(create, initialPoolState, quiet);
    expect(events).toEqual([{ type: "PoolCreated", data: definition }]);
    expect(fold(events as PoolEvent[])).toEqual({ status: "live", pool: { ...definition, active: true } });
  });

  it("an invalid definition is refused with every issue", () => {
    const bad: PoolCommand = { type: "CreatePool", data: { ...definition, gateway: "10.8.0.9" } };
    const result = decidePool(bad, initialPoolState, quiet);
    expect(isRefusal(result) && result.code).toBe("invalid");
    expect(isRefusal(result) && result.reason).toMatch(/^gateway: /);
  });

  it("the same definition again is a no-op, so the default pool can be created at every start", () => {
    expect(decidePool(create, created, quiet)).toEqual([]);
  });

  it("a different definition under an existing id is a conflict", () => {
    const other: PoolCommand = { type: "CreatePool", data: { ...definition, description: "changed" } };
    const result = decidePool(other, created, quiet);
    expect(isRefusal(result) && result.code).toBe("conflict");
  });

  it("an id whose pool was deleted is not reused", () => {
    const deleted = fold([
      { type: "PoolCreated", data: definition },
      { type: "PoolDeleted", data: { poolId } },
    ]);
    const result = decidePool(create, deleted, quiet);
    expect(isRefusal(result) && result.reason).toMatch(/was deleted/);
  });

  it("a network overlapping another pool is refused", () => {
    const result = decidePool(create, initialPoolState, {
      others: [{ poolId: "pool-0000000b", name: "b", cidr: "10.8.0.128/25" }],
      allocated: 0,
    });
    expect(isRefusal(result) && result.reason).toContain('overlaps pool "b"');
  });
});

describe("updating a pool", () => {
  const update = (
    data: Omit<Extract<PoolCommand, { type: "UpdatePool" }>["data"], "poolId">,
  ): PoolCommand => ({
    type: "UpdatePool",
    data: { poolId, ...data },
  });

  it("records only what changes", () => {
    expect(decidePool(update({ name: "lab", description: "x", active: true }), created, quiet)).toEqual([
      { type: "PoolUpdated", data: { poolId, description: "x" } },
    ]);
  });

  it("an update that changes nothing still answers, with nothing changed", () => {
    expect(decidePool(update({ name: "lab" }), created, quiet)).toEqual([
      { type: "PoolUpdated", data: { poolId } },
    ]);
  });

  it("deactivating and renaming fold into the state", () => {
    const events = decidePool(update({ name: "lab2", active: false }), created, quiet) as PoolEvent[];
    const state = events.reduce(evolvePool, created);
    expect(state.status === "live" && [state.pool.name, state.pool.active]).toEqual(["lab2", false]);
  });

  it("a name another pool has is a conflict", () => {
    const result = decidePool(update({ name: "default" }), created, {
      others: [{ poolId: "pool-00000001", name: "default", cidr: "172.16.0.0/24" }],
      allocated: 0,
    });
    expect(isRefusal(result) && result.code).toBe("conflict");
  });

  it("an unknown pool is not found", () => {
    const result = decidePool(update({ active: false }), initialPoolState, quiet);
    expect(isRefusal(result) && result.code).toBe("not_found");
  });
});

describe("deleting a pool", () => {
  const del: PoolCommand = { type: "DeletePool", data: { poolId } };

  it("an empty pool is deleted", () => {
    expect(decidePool(del, created, quiet)).toEqual([{ type: "PoolDeleted", data: { poolId } }]);
  });

  it("is refused while addresses are allocated", () => {
    const result = decidePool(del, created, { others: [], allocated: 3 });
    expect(isRefusal(result) && result.reason).toBe(
      'pool "lab" has 3 allocated address(es); release them before deleting it',
    );
  });

  it("a deleted pool is gone: deleting it again is not found", () => {
    const deleted = evolvePool(created, { type: "PoolDeleted", data: { poolId } });
    const result = decidePool(del, deleted, quiet);
    expect(isRefusal(result) && result.code).toBe("not_found");
  });

  it("an unknown pool is not found", () => {
    const result = decidePool(del, initialPoolState, quiet);
    expect(isRefusal(result) && result.code).toBe("not_found");
  });
});
