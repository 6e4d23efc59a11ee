import { randomUUID } from "node:crypto";
import type { PoolStats } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { handleCommand, type IppoolCommand } from "../src/handlers/commands.ts";
import { DEFAULT_POOL_ID, ensureDefaultPool } from "../src/handlers/default-pool.ts";
import { ippoolProjection } from "../src/store/projection.ts";
import { addressHistory, poolStats, vmAllocations } from "../src/store/reads.ts";
import { inParallel } from "./support/parallel.ts";
import { openTestStore, outbox } from "./support/store.ts";

/** What a handled command decided (its events), or its refusal; undefined for a duplicate. */
function answerOf(once: Awaited<ReturnType<typeof handleCommand>>) {
  if (once.duplicate) return undefined;
  return once.result.outcome === "refused" ? once.result.refusal : once.result.decided;
}

const layout = {
  cidr: "172.16.0.0/24",
  gateway: "172.16.0.1",
  rangeStart: "172.16.0.2",
  rangeEnd: "172.16.0.254",
};
const vm = (i: number): string => `srv-${i.toString(16).padStart(8, "0")}`;
const allocate = (i: number, pool?: string): IppoolCommand => ({
  type: "AllocateIp",
  data: pool ? { vmId: vm(i), pool } : { vmId: vm(i) },
});
const release = (i: number): IppoolCommand => ({ type: "ReleaseIp", data: { vmId: vm(i) } });

type Outcome = { vmId: string; address?: string; reason?: string };

function outcomes(entries: Awaited<ReturnType<typeof outbox>>): Outcome[] {
  return entries
    .filter((e) => e.type === "IpAllocated" || e.type === "IpAllocationFailed")
    .map((e) =>
      e.type === "IpAllocated"
        ? { vmId: String(e.data.vmId), address: String(e.data.address) }
        : { vmId: String(e.data.vmId), reason: String(e.data.reason) },
    );
}

