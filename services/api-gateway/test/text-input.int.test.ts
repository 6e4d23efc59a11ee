import { expect, test } from "@mikrom/testkit";
import { type JsonResponse, problemOf, type Session } from "./support/gateway.ts";
import { type World, world } from "./support/world.ts";

// What PostgreSQL cannot store (text and jsonb refuse U+0000; jsonb refuses a lone surrogate) must be
// refused where it comes in, as a 422 naming the field: never a 500 from the database, never a 202
// for a command that then dies as a dead letter in the owning service.
const NUL = "\u0000";
const SURROGATE = "\ud800";

function send(w: World, who: Session | null, method: string, path: string, body?: unknown) {
  return w.gw.fetch(path, {
    method,
    headers: {
      ...(who?.auth ?? {}),
      ...(body !== undefined && { "Content-Type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function refused(res: JsonResponse, field: string): Promise<void> {
  const p = await problemOf(res);
  expect(p.status, JSON.stringify(p.body)).toBe(422);
  expect(p.type).toContain("application/problem+json");
  expect(p.body.error).toBe(p.body.detail);
  const fields = (p.body.errors as Array<{ field: string }> | undefined)?.map((e) => e.field) ?? [];
  expect(fields, JSON.stringify(p.body)).toContain(field);
}

test("a NUL or a lone surrogate in any text field is a 422 naming it, and nothing is sent on", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  try {
    // Accounts: register, both logins, and a user changing themselves.
    const register = { email: "nul@example.com", password: "correct horse battery" };
    await refused(
      await send(w, null, "POST", "/api/v1/auth/register", { ...register, full_name: `A${NUL}` }),
      "body.full_name",
    );
    await refused(
      await send(w, null, "POST", "/api/v1/auth/register", { ...register, name: `A${SURROGATE}` }),
      "body.name",
    );
    await refused(
      await send(w, null, "POST", "/api/v1/auth/register", { ...register, password: `correct horse${NUL}` }),
      "body.password",
    );
    await refused(
      await send(w, null, "POST", "/api/v1/auth/login/json", { username: `a${NUL}`, password: "x" }),
      "body.username",
    );
    await refused(
      await send(w, null, "POST", "/api/v1/auth/login", { email: `a${NUL}@x.io`, password: "x" }),
      "body.email",
    );
    await refused(
      await send(w, null, "POST", "/api/v1/auth/login/json", { username: "a", password: `x${NUL}` }),
      "body.password",
    );
    // A form's `%00` is decoded to a NUL before it is validated.
    const form = await w.gw.fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "username=admin%00&password=guess",
    });
    await refused(form, "body.username");
    await refused(
      await send(w, w.a, "PUT", `/api/v1/users/${w.a.id}`, { full_name: `A${NUL}` }),
      "body.full_name",
    );
    await refused(await send(w, w.a, "PUT", `/api/v1/users/${w.a.id}`, { name: SURROGATE }), "body.name");

    // VMs: nothing reaches vm-service.
    await refused(
      await send(w, w.a, "POST", "/api/v1/vms", { name: "web-1", description: `x${NUL}` }),
      "body.description",
    );
    await refused(await send(w, w.a, "POST", "/api/v1/vms", { name: `web${NUL}` }), "body.name");
    await refused(
      await send(w, w.a, "POST", "/api/v1/vms", { name: "web-1", pool: `lab${NUL}` }),
      "body.pool",
    );
    await refused(
      await send(w, w.a, "PATCH", "/api/v1/vms/srv-0a1b2c3d", { description: SURROGATE }),
      "body.description",
    );
    expect(w.vmService.commandsSeen).toEqual([]);

    // IP pools (superuser) and the audit log's filters, `%00` in the query string included.
    const pool = {
      name: "lab",
      cidr: "10.9.0.0/24",
      gateway: "10.9.0.1",
      start_ip: "10.9.0.10",
      end_ip: "10.9.0.20",
    };
    await refused(
      await send(w, w.root, "POST", "/api/v1/ippools", { ...pool, name: `lab${NUL}` }),
      "body.name",
    );
    await refused(
      await send(w, w.root, "POST", "/api/v1/ippools", { ...pool, description: `lab${NUL}` }),
      "body.description",
    );
    await refused(
      await send(w, w.root, "PATCH", "/api/v1/ippools/pool-00000001", { description: NUL }),
      "body.description",
    );
    await refused(await send(w, w.root, "GET", "/api/v1/audit?vm_id=srv-%00"), "query.vm_id");
    await refused(await send(w, w.root, "GET", "/api/v1/audit?type=Vm%00Created"), "query.type");
  } finally {
    await w.close();
  }
});

test("a VM's pool must be a pool name ippool-service can allocate by: a 422 at once, not a 202 and a failure later", async ({
  db,
  nats,
}) => {
  const w = await world(db.url, nats);
  try {
    for (const pool of ["my pool", "lab.2", "-lead", "x".repeat(65)]) {
      await refused(await send(w, w.a, "POST", "/api/v1/vms", { name: "web-1", pool }), "body.pool");
    }
    expect(w.vmService.commandsSeen).toEqual([]);
    const ok = await send(w, w.a, "POST", "/api/v1/vms", { name: "web-1", pool: "lab_2-a" });
    expect(ok.status).toBe(201);
  } finally {
    await w.close();
  }
});
