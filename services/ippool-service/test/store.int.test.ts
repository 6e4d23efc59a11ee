import { describe, expect, test } from "@mikrom/testkit";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Pool } from "../src/domain/pool.ts";
import { nextFreeAddress, recordAllocation, recordRelease } from "../src/store/addresses.ts";
import { lockVm } from "../src/store/locks.ts";
import { migrateIppool } from "../src/store/migrate.ts";
import {
  insertPool,
  livePools,
  lockPoolById,
  lockPoolByName,
  markPoolDeleted,
  updatePool,
} from "../src/store/pools.ts";
import { addressHistory, getPool, poolStats, vmAllocations } from "../src/store/reads.ts";
import type { IppoolTables } from "../src/store/tables.ts";
import { openStore, type TestStore } from "./support/pg.ts";

const at = new Date("2026-01-01T00:00:00Z");
const defaultPool: Pool = {
  poolId: "pool-00000001",
  name: "default",
  cidr: "172.16.0.0/24",
  gateway: "172.16.0.1",
  rangeStart: "172.16.0.2",
  rangeEnd: "172.16.0.254",
  description: null,
  active: true,
};
const vm = (i: number): string => `srv-${i.toString(16).padStart(8, "0")}`;

/** What the allocation handler and the projection do in one transaction, minus the events. */
async function allocate(store: TestStore, poolName: string, vmId: string, when = at): Promise<string | null> {
  return store.tx(async (tx) => {
    await lockVm(tx, vmId);
    const pool = await lockPoolByName(tx, poolName);
    if (!pool) throw new Error("no pool");
    const address = await nextFreeAddress(tx, pool.poolId);
    if (address) await recordAllocation(tx, { poolId: pool.poolId, vmId, address, at: when });
    return address;
  });
}

async function release(
  store: TestStore,
  poolId: string,
  vmId: string,
  address: string,
  when: Date,
): Promise<void> {
  await store.tx(async (tx) => {
    await lockPoolById(tx, poolId);
    await recordRelease(tx, { poolId, vmId, address, at: when });
  });
}

/** PostgreSQL's error codes for the constraints below. */
const PgCode = {
  UniqueViolation: "23505",
  ExclusionViolation: "23P01",
  CheckViolation: "23514",
} as const;

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return "no error";
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

