import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createTestDatabase, describe, expect, type TestDatabase, test, uniqueName } from "@mikrom/testkit";
import { afterAll, beforeAll, inject } from "vitest";
import { ADMIN, type Client, type E2eSystem, login, startE2eSystem, until } from "./harness.ts";
import {
  freePort,
  type PrivateNats,
  type PrivatePostgres,
  startPrivateNats,
  startPrivatePostgres,
} from "./private-infra.ts";

/**
 * Promises kept through faults, end to end: the gateway's own database on a PostgreSQL cluster of
 * this test's (stopped and started), its own nats-server (killed), services killed and paused.
 */
let nats: PrivateNats;
let postgres: PrivatePostgres;
let db: TestDatabase;
let e2e: E2eSystem;
let user: Client;
let admin: Client;

beforeAll(async () => {
  [nats, postgres, db] = await Promise.all([
    startPrivateNats(),
    startPrivatePostgres(),
    createTestDatabase(inject("databaseUrl")),
  ]);
  e2e = await startE2eSystem({
    natsUrl: nats.url,
    databaseUrl: db.url,
    namespace: uniqueName(),
    env: {
      MIKROM_DRIVER: "fake",
      MIKROM_FAKE_LATENCY_MS: "200",
      MIKROM_HOST_VCPUS: "64",
      MIKROM_HOST_MEMORY_MB: "131072",
      GATEWAY_DATABASE_URL: postgres.url("mikrom_gateway"),
      COMMAND_TIMEOUT_MS: "1500",
      HOST_HEARTBEAT_TIMEOUT_MS: "3000",
      RESEND_AFTER_MS: "1000",
    },
  });
  user = await login(e2e.api, { email: "dora@e2e.mikrom", password: "dora-password-1" }, true);
  admin = await login(e2e.api, ADMIN);
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  await Promise.all([nats?.remove(), postgres?.remove(), db?.drop()]);
}, 60_000);

/** An answer of POST /vms: a VM (201), a VM accepted (202), or a problem. */
interface Answer {
  status: number;
  body: { vm_id: string; status?: string; detail?: string };
  retryAfter: string | null;
}

