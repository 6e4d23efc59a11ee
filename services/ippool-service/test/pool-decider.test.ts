import { isRefusal } from "@mikrom/eventstore/decider";
import { describe, expect, it } from "vitest";
import {
  decidePool,
  evolvePool,
  initialPoolState,
  type Pool,
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
  description: null as string | null,
};
const create: PoolCommand = { type: "CreatePool", data: definition };
const quiet = { others: [], allocated: 0 };
const fold = (events: PoolEvent[]): PoolState => events.reduce(evolvePool, initialPoolState);
const created = fold([{ type: "PoolCreated", data: definition }]);

const createdEvent: PoolEvent = { type: "PoolCreated", data: definition };
const deletedEvent: PoolEvent = { type: "PoolDeleted", data: { poolId } };
const updatedEvent = (
  changes: Omit<Extract<PoolEvent, { type: "PoolUpdated" }>["data"], "poolId">,
): PoolEvent => ({
  type: "PoolUpdated",
  data: { poolId, ...changes },
});
const poolWith = (changes: Partial<Pool> = {}): Pool => ({ ...definition, active: true, ...changes });
const live = (changes: Partial<Pool> = {}): PoolState => ({ status: "live", pool: poolWith(changes) });
const gone = (changes: Partial<Pool> = {}): PoolState => ({ status: "deleted", pool: poolWith(changes) });

/** A pool's history and the state it folds into: deleted is final, and an update only changes what it names. */
const folds: Array<[string, PoolEvent[], PoolState]> = [
  ["a created pool is live and active", [createdEvent], live()],
  [
    "an update renames, describes and deactivates",
    [createdEvent, updatedEvent({ name: "lab2", description: "x", active: false })],
    live({ name: "lab2", description: "x", active: false }),
  ],
  ["an update that names nothing changes nothing", [createdEvent, updatedEvent({})], live()],
  [
    "a description is cleared by null",
    [createdEvent, updatedEvent({ description: "x" }), updatedEvent({ description: null })],
    live(),
  ],
  [
    "a deactivated pool is activated again",
    [createdEvent, updatedEvent({ active: false }), updatedEvent({ active: true })],
    live(),
  ],
  ["a deleted pool keeps its last definition", [createdEvent, deletedEvent], gone()],
  [
    "an update after the delete does not bring the pool back",
    [createdEvent, deletedEvent, updatedEvent({ name: "again", active: true })],
    gone(),
  ],
  [
    "a second delete keeps the definition the first one kept",
    [
      createdEvent,
      updatedEvent({ name: "lab2" }),
      deletedEvent,
      updatedEvent({ name: "lab3" }),
      deletedEvent,
    ],
    gone({ name: "lab2" }),
  ],
  ["an update of a pool never created changes nothing", [updatedEvent({ name: "x" })], initialPoolState],
  ["a delete of a pool never created changes nothing", [deletedEvent], initialPoolState],
];

describe("a pool's history", () => {
  it.each(folds)("%s", (_, events, expected) => {
    expect(fold(events)).toEqual(expected);
  });
});

