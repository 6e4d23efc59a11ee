import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { problemOf, type RunningGateway, type Session } from "./support/gateway.ts";
import { world } from "./support/world.ts";

const put = (gw: RunningGateway, who: Session, id: number, body: unknown) =>
  gw.fetch(`/api/v1/users/${id}`, {
    method: "PUT",
    headers: { ...who.auth, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

async function sentQuota(dbUrl: string, vmId: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT data FROM commands WHERE entity_id = $1 AND type = 'CreateVm'",
      [vmId],
    );
    return rows[0]?.data.quota;
  } finally {
    await client.end();
  }
}

describe("per-user quotas", () => {
  test("a superuser sets a user's quota, which travels with their creates; the user cannot set it", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const { gw, a, b, root } = w;
      const own = await problemOf(await put(gw, a, a.id, { quota: { vcpus: 64 } }));
      expect(own.status).toBe(403);
      expect(own.type).toContain("application/problem+json");

      const set = await put(gw, root, a.id, { quota: { vms: 2, vcpus: 4, memory_mb: 2048 } });
      expect(set.status).toBe(200);
      expect((await set.json()).quota).toEqual({ vms: 2, vcpus: 4, memory_mb: 2048 });
      const me = await (await gw.fetch("/api/v1/auth/me", { headers: a.auth })).json();
      expect(me.quota).toEqual({ vms: 2, vcpus: 4, memory_mb: 2048 });

      const created = await (await gw.post("/api/v1/vms", { name: "sized" }, a.auth)).json();
      expect(await sentQuota(db.url, created.vm_id)).toEqual({ vms: 2, vcpus: 4, memoryMb: 2048 });
      // Another user without overrides sends none: vm-service's defaults apply.
      const plain = await (await gw.post("/api/v1/vms", { name: "plain" }, b.auth)).json();
      expect(await sentQuota(db.url, plain.vm_id)).toBeUndefined();

      // Back to the default: null.
      const reset = await put(gw, root, a.id, { quota: { vcpus: null } });
      expect((await reset.json()).quota).toEqual({ vms: 2, vcpus: null, memory_mb: 2048 });
    } finally {
      await w.close();
    }
  });

  test("vm-service's quota refusal is a 409 problem saying why", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      w.vmService.refuseCreates = "vCPU quota reached: your VMs hold 4 of 4 vCPUs and this one asks for 1";
      const refused = await problemOf(await w.gw.post("/api/v1/vms", { name: "one-more" }, w.a.auth));
      expect(refused.status).toBe(409);
      expect(refused.type).toContain("application/problem+json");
      expect(refused.body.detail).toMatch(/vCPU quota reached/);
    } finally {
      await w.close();
    }
  });
});
