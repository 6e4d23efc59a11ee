import { describe, expect, test } from "@mikrom/testkit";
import { NatsBackend } from "../src/nats-backend.ts";
import {
  type JsonResponse,
  problemOf,
  type RunningGateway,
  type Session,
  startGateway,
} from "./support/gateway.ts";
import { world } from "./support/world.ts";

const VM_FIELDS = [
  "created_at",
  "description",
  "error_message",
  "host",
  "host_status",
  "id",
  "ip_address",
  "memory_mb",
  "name",
  "status",
  "updated_at",
  "user_id",
  "vcpu_count",
  "vm_id",
];

function call(
  gw: RunningGateway,
  who: Session | null,
  method: string,
  path: string,
  body?: unknown,
): Promise<JsonResponse> {
  const headers: Record<string, string> = who ? { ...who.auth } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return gw.fetch(path, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
}

async function expectProblem(res: JsonResponse, status: number): Promise<Record<string, unknown>> {
  const p = await problemOf(res);
  expect(p.status).toBe(status);
  expect(p.type).toContain("application/problem+json");
  expect(p.body.error).toBe(p.body.detail);
  return p.body;
}

describe("VM routes", () => {
  test("create answers 201 with the VM once vm-service recorded it, and a GET right after finds it", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const res = await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "web-1", description: "front" });
      expect(res.status).toBe(201);
      const vm = await res.json();
      expect(Object.keys(vm).sort()).toEqual(VM_FIELDS);
      expect(vm).toMatchObject({
        name: "web-1",
        description: "front",
        vcpu_count: 1,
        memory_mb: 512,
        status: "pending",
        user_id: w.a.id,
        ip_address: null,
      });
      expect(vm.vm_id).toMatch(/^srv-[0-9a-f]{8}$/);
      expect(vm.id).toBe(vm.vm_id);
      expect(res.headers.get("location")).toBe(`/api/v1/vms/${vm.vm_id}`);

      const got = await call(w.gw, w.a, "GET", `/api/v1/vms/${vm.vm_id}`);
      expect(got.status).toBe(200);
      expect(await got.json()).toEqual(vm);
      const list = await (await call(w.gw, w.a, "GET", "/api/v1/vms")).json();
      expect(list).toEqual({
        items: [vm],
        total: 1,
        page: 1,
        page_size: 10,
        total_pages: 1,
        next_page_token: null,
      });
    } finally {
      await w.close();
    }
  });

  test("create answers from the VmCreated it waited for, asking vm-service nothing more", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      // vm-service's read side is away: only the outcome event can say how the VM reads.
      w.vmService.queriesAway = true;
      const res = await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "one-trip", vcpu_count: 2 });
      expect(res.status).toBe(201);
      const vm = await res.json();
      expect(vm).toMatchObject({ name: "one-trip", vcpu_count: 2, status: "pending", host: null });
      w.vmService.queriesAway = false;
      // Exactly what a read says, recorded time included.
      expect(await (await call(w.gw, w.a, "GET", `/api/v1/vms/${vm.vm_id}`)).json()).toEqual(vm);
    } finally {
      await w.close();
    }
  });

  test("bad bodies are 422 listing each field; nothing reaches vm-service", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      const bad = await expectProblem(
        await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "-bad-", vcpu_count: 33, memory_mb: 64 }),
        422,
      );
      expect((bad.errors as Array<{ field: string }>).map((e) => e.field).sort()).toEqual([
        "body.memory_mb",
        "body.name",
        "body.vcpu_count",
      ]);
      const malformed = await w.gw.fetch("/api/v1/vms", {
        method: "POST",
        headers: { ...w.a.auth, "Content-Type": "application/json" },
        body: '{"name":',
      });
      await expectProblem(malformed, 422);
      const long = await expectProblem(
        await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "a".repeat(65) }),
        422,
      );
      expect((long.errors as Array<{ field: string }>)[0]?.field).toBe("body.name");
      await expectProblem(await call(w.gw, w.a, "GET", "/api/v1/vms?page_size=0"), 422);
      expect(w.vmService.commandsSeen).toEqual([]);
    } finally {
      await w.close();
    }
  });

  test("page_token pages: every VM once, newest first, acknowledged creates heading the first page only", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { commandTimeoutMs: 300 });
    try {
      for (let i = 0; i < 4; i++) await call(w.gw, w.a, "POST", "/api/v1/vms", { name: `keyed-${i}` });
      await call(w.gw, w.b, "POST", "/api/v1/vms", { name: "not-a" });
      w.vmService.answering = false;
      const acknowledged = await (
        await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "on-its-way" })
      ).json();
      w.vmService.answering = true;
      const all = await (await call(w.gw, w.a, "GET", "/api/v1/vms?page_size=100")).json();
      const ids = all.items.map((v: { vm_id: string }) => v.vm_id);
      expect(ids).toHaveLength(5);
      expect(ids[0]).toBe(acknowledged.vm_id);

      const seen: string[] = [];
      const pages: unknown[] = [];
      let path = "/api/v1/vms?page_size=2";
      for (;;) {
        const res = await call(w.gw, w.a, "GET", path);
        expect(res.status).toBe(200);
        const page = await res.json();
        seen.push(...page.items.map((v: { vm_id: string }) => v.vm_id));
        pages.push([page.page, page.total, page.total_pages]);
        // Created during the walk: newer than every page, it shifts none of them.
        if (page.page === 1) await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "meanwhile" });
        if (page.next_page_token === null) break;
        path = `/api/v1/vms?page_size=2&page_token=${page.next_page_token}`;
      }
      expect(seen).toEqual(ids);
      // page is the page's number in the walk; total is the count when the page was read (later pages
      // count the VM created meanwhile, and not the acknowledged one, which heads page 1 only).
      expect(pages).toEqual([
        [1, 5, 3],
        [2, 5, 3],
        [3, 5, 3],
      ]);
      // An OFFSET page's token leads on from its last VM just the same.
      const now = (await (await call(w.gw, w.a, "GET", "/api/v1/vms?page_size=100")).json()).items;
      const offset = await (await call(w.gw, w.a, "GET", "/api/v1/vms?page=2&page_size=2")).json();
      const after = await (
        await call(w.gw, w.a, "GET", `/api/v1/vms?page_size=2&page_token=${offset.next_page_token}`)
      ).json();
      expect(after.page).toBe(3);
      const last = now.findIndex((v: { vm_id: string }) => v.vm_id === offset.items[1].vm_id);
      expect(after.items[0].vm_id).toBe(now[last + 1].vm_id);
    } finally {
      await w.close();
    }
  });

  test("a page_token no page answered, or one with page > 1, is a 400 problem", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      for (let i = 0; i < 3; i++) await call(w.gw, w.a, "POST", "/api/v1/vms", { name: `keyed-${i}` });
      const first = await (await call(w.gw, w.a, "GET", "/api/v1/vms?page_size=1")).json();
      const token = first.next_page_token as string;
      const body = JSON.parse(Buffer.from(token, "base64url").toString());
      expect(body).toEqual({ created_at: first.items[0].created_at, vm_id: first.items[0].vm_id, page: 2 });
      const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
      const bad = [
        "not a token",
        "e30",
        Buffer.from("{not json").toString("base64url"),
        token.slice(0, -3),
        encode({ ...body, vm_id: "srv-1; DROP TABLE vms" }),
        encode({ ...body, created_at: "yesterday" }),
        encode({ ...body, page: 0 }),
        encode({ ...body, more: 1 }),
        "a".repeat(300),
      ];
      for (const t of bad) {
        const problem = await expectProblem(
          await call(w.gw, w.a, "GET", `/api/v1/vms?page_token=${encodeURIComponent(t)}`),
          400,
        );
        expect((problem.errors as Array<{ field: string }>)[0]?.field).toMatch(/^query\.page_token/);
      }
      const both = await expectProblem(
        await call(w.gw, w.a, "GET", `/api/v1/vms?page=2&page_token=${token}`),
        400,
      );
      expect(both.detail).toContain("give one of them");
      expect((await call(w.gw, w.a, "GET", `/api/v1/vms?page=1&page_token=${token}`)).status).toBe(200);
      expect((await (await call(w.gw, w.a, "GET", "/api/v1/vms?page_token=")).json()).page).toBe(1);
    } finally {
      await w.close();
    }
  });

  test("every protected route is 401 without a token or with a bad one", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      const id = "srv-0000abcd";
      const routes: Array<[string, string]> = [
        ["POST", "/api/v1/vms"],
        ["GET", "/api/v1/vms"],
        ["GET", `/api/v1/vms/${id}`],
        ["PATCH", `/api/v1/vms/${id}`],
        ["DELETE", `/api/v1/vms/${id}`],
        ["POST", `/api/v1/vms/${id}/start`],
        ["POST", `/api/v1/vms/${id}/stop`],
        ["POST", `/api/v1/vms/${id}/restart`],
        ["GET", `/api/v1/vms/${id}/events`],
        ["GET", `/api/v1/vms/${id}/wait?status=running`],
        ["GET", "/api/v1/events/vms"],
        ["POST", "/api/v1/vms/build"],
        ["POST", "/api/v1/ippools"],
        ["GET", "/api/v1/ippools"],
        ["GET", "/api/v1/ippools/stats"],
        ["POST", "/api/v1/ippools/suggest-range"],
        ["GET", "/api/v1/ippools/pool-00000001"],
        ["PATCH", "/api/v1/ippools/pool-00000001"],
        ["DELETE", "/api/v1/ippools/pool-00000001"],
        ["GET", "/api/v1/ippools/pool-00000001/stats"],
        ["GET", "/api/v1/users"],
        ["GET", "/api/v1/users/1"],
        ["PUT", "/api/v1/users/1"],
        ["DELETE", "/api/v1/users/1"],
        ["GET", "/api/v1/auth/me"],
        ["GET", "/api/v1/auth/profile"],
      ];
      const forged = {
        id: 0,
        email: "",
        username: "",
        token: "x",
        refresh: "x",
        auth: { Authorization: "Bearer not.a.jwt" },
      };
      for (const [method, path] of routes) {
        await expectProblem(
          await call(w.gw, null, method, path, method === "GET" || method === "DELETE" ? undefined : {}),
          401,
        );
        await expectProblem(
          await call(w.gw, forged, method, path, method === "GET" || method === "DELETE" ? undefined : {}),
          401,
        );
      }
    } finally {
      await w.close();
    }
  });

  test("authorization: B never reads or changes A's VM; the superuser sees and acts on all", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const vmA = await (await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "a-vm" })).json();
      const vmB = await (await call(w.gw, w.b, "POST", "/api/v1/vms", { name: "b-vm" })).json();
      const pathA = `/api/v1/vms/${vmA.vm_id}`;
      const asB: Array<[string, string, unknown?]> = [
        ["GET", pathA],
        ["PATCH", pathA, { name: "stolen" }],
        ["DELETE", pathA],
        ["POST", `${pathA}/start`],
        ["POST", `${pathA}/stop`],
        ["POST", `${pathA}/restart`],
        ["GET", `${pathA}/events`],
        ["GET", `${pathA}/wait?status=running&timeout=0`],
      ];
      for (const [method, path, body] of asB) {
        const detail = await expectProblem(await call(w.gw, w.b, method, path, body), 404);
        expect(detail.detail).toBe("VM not found");
      }
      expect(w.vmService.vms.get(vmA.vm_id)?.name).toBe("a-vm");

      const listB = await (await call(w.gw, w.b, "GET", "/api/v1/vms")).json();
      expect(listB.items.map((v: { vm_id: string }) => v.vm_id)).toEqual([vmB.vm_id]);
      const listRoot = await (await call(w.gw, w.root, "GET", "/api/v1/vms")).json();
      expect(listRoot.total).toBe(2);

      expect((await call(w.gw, w.root, "GET", pathA)).status).toBe(200);
      const renamed = await call(w.gw, w.root, "PATCH", pathA, { name: "renamed-by-root" });
      expect((await renamed.json()).name).toBe("renamed-by-root");
      expect((await call(w.gw, w.a, "GET", "/api/v1/vms/srv-ffffffff")).status).toBe(404);
      expect((await call(w.gw, w.a, "GET", "/api/v1/vms/not-an-id")).status).toBe(404);
    } finally {
      await w.close();
    }
  });

  test("lifecycle commands answer 202 with the new status, or 409 with vm-service's reason", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const vm = await (await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "life" })).json();
      const path = `/api/v1/vms/${vm.vm_id}`;
      const refused = await expectProblem(await call(w.gw, w.a, "POST", `${path}/start`), 409);
      expect(refused.detail).toBe("VM cannot start from status pending");

      await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.5" });
      const stop = await call(w.gw, w.a, "POST", `${path}/stop`);
      expect(stop.status).toBe(202);
      expect(await stop.json()).toEqual({
        message: "VM stop initiated",
        vm_id: vm.vm_id,
        status: "stopping",
      });
      await expectProblem(await call(w.gw, w.a, "POST", `${path}/restart`), 409);

      await w.vmService.transition(vm.vm_id, "VmStopped", "stopped");
      expect((await (await call(w.gw, w.a, "POST", `${path}/start`)).json()).status).toBe("starting");

      const patched = await call(w.gw, w.a, "PATCH", path, { description: "described" });
      expect(patched.status).toBe(200);
      expect((await patched.json()).description).toBe("described");
      await expectProblem(await call(w.gw, w.a, "PATCH", path, { name: "no spaces" }), 422);

      await w.vmService.transition(vm.vm_id, "VmRunning", "running");
      const del = await call(w.gw, w.a, "DELETE", path);
      expect(del.status).toBe(202);
      expect(await del.json()).toEqual({
        message: "VM deletion initiated",
        vm_id: vm.vm_id,
        status: "deleting",
      });
    } finally {
      await w.close();
    }
  });

  test("the same Idempotency-Key twice makes one VM and answers the same", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      const send = (body: unknown) =>
        w.gw.post("/api/v1/vms", body, { ...w.a.auth, "Idempotency-Key": "create-web-2" });
      const first = await send({ name: "web-2" });
      const second = await send({ name: "web-2" });
      expect(second.status).toBe(201);
      expect(second.headers.get("idempotent-replayed")).toBe("true");
      expect(second.headers.get("location")).toBe(first.headers.get("location"));
      expect(await second.json()).toEqual(await first.json());
      expect(w.vmService.commandsSeen.filter((t) => t === "CreateVm")).toHaveLength(1);
      expect(w.vmService.vms.size).toBe(1);
      await expectProblem(await send({ name: "web-3" }), 422);
      // Keys are per user: B's identical key is B's own.
      const b = await w.gw.post(
        "/api/v1/vms",
        { name: "web-2" },
        { ...w.b.auth, "Idempotency-Key": "create-web-2" },
      );
      expect(b.status).toBe(201);
      expect(w.vmService.vms.size).toBe(2);
    } finally {
      await w.close();
    }
  });

  test("a second request with a key whose first is still running is a 409, not a second VM", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { commandTimeoutMs: 1_500 });
    try {
      w.vmService.answering = false;
      const send = () =>
        w.gw.post("/api/v1/vms", { name: "twice" }, { ...w.a.auth, "Idempotency-Key": "k-1" });
      const statuses = (await Promise.all([send(), send()])).map((r) => r.status).sort();
      expect(statuses).toEqual([202, 409]);
      expect(w.vmService.commandsSeen.filter((t) => t === "CreateVm")).toHaveLength(1);
    } finally {
      await w.close();
    }
  });

  test("when vm-service does not answer within the bound the create is 202 with Location", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats, { commandTimeoutMs: 300 });
    try {
      w.vmService.answering = false;
      const res = await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "slow" });
      expect(res.status).toBe(202);
      const body = await res.json();
      expect(body.status).toBe("pending");
      expect(res.headers.get("location")).toBe(`/api/v1/vms/${body.vm_id}`);
    } finally {
      await w.close();
    }
  });

  test("history lists the VM's events with trace ids; wait answers when the status is reached", async ({
    db,
    nats,
  }) => {
    const w = await world(db.url, nats);
    try {
      const vm = await (await call(w.gw, w.a, "POST", "/api/v1/vms", { name: "hist" })).json();
      const path = `/api/v1/vms/${vm.vm_id}`;
      const notYet = await (await call(w.gw, w.a, "GET", `${path}/wait?status=running&timeout=0`)).json();
      expect(notYet.reached).toBe(false);
      expect(notYet.vm.status).toBe("pending");

      const waiting = call(w.gw, w.a, "GET", `${path}/wait?status=running&timeout=10`);
      await w.vmService.transition(vm.vm_id, "VmRunning", "running", { hostId: "h1", ipAddress: "10.0.0.9" });
      const reached = await (await waiting).json();
      expect(reached.reached).toBe(true);
      expect(reached.vm.status).toBe("running");

      const history = await (await call(w.gw, w.a, "GET", `${path}/events`)).json();
      expect(history.vm_id).toBe(vm.vm_id);
      expect(history.events.map((e: { type: string }) => e.type)).toEqual(["VmCreated", "VmRunning"]);
      expect(history.events[0].trace_id).toMatch(/^[0-9a-f]{32}$/);
      await expectProblem(await call(w.gw, w.a, "GET", `${path}/wait?status=flying`), 422);
      await expectProblem(await call(w.gw, w.a, "GET", `${path}/wait?status=running&timeout=301`), 422);
    } finally {
      await w.close();
    }
  });

  test("build is 501 problem+json", async ({ db, nats }) => {
    const w = await world(db.url, nats);
    try {
      await expectProblem(await call(w.gw, w.a, "POST", "/api/v1/vms/build", {}), 501);
    } finally {
      await w.close();
    }
  });
});

