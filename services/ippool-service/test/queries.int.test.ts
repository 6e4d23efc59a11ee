import { randomUUID } from "node:crypto";
import { parse, type QueryDef } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { handleCommand } from "../src/handlers/commands.ts";
import { DEFAULT_POOL_ID, ensureDefaultPool } from "../src/handlers/default-pool.ts";
import { ippoolQueryHandlers } from "../src/handlers/queries.ts";
import { openTestStore } from "./support/store.ts";

const layout = {
  cidr: "172.16.0.0/24",
  gateway: "172.16.0.1",
  rangeStart: "172.16.0.2",
  rangeEnd: "172.16.0.254",
};

describe("queries", () => {
  test("answer pools, usage, suggestions, validation and provenance in their contract's shape", async ({
    db,
  }) => {
    const { store } = await openTestStore(db.url);
    try {
      await ensureDefaultPool(store, layout);
      await handleCommand(store, randomUUID(), { type: "AllocateIp", data: { vmId: "srv-00000001" } });
      const handlers = new Map(ippoolQueryHandlers(store.db).map((h) => [h.def.type, h]));
      const ask = async (type: string, request: unknown) => {
        const h = handlers.get(type)!;
        const reply = await h.answer(parse(h.def, request));
        if (reply.ok) parse({ ...h.def, schema: (h.def as QueryDef).response }, reply.data);
        return reply;
      };

      const list = await ask("list", {});
      expect(list.ok && (list.data as { items: Array<{ name: string }> }).items.map((p) => p.name)).toEqual([
        "default",
      ]);
      expect(await ask("get", { poolId: "pool-0000dead" })).toEqual({
        ok: false,
        error: { code: "not_found", message: "pool pool-0000dead does not exist" },
      });
      expect(await ask("stats", { poolId: DEFAULT_POOL_ID })).toMatchObject({
        ok: true,
        data: { total: 253, allocated: 1, available: 252, usagePercent: 0.4 },
      });
      expect(await ask("stats-all", {})).toMatchObject({ ok: true, data: { total: 253, allocated: 1 } });
      expect(await ask("suggest-range", { cidr: "10.0.0.0/30" })).toMatchObject({
        ok: true,
        data: {
          suggestedGateway: "10.0.0.1",
          suggestedStart: "10.0.0.2",
          suggestedEnd: "10.0.0.2",
          totalHosts: 2,
        },
      });
      expect(await ask("suggest-range", { cidr: "10.0.0.1/24" })).toMatchObject({
        ok: false,
        error: { code: "invalid" },
      });
      const validation = await ask("validate", { name: "x", ...layout, gateway: "172.16.0.9" });
      expect(
        validation.ok && (validation.data as { issues: Array<{ field: string }> }).issues.map((i) => i.field),
      ).toEqual(["cidr", "gateway"]);
      const byAddress = await ask("address-history", { address: "172.16.0.2" });
      expect(byAddress).toMatchObject({
        ok: true,
        data: { allocations: [{ vmId: "srv-00000001", releasedAt: null }] },
      });
      const byVm = await ask("vm-allocations", { vmId: "srv-00000001" });
      expect(byVm).toMatchObject({ ok: true, data: { current: { address: "172.16.0.2", pool: "default" } } });
    } finally {
      await store.close();
    }
  });
});