describe("creating a pool", () => {
  const conflict = {
    kind: "refusal",
    code: "conflict",
    reason: `pool ${poolId} exists with a different definition`,
  };
  /** Every field of the definition, changed under the same id: each makes it another pool. */
  it.each<[string, Partial<typeof definition>]>([
    ["name", { name: "lab2" }],
    ["cidr", { cidr: "10.9.0.0/24", gateway: "10.9.0.1", rangeStart: "10.9.0.2", rangeEnd: "10.9.0.254" }],
    ["gateway", { gateway: "10.8.0.254" }],
    ["rangeStart", { rangeStart: "10.8.0.3" }],
    ["rangeEnd", { rangeEnd: "10.8.0.253" }],
    ["description", { description: "changed" }],
  ])("a different %s under an existing id is a conflict", (_, change) => {
    const other: PoolCommand = { type: "CreatePool", data: { ...definition, ...change } };
    expect(decidePool(other, created, quiet)).toEqual(conflict);
  });

  it("an invalid definition under an existing id is a conflict too, not a validation error", () => {
    const other: PoolCommand = { type: "CreatePool", data: { ...definition, cidr: "10.8.0.0/33" } };
    expect(decidePool(other, created, quiet)).toEqual(conflict);
  });

  it("a valid definition creates an active pool", () => {
    const events = decidePool(create, initialPoolState, quiet);
    expect(events).toEqual([{ type: "PoolCreated", data: definition }]);
    expect(fold(events as PoolEvent[])).toEqual({ status: "live", pool: { ...definition, active: true } });
  });

  it("an invalid definition is refused with every issue", () => {
    const bad: PoolCommand = {
      type: "CreatePool",
      data: { ...definition, gateway: "10.8.0.9", rangeStart: "10.7.0.2" },
    };
    const gateway = "gateway 10.8.0.9 is inside the range 10.7.0.2–10.8.0.254";
    const start = "10.7.0.2 is outside the usable hosts of 10.8.0.0/24 (10.8.0.1–10.8.0.254)";
    expect(decidePool(bad, initialPoolState, quiet)).toEqual({
      kind: "refusal",
      code: "invalid",
      reason: `rangeStart: ${start}; gateway: ${gateway}`,
    });
  });

  it("the same definition again is a no-op, so the default pool can be created at every start", () => {
    expect(decidePool(create, created, quiet)).toEqual([]);
  });

  it("an id whose pool was deleted is not reused", () => {
    const deleted = fold([
      { type: "PoolCreated", data: definition },
      { type: "PoolDeleted", data: { poolId } },
    ]);
    expect(decidePool(create, deleted, quiet)).toEqual({
      kind: "refusal",
      code: "conflict",
      reason: `pool ${poolId} was deleted; use a new id`,
    });
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

  it("records a rename to a free name and a deactivation", () => {
    expect(decidePool(update({ name: "lab2", active: false }), created, quiet)).toEqual([
      { type: "PoolUpdated", data: { poolId, name: "lab2", active: false } },
    ]);
  });

  it("a name another pool has is a conflict, tied to the name field", () => {
    const result = decidePool(update({ name: "default" }), created, {
      others: [{ poolId: "pool-00000001", name: "default", cidr: "172.16.0.0/24" }],
      allocated: 0,
    });
    const message = 'a pool named "default" exists (pool-00000001)';
    expect(result).toEqual({
      kind: "refusal",
      code: "conflict",
      reason: `name: ${message}`,
    });
  });

  it("names only what it changes: no key for what the command left out or did not change", () => {
    expect(decidePool(update({ active: false }), created, quiet)).toStrictEqual([
      { type: "PoolUpdated", data: { poolId, active: false } },
    ]);
    expect(decidePool(update({ description: null, active: true }), created, quiet)).toStrictEqual([
      { type: "PoolUpdated", data: { poolId } },
    ]);
    expect(decidePool(update({ description: "x" }), created, quiet)).toStrictEqual([
      { type: "PoolUpdated", data: { poolId, description: "x" } },
    ]);
  });

  it("checks a name against the others only when it renames, and only against that name", () => {
    const others = {
      others: [{ poolId: "pool-00000001", name: "default", cidr: "172.16.0.0/24" }],
      allocated: 0,
    };
    expect(decidePool(update({ active: false }), created, others)).toStrictEqual([
      { type: "PoolUpdated", data: { poolId, active: false } },
    ]);
    expect(decidePool(update({ name: "lab2" }), created, others)).toStrictEqual([
      { type: "PoolUpdated", data: { poolId, name: "lab2" } },
    ]);
  });

  it.each<[string, PoolState]>([
    ["never created", initialPoolState],
    ["deleted", fold([createdEvent, deletedEvent])],
  ])("a pool %s is not found", (_, state) => {
    expect(decidePool(update({ active: false }), state, quiet)).toEqual({
      kind: "refusal",
      code: "not_found",
      reason: `pool ${poolId} does not exist`,
    });
  });
});

describe("deleting a pool", () => {
  const del: PoolCommand = { type: "DeletePool", data: { poolId } };

  it("an empty pool is deleted", () => {
    expect(decidePool(del, created, quiet)).toEqual([{ type: "PoolDeleted", data: { poolId } }]);
  });

  it("is refused while addresses are allocated, even one", () => {
    expect(decidePool(del, created, { others: [], allocated: 1 })).toEqual({
      kind: "refusal",
      code: "conflict",
      reason: 'pool "lab" has 1 allocated address(es); release them before deleting it',
    });
  });

  it("a deleted pool is gone: deleting it again is not found", () => {
    const deleted = evolvePool(created, { type: "PoolDeleted", data: { poolId } });
    const result = decidePool(del, deleted, quiet);
    expect(isRefusal(result) && result.code).toBe("not_found");
  });

  it("an unknown pool is not found", () => {
    expect(decidePool(del, initialPoolState, quiet)).toEqual({
      kind: "refusal",
      code: "not_found",
      reason: `pool ${poolId} does not exist`,
    });
  });

  it("begins absent", () => {
    expect(initialPoolState).toEqual({ status: "absent" });
  });
});