describe("command handlers on the event store", () => {
  test("300 concurrent allocations, then duplicates, give 253 distinct addresses and 47 exhausted", {
    timeout: 90_000,
  }, async ({ db }) => {
    const { store } = await openTestStore(db.url, 8);
    try {
      await ensureDefaultPool(store, layout);
      const ids = Array.from({ length: 300 }, () => randomUUID());
      await inParallel(ids, 8, (id, i) => handleCommand(store, id, allocate(i)));

      const first = outcomes(await outbox(store));
      const given = first.filter((o) => o.address);
      expect(given).toHaveLength(253);
      expect(new Set(given.map((o) => o.address)).size).toBe(253);
      expect(first.filter((o) => o.reason === "exhausted")).toHaveLength(47);

      // The same messages again (redelivery): the inbox absorbs them, nothing new is said.
      const again = await inParallel(ids, 8, (id, i) => handleCommand(store, id, allocate(i)));
      expect(again.every((r) => r.duplicate)).toBe(true);
      expect(outcomes(await outbox(store))).toHaveLength(300);

      // The same commands under new message ids: each VM that holds an address hears the same one.
      await inParallel(ids, 8, (_, i) => handleCommand(store, randomUUID(), allocate(i)));
      const all = outcomes(await outbox(store));
      const byVm = new Map<string, Set<string>>();
      for (const o of all.filter((x) => x.address))
        byVm.set(o.vmId, (byVm.get(o.vmId) ?? new Set()).add(o.address!));
      expect([...byVm.values()].every((s) => s.size === 1)).toBe(true);
      const holders = new Map<string, string>();
      for (const [vmId, [address]] of [...byVm].map(([v, s]) => [v, [...s]] as const)) {
        expect(holders.get(address!)).toBeUndefined();
        holders.set(address!, vmId);
      }
      expect(holders.size).toBe(253);
      const [stats] = await poolStats(store.db, DEFAULT_POOL_ID);
      expect(stats).toMatchObject<Partial<PoolStats>>({
        total: 253,
        allocated: 253,
        available: 0,
        usagePercent: 100,
      });
    } finally {
      await store.close();
    }
  });

  test("release then allocate again reuses the address; releasing twice is harmless", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    const tiny = {
      poolId: "pool-0000000f",
      name: "tiny",
      cidr: "10.1.0.0/30",
      gateway: "10.1.0.1",
      rangeStart: "10.1.0.2",
      rangeEnd: "10.1.0.2",
      description: null,
    };
    try {
      await handleCommand(store, randomUUID(), { type: "CreatePool", data: tiny });
      await handleCommand(store, randomUUID(), allocate(1, "tiny"));
      await handleCommand(store, randomUUID(), allocate(2, "tiny"));
      const r1 = await handleCommand(store, randomUUID(), release(1));
      const r2 = await handleCommand(store, randomUUID(), release(1));
      expect(answerOf(r1)).toEqual([
        { type: "IpReleased", data: { vmId: vm(1), poolId: tiny.poolId, address: "10.1.0.2" } },
      ]);
      expect(answerOf(r2)).toEqual([]);
      await handleCommand(store, randomUUID(), allocate(2, "tiny"));
      expect(outcomes(await outbox(store))).toEqual([
        { vmId: vm(1), address: "10.1.0.2" },
        { vmId: vm(2), reason: "exhausted" },
        { vmId: vm(2), address: "10.1.0.2" },
      ]);
      const history = await addressHistory(store.db, "10.1.0.2");
      expect(history.map((h) => [h.vmId, h.releasedAt === null])).toEqual([
        [vm(2), true],
        [vm(1), false],
      ]);
      expect((await vmAllocations(store.db, vm(1))).map((a) => a.address)).toEqual(["10.1.0.2"]);
    } finally {
      await store.close();
    }
  });

  test("allocation names the pool it could not use: not found, inactive", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    try {
      await ensureDefaultPool(store, layout);
      await handleCommand(store, randomUUID(), allocate(1, "nope"));
      await handleCommand(store, randomUUID(), {
        type: "UpdatePool",
        data: { poolId: DEFAULT_POOL_ID, active: false },
      });
      await handleCommand(store, randomUUID(), allocate(2));
      expect(outcomes(await outbox(store))).toEqual([
        { vmId: vm(1), reason: "pool_not_found" },
        { vmId: vm(2), reason: "pool_inactive" },
      ]);
    } finally {
      await store.close();
    }
  });

  test("every invalid pool definition is rejected with its reason, on the pool's subject", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    try {
      await ensureDefaultPool(store, layout);
      const base = {
        name: "lab",
        cidr: "10.8.0.0/24",
        gateway: "10.8.0.1",
        rangeStart: "10.8.0.2",
        rangeEnd: "10.8.0.254",
        description: null,
      };
      const cases: Array<[Partial<typeof base>, string]> = [
        [{ cidr: "10.8.0.0/33" }, "prefix length must be 0-32"],
        [{ cidr: "10.8.0.0/8" }, "pools must be between /16 and /30"],
        [{ gateway: "10.9.0.1" }, "gateway 10.9.0.1 is outside the network 10.8.0.0/24"],
        [{ gateway: "10.8.0.7" }, "gateway 10.8.0.7 is inside the range 10.8.0.2–10.8.0.254"],
        [{ rangeEnd: "10.8.1.3" }, "10.8.1.3 is outside the usable hosts of 10.8.0.0/24"],
        [{ rangeStart: "10.8.0.200", rangeEnd: "10.8.0.100" }, "range is reversed"],
        [
          {
            cidr: "172.16.0.0/16",
            gateway: "172.16.200.1",
            rangeStart: "172.16.200.2",
            rangeEnd: "172.16.200.9",
          },
          'overlaps pool "default"',
        ],
        [{ name: "default" }, 'a pool named "default" exists'],
      ];
      for (const [i, [change]] of cases.entries()) {
        const poolId = `pool-${(0x100 + i).toString(16).padStart(8, "0")}`;
        await handleCommand(store, randomUUID(), {
          type: "CreatePool",
          data: { ...base, ...change, poolId },
        });
      }
      const rejected = (await outbox(store)).filter((e) => e.type === "CommandRejected");
      expect(rejected).toHaveLength(cases.length);
      rejected.forEach((r, i) => {
        expect(r.subject).toBe(
          `t.evt.ippool.pool-${(0x100 + i).toString(16).padStart(8, "0")}.CommandRejected`,
        );
        expect(r.data).toMatchObject({ command: "CreatePool", code: "invalid" });
        expect(String(r.data.reason)).toContain(cases[i]![1]);
      });
    } finally {
      await store.close();
    }
  });

  test("a pool with allocated addresses cannot be deleted; once empty it can", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    try {
      await ensureDefaultPool(store, layout);
      await handleCommand(store, randomUUID(), allocate(1));
      const del: IppoolCommand = { type: "DeletePool", data: { poolId: DEFAULT_POOL_ID } };
      const refused = await handleCommand(store, randomUUID(), del);
      expect(answerOf(refused)).toMatchObject({
        code: "conflict",
        reason: 'pool "default" has 1 allocated address(es); release them before deleting it',
      });
      await handleCommand(store, randomUUID(), release(1));
      const deleted = await handleCommand(store, randomUUID(), del);
      expect(answerOf(deleted)).toEqual([{ type: "PoolDeleted", data: { poolId: DEFAULT_POOL_ID } }]);
      expect(await poolStats(store.db)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  test("instances creating the default pool together create it once", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    try {
      await Promise.all([1, 2, 3, 4].map(() => ensureDefaultPool(store, layout)));
      await ensureDefaultPool(store, layout);
      const created = (await outbox(store)).filter((e) => e.type === "PoolCreated");
      expect(created.map((e) => e.subject)).toEqual([`t.evt.ippool.${DEFAULT_POOL_ID}.PoolCreated`]);
    } finally {
      await store.close();
    }
  });

  test("the read model rebuilt from the events equals the one written inline", async ({ db }) => {
    const { store } = await openTestStore(db.url);
    try {
      await ensureDefaultPool(store, layout);
      for (let i = 0; i < 20; i++) await handleCommand(store, randomUUID(), allocate(i));
      for (let i = 0; i < 20; i += 3) await handleCommand(store, randomUUID(), release(i));
      for (let i = 20; i < 25; i++) await handleCommand(store, randomUUID(), allocate(i));
      const snapshot = async () => ({
        stats: await poolStats(store.db),
        vms: await Promise.all(Array.from({ length: 25 }, (_, i) => vmAllocations(store.db, vm(i)))),
      });
      const before = await snapshot();
      await store.rebuild(ippoolProjection);
      const after = await snapshot();
      expect(after.stats).toEqual(before.stats);
      expect(after.vms.map((v) => v.map((a) => [a.address, a.releasedAt === null]))).toEqual(
        before.vms.map((v) => v.map((a) => [a.address, a.releasedAt === null])),
      );
    } finally {
      await store.close();
    }
  });
});