async function createWithKey(client: Client, key: string, name: string): Promise<Answer> {
  const res = await fetch(`${e2e.api}/api/v1/vms`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${client.token}`,
      "content-type": "application/json",
      "idempotency-key": key,
    },
    body: JSON.stringify({ name }),
  });
  return {
    status: res.status,
    body: (await res.json()) as Answer["body"],
    retryAfter: res.headers.get("retry-after"),
  };
}

async function running(vmId: string): Promise<void> {
  await until(
    `${vmId} running`,
    () => user.call("GET", `/api/v1/vms/${vmId}`),
    (r) => r.status === 200 && r.body.status === "running",
    60_000,
  );
}

/** Every VM named so, as the superuser lists them. */
async function named(name: string): Promise<string[]> {
  const res = await admin.call("GET", "/api/v1/vms?page_size=100");
  expect(res.status).toBe(200);
  return res.body.items
    .filter((v: { name: string }) => v.name === name)
    .map((v: { vm_id: string }) => v.vm_id);
}

describe("promises kept through faults", () => {
  test("with its own database down the API answers 503 with Retry-After, and the retried create completes once it is back", {
    timeout: 120_000,
  }, async () => {
    await postgres.stop();
    try {
      const refused = await createWithKey(user, "db-down-1", "through-db-restart");
      expect(refused.status).toBe(503);
      expect(refused.retryAfter).toBeTruthy();
      const list = await user.call("GET", "/api/v1/vms");
      expect(list.status).toBe(503);
      expect(list.headers.get("content-type")).toContain("application/problem+json");
    } finally {
      await postgres.start();
    }
    const accepted = await until(
      "the retried create accepted",
      () => createWithKey(user, "db-down-1", "through-db-restart"),
      (r) => r.status === 201 || r.status === 202,
      60_000,
    );
    await running(accepted.body.vm_id);
    expect(await named("through-db-restart")).toEqual([accepted.body.vm_id]);
  });

  test("a create answered 202 survives NATS SIGKILLed right after it, and reads as pending meanwhile", {
    timeout: 120_000,
  }, async () => {
    await e2e.system.kill("vm-service");
    const accepted = await createWithKey(user, "nats-crash-1", "through-nats-crash");
    expect(accepted.status).toBe(202);
    const vmId = accepted.body.vm_id as string;
    const read = await user.call("GET", `/api/v1/vms/${vmId}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ vm_id: vmId, status: "pending" });
    await nats.kill();
    await nats.start();
    e2e.system.restart("vm-service");
    await running(vmId);
    expect(await named("through-nats-crash")).toEqual([vmId]);
  });

  test("the same Idempotency-Key 50 times at once across two gateway processes makes one VM", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const second: ChildProcess = spawn(
      process.execPath,
      [join(import.meta.dirname, "..", "services", "api-gateway", "src", "main.ts")],
      {
        env: { ...e2e.system.env, PORT: String(port) },
        stdio: "ignore",
      },
    );
    try {
      const apis = [e2e.api, `http://127.0.0.1:${port}`];
      await until(
        "the second gateway",
        () =>
          fetch(`${apis[1]}/api/v1/health/ready`).then(
            (r) => r.status,
            () => 0,
          ),
        (s) => s === 200,
        60_000,
      );
      const send = (i: number) =>
        fetch(`${apis[i % 2]}/api/v1/vms`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${user.token}`,
            "content-type": "application/json",
            "idempotency-key": "fifty-at-once",
          },
          body: JSON.stringify({ name: "fifty-at-once" }),
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as Answer["body"] }));
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => send(i)));
      // Each is the VM, or "the first is still in progress": never a second VM, never a 5xx.
      for (const a of answers) expect([201, 202, 409], JSON.stringify(a.body)).toContain(a.status);
      const ids = new Set(answers.filter((a) => a.status !== 409).map((a) => a.body.vm_id));
      expect(ids.size).toBeLessThanOrEqual(1);
      const settled = await until(
        "the key's answer",
        () => send(0),
        (a) => a.status === 201 || a.status === 202,
        30_000,
      );
      if (ids.size === 1) expect(ids).toContain(settled.body.vm_id);
      await running(settled.body.vm_id);
      expect(await named("fifty-at-once")).toEqual([settled.body.vm_id]);
    } finally {
      second.kill("SIGTERM");
    }
  });

  test("an agent paused past its heartbeat timeout comes back with its VMs running", {
    timeout: 120_000,
  }, async () => {
    const created = await createWithKey(user, "paused-agent-1", "under-paused-agent");
    const vmId = created.body.vm_id as string;
    await running(vmId);
    const agent = e2e.system.processes.get("provisioner")!.child;
    agent.kill("SIGSTOP");
    try {
      const silent = await until(
        "its host unreachable",
        () => user.call("GET", `/api/v1/vms/${vmId}`),
        (r) => r.status === 200 && r.body.host_status === "unreachable",
        30_000,
      );
      // Its VM keeps its state: most likely still running, unknown until the host is back.
      expect(silent.body.status).toBe("running");
      const stop = await user.call("POST", `/api/v1/vms/${vmId}/stop`);
      expect(stop.status).toBe(409);
      expect(stop.body.detail).toMatch(/unreachable/);
    } finally {
      agent.kill("SIGCONT");
    }
    const back = await until(
      "its host reachable again",
      () => user.call("GET", `/api/v1/vms/${vmId}`),
      (r) => r.status === 200 && r.body.host_status === "reachable",
      30_000,
    );
    expect(back.body).toMatchObject({ status: "running", error_message: null });
  });

  test("a service that exits on its own is started again by the supervisor, and what was asked of it meanwhile is done", {
    timeout: 120_000,
  }, async () => {
    const readyLines = () =>
      e2e.lines.filter((l) => l.service === "vm-service" && l.entry.message === "vm-service ready").length;
    const readyBefore = readyLines();
    const before = e2e.system.processes.get("vm-service")!.child;
    // Not through the system: to the supervisor this is a crash.
    before.kill("SIGKILL");
    await new Promise((resolve) => before.once("exit", resolve));
    const created = await createWithKey(user, "during-a-crash-1", "during-a-crash");
    expect(created.status).toBe(202);
    await until(
      "a new vm-service process",
      async () => e2e.system.processes.get("vm-service")!.child,
      (child) => child.pid !== before.pid && child.exitCode === null,
      30_000,
    );
    await running(created.body.vm_id);
    // The new process said it was ready, once.
    expect(readyLines()).toBe(readyBefore + 1);
  });
});