test("with vm-service and the streams missing, VM reads and commands are 503 problem+json", async ({
  db,
  nats,
}) => {
  const backend = await NatsBackend.create(nats.nc, nats.namespace);
  const gw = await startGateway(db.url, { backend, config: { queryTimeoutMs: 300 } });
  try {
    const a = await gw.user("a");
    await expectProblem(await gw.fetch("/api/v1/vms", { headers: a.auth }), 503);
    // The gateway's own store is up: the create is recorded, answered 202, and sent once NATS can
    // take it. It reads as pending meanwhile (never 404); a command on it is "retry later" (503).
    const create = await gw.post("/api/v1/vms", { name: "nowhere" }, a.auth);
    expect(create.status).toBe(202);
    const { vm_id } = await create.json();
    const read = await gw.fetch(`/api/v1/vms/${vm_id}`, { headers: a.auth });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ vm_id, name: "nowhere", status: "pending" });
    const stop = await gw.post(`/api/v1/vms/${vm_id}/stop`, {}, a.auth);
    expect(stop.headers.get("retry-after")).toBe("1");
    await expectProblem(stop, 503);
    // Another user still does not see it.
    const b = await gw.user("b");
    await expectProblem(await gw.fetch(`/api/v1/vms/${vm_id}`, { headers: b.auth }), 503);
    await expectProblem(await gw.fetch("/api/v1/events/vms", { headers: a.auth }), 503);
    expect((await gw.fetch("/api/v1/health/ready")).status).toBe(503);
  } finally {
    await gw.close();
  }
});