describe("allocation store", () => {
  test("migrations run once however many instances start together", async ({ db }) => {
    const dbs = [1, 2, 3].map(
      () =>
        new Kysely<IppoolTables>({
          dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }),
        }),
    );
    try {
      await Promise.all(dbs.map((k) => migrateIppool(k)));
      await migrateIppool(dbs[0]!);
      const { rows } = await dbs[0]!.executeQuery<{ n: number }>({
        sql: "SELECT count(*)::int AS n FROM ippool_migration",
        parameters: [],
        query: { kind: "RawNode" } as never,
        queryId: { queryId: "q" },
      });
      expect(rows[0]?.n).toBe(1);
    } finally {
      await Promise.all(dbs.map((k) => k.destroy()));
    }
  });

  test("300 concurrent allocations on 253 addresses give exactly 253 distinct addresses", async ({ db }) => {
    const store = await openStore(db.url, 16);
    try {
      await store.tx((tx) => insertPool(tx, defaultPool, at));
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => allocate(store, "default", vm(i))),
      );
      const given = results.filter((a): a is string => a !== null);
      expect(given).toHaveLength(253);
      expect(new Set(given).size).toBe(253);
      expect(results.filter((a) => a === null)).toHaveLength(47);
      expect(given.every((a) => /^172\.16\.0\.(\d+)$/.test(a) && a !== "172.16.0.1")).toBe(true);
      const [stats] = await store.tx((tx) => poolStats(tx, defaultPool.poolId));
      expect(stats).toMatchObject({ total: 253, allocated: 253, available: 0, usagePercent: 100 });
    } finally {
      await store.close();
    }
  });

  test("the database refuses a second live holder of an address and a second live address for a VM", async ({
    db,
  }) => {
    const store = await openStore(db.url);
    try {
      await store.tx((tx) => insertPool(tx, defaultPool, at));
      const address = await allocate(store, "default", vm(1));
      const insert = (vmId: string, addr: string) =>
        store.db
          .insertInto("ippool_allocations")
          .values({ pool_id: defaultPool.poolId, vm_id: vmId, address: addr, allocated_at: at })
          .execute();
      expect(await codeOf(insert(vm(2), address!))).toBe(PgCode.UniqueViolation);
      expect(await codeOf(insert(vm(1), "172.16.0.99"))).toBe(PgCode.UniqueViolation);
    } finally {
      await store.close();
    }
  });

  test("the database refuses overlapping pools, a reused name and a range outside the network", async ({
    db,
  }) => {
    const store = await openStore(db.url);
    try {
      await store.tx((tx) => insertPool(tx, defaultPool, at));
      const other = { ...defaultPool, poolId: "pool-00000002", name: "other" };
      expect(await codeOf(store.tx((tx) => insertPool(tx, { ...other, cidr: "172.16.0.0/16" }, at)))).toBe(
        PgCode.ExclusionViolation,
      );
      const elsewhere = {
        ...other,
        cidr: "10.0.0.0/24",
        gateway: "10.0.0.1",
        rangeStart: "10.0.0.2",
        rangeEnd: "10.0.0.9",
      };
      expect(await codeOf(store.tx((tx) => insertPool(tx, { ...elsewhere, name: "default" }, at)))).toBe(
        PgCode.UniqueViolation,
      );
      expect(await codeOf(store.tx((tx) => insertPool(tx, { ...elsewhere, rangeEnd: "10.0.1.9" }, at)))).toBe(
        PgCode.CheckViolation,
      );
      expect(await codeOf(store.tx((tx) => insertPool(tx, { ...elsewhere, gateway: "10.0.0.5" }, at)))).toBe(
        PgCode.CheckViolation,
      );
      // Once the default pool is deleted its network and name are free again.
      await store.tx((tx) => markPoolDeleted(tx, defaultPool.poolId, at));
      await store.tx((tx) => insertPool(tx, { ...other, name: "default" }, at));
      expect((await store.tx((tx) => livePools(tx))).map((p) => p.poolId)).toEqual(["pool-00000002"]);
    } finally {
      await store.close();
    }
  });

  test("a released address is handed out again, oldest released first, and its history kept", async ({
    db,
  }) => {
    const store = await openStore(db.url);
    const tiny: Pool = {
      ...defaultPool,
      cidr: "10.9.0.0/29",
      gateway: "10.9.0.1",
      rangeStart: "10.9.0.2",
      rangeEnd: "10.9.0.4",
    };
    try {
      await store.tx((tx) => insertPool(tx, tiny, at));
      const first = [await allocate(store, "default", vm(1)), await allocate(store, "default", vm(2))];
      expect(first).toEqual(["10.9.0.2", "10.9.0.3"]);
      await release(store, tiny.poolId, vm(2), "10.9.0.3", new Date("2026-01-01T00:01:00Z"));
      await release(store, tiny.poolId, vm(1), "10.9.0.2", new Date("2026-01-01T00:02:00Z"));
      // the never-used .4 waits: addresses given back come first, the oldest of them first
      expect(await allocate(store, "default", vm(3), new Date("2026-01-01T00:03:00Z"))).toBe("10.9.0.3");
      expect(await allocate(store, "default", vm(4))).toBe("10.9.0.2");
      expect(await allocate(store, "default", vm(5))).toBe("10.9.0.4");
      expect(await allocate(store, "default", vm(6))).toBeNull();

      const history = await store.tx((tx) => addressHistory(tx, "10.9.0.3"));
      expect(history.map((h) => [h.vmId, h.releasedAt])).toEqual([
        [vm(3), null],
        [vm(2), "2026-01-01T00:01:00.000Z"],
      ]);
      const ofVm = await store.tx((tx) => vmAllocations(tx, vm(2)));
      expect(ofVm).toEqual([
        {
          vmId: vm(2),
          poolId: tiny.poolId,
          pool: "default",
          address: "10.9.0.3",
          allocatedAt: "2026-01-01T00:00:00.000Z",
          releasedAt: "2026-01-01T00:01:00.000Z",
        },
      ]);
    } finally {
      await store.close();
    }
  });

  test("releasing an allocation that is not live is an error, not a silent second free", async ({ db }) => {
    const store = await openStore(db.url);
    try {
      await store.tx((tx) => insertPool(tx, defaultPool, at));
      const address = (await allocate(store, "default", vm(1)))!;
      await release(store, defaultPool.poolId, vm(1), address, at);
      await expect(release(store, defaultPool.poolId, vm(1), address, at)).rejects.toThrow(
        /no live allocation/,
      );
      const [stats] = await store.tx((tx) => poolStats(tx));
      expect(stats).toMatchObject({ allocated: 0, available: 253 });
    } finally {
      await store.close();
    }
  });

  test("updates change name, description and active, and show in the view", async ({ db }) => {
    const store = await openStore(db.url);
    try {
      await store.tx((tx) => insertPool(tx, defaultPool, at));
      await store.tx((tx) => updatePool(tx, defaultPool.poolId, { description: "lab", active: false }, at));
      const view = await store.tx((tx) => getPool(tx, defaultPool.poolId));
      expect(view).toMatchObject({ name: "default", description: "lab", active: false, prefixLength: 24 });
      await store.tx((tx) => updatePool(tx, defaultPool.poolId, { description: null }, at));
      expect((await store.tx((tx) => getPool(tx, defaultPool.poolId)))?.description).toBeNull();
    } finally {
      await store.close();
    }
  });
});
