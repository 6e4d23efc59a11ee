import { expect, test } from "@mikrom/testkit";
import { problemOf } from "./support/gateway.ts";
import { world } from "./support/world.ts";

const POOL = {
  name: "lab",
  cidr: "10.1.0.0/24",
  gateway: "10.1.0.1",
  start_ip: "10.1.0.10",
  end_ip: "10.1.0.200",
};

test("a superuser creates, reads, changes, counts and deletes IP pools; the default pool exists", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  const as = (method: string, path: string, body?: unknown) =>
    w.gw.fetch(path, {
      method,
      headers: { ...w.root.auth, ...(body !== undefined && { "Content-Type": "application/json" }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  try {
    const list = await (await as("GET", "/api/v1/ippools")).json();
    expect(list.items.map((p: { name: string }) => p.name)).toEqual(["default"]);

    const created = await as("POST", "/api/v1/ippools", POOL);
    expect(created.status).toBe(201);
    const pool = await created.json();
    expect(pool).toMatchObject({ ...POOL, prefix_length: 24, is_active: true, description: null });
    expect(pool.id).toMatch(/^pool-[0-9a-f]{8}$/);
    expect(created.headers.get("location")).toBe(`/api/v1/ippools/${pool.id}`);

    const dup = await problemOf(await as("POST", "/api/v1/ippools", POOL));
    expect(dup.status).toBe(422);
    expect((dup.body.errors as Array<{ field: string }>)[0]?.field).toBe("body.name");
    expect((await problemOf(await as("POST", "/api/v1/ippools", { ...POOL, gateway: "nope" }))).status).toBe(
      422,
    );

    expect((await (await as("GET", `/api/v1/ippools/${pool.id}`)).json()).name).toBe("lab");
    expect(
      (await problemOf(await as("PATCH", `/api/v1/ippools/${pool.id}`, { is_active: "yes" }))).status,
    ).toBe(422);
    expect((await problemOf(await as("POST", "/api/v1/ippools/suggest-range", { cidr: 24 }))).status).toBe(
      422,
    );
    expect(
      (await problemOf(await as("POST", "/api/v1/ippools/suggest-range", { cidr: "10.0.0.0/8" }))).status,
    ).toBe(422);
    const patched = await (
      await as("PATCH", `/api/v1/ippools/${pool.id}`, { is_active: false, description: "off" })
    ).json();
    expect(patched).toMatchObject({ is_active: false, description: "off" });
    expect(await (await as("GET", `/api/v1/ippools/${pool.id}/stats`)).json()).toMatchObject({
      pool_id: pool.id,
      total: 191,
      available: 191,
    });
    expect((await (await as("GET", "/api/v1/ippools/stats")).json()).pools).toHaveLength(2);
    expect(
      await (await as("POST", "/api/v1/ippools/suggest-range", { cidr: "192.168.7.0/24" })).json(),
    ).toMatchObject({
      gateway: "192.168.7.1",
      start_ip: "192.168.7.2",
      end_ip: "192.168.7.254",
      total_hosts: 254,
    });

    expect((await as("DELETE", `/api/v1/ippools/${pool.id}`)).status).toBe(204);
    expect((await problemOf(await as("GET", `/api/v1/ippools/${pool.id}`))).status).toBe(404);
    const refused = await problemOf(await as("DELETE", "/api/v1/ippools/pool-00000001"));
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toBe("the default pool cannot be deleted");
    expect((await problemOf(await as("GET", "/api/v1/ippools/garbage"))).status).toBe(404);
  } finally {
    await w.close();
  }
});

test("IP pool routes are for superusers only", async ({ db, nats }) => {
  const w = await world(db.url, nats);
  try {
    for (const [method, path] of [
      ["GET", "/api/v1/ippools"],
      ["POST", "/api/v1/ippools"],
      ["GET", "/api/v1/ippools/stats"],
      ["GET", "/api/v1/ippools/pool-00000001"],
      ["PATCH", "/api/v1/ippools/pool-00000001"],
      ["DELETE", "/api/v1/ippools/pool-00000001"],
      ["GET", "/api/v1/ippools/pool-00000001/stats"],
      ["POST", "/api/v1/ippools/suggest-range"],
    ] as const) {
      const res = await w.gw.fetch(path, {
        method,
        headers: { ...w.a.auth, "Content-Type": "application/json" },
        ...(method !== "GET" && method !== "DELETE" && { body: "{}" }),
      });
      expect((await problemOf(res)).status, `${method} ${path}`).toBe(403);
    }
    expect(w.ippoolService.pools.size).toBe(1);
  } finally {
    await w.close();
  }
});
