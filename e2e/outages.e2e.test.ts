import { createTestDatabase, describe, expect, type TestDatabase, test, uniqueName } from "@mikrom/testkit";
import { afterAll, beforeAll, inject } from "vitest";
import {
  ADMIN,
  type Client,
  type E2eSystem,
  login,
  poolAllocated,
  problemsOf,
  startE2eSystem,
  traceOfCreate,
  until,
} from "./harness.ts";
import {
  type PrivateNats,
  type PrivatePostgres,
  startPrivateNats,
  startPrivatePostgres,
} from "./private-infra.ts";

/**
 * One system for the scenarios that take something away: its own nats-server (killed and restarted),
 * vm-service's database on its own PostgreSQL cluster (stopped and started), and a default pool of
 * five addresses (10.99.0.0/29: gateway .1, range .2-.6) that the last scenario exhausts.
 */
const POOL_SIZE = 5;
const VM_DATABASE = "mikrom_vm";

let nats: PrivateNats;
let postgres: PrivatePostgres;
let db: TestDatabase;
let e2e: E2eSystem;
let user: Client;
let admin: Client;
let me: { id: number; username: string };

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
      // Room for every VM of these scenarios on the one host (the default is this machine's 2 cores).
      MIKROM_HOST_VCPUS: "32",
      MIKROM_HOST_MEMORY_MB: "65536",
      // Long enough to act while a boot is in flight, on a machine busy with the rest of the suite:
      // seeing `provisioning` through the API and killing NATS must fit in it.
      MIKROM_FAKE_LATENCY_MS: "4000",
      IPPOOL_DEFAULT_CIDR: "10.99.0.0/29",
      VM_DATABASE_URL: postgres.url(VM_DATABASE),
      // A command vm-service cannot answer is accepted (202) after this long.
      COMMAND_TIMEOUT_MS: "2000",
    },
  });
  user = await login(e2e.api, { email: "carol@e2e.mikrom", password: "carol-password-1" }, true);
  admin = await login(e2e.api, ADMIN);
  me = (await user.call("GET", "/api/v1/auth/me")).body;
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  await Promise.all([nats?.remove(), postgres?.remove(), db?.drop()]);
}, 60_000);

async function create(name: string): Promise<string> {
  const res = await user.call("POST", "/api/v1/vms", { name });
  // 202: vm-service had not answered within COMMAND_TIMEOUT_MS on this busy machine; it still will.
  expect([201, 202], JSON.stringify(res.body)).toContain(res.status);
  return res.body.vm_id;
}

/** The VM as GET shows it once it is in one of `statuses` (other answers, 503 included, are waited through). */
async function reaches(
  vmId: string,
  statuses: string[],
  ms = 60_000,
): Promise<{ status: string; [k: string]: unknown }> {
  const res = await until(
    `${vmId} in ${statuses.join("|")}`,
    () => user.call("GET", `/api/v1/vms/${vmId}`),
    (r) => r.status === 200 && statuses.includes(r.body.status),
    ms,
  );
  return res.body;
}

async function historyOf(vmId: string): Promise<string[]> {
  const res = await user.call("GET", `/api/v1/vms/${vmId}/events`);
  expect(res.status).toBe(200);
  return res.body.events.map((e: { type: string }) => e.type);
}

describe("outages and exhaustion, end to end", () => {
  test("a VM whose boot is in flight when NATS is killed reaches running once NATS is back, the failed publish logged with full context", {
    timeout: 120_000,
  }, async () => {
    const vmId = await create("through-nats-crash");
    await reaches(vmId, ["provisioning"]);
    const before = e2e.lines.length;

    await nats.kill();
    // Started again whatever happens here: a failure must not leave the next scenarios without NATS.
    try {
      // Every service notices (its connection drops) before the server comes back.
      await until(
        "every service disconnected",
        async () => servicesLogging(before, "disconnected from NATS, reconnecting"),
        (s) => s.length === 5,
      );
      // The boot ends while NATS is away, and publishing its answer fails: logged with full context
      // where it happens (the provisioner), the answer kept in its outbox.
      const publishFailed = await until(
        "the provisioner failing to publish the boot's answer",
        async () =>
          problemsOf(e2e, "provisioner", vmId, before).find(
            (l) => l.message === "publish failed, retrying" && String(l.subject).endsWith(".VmBooted"),
          ),
        (line) => line !== undefined,
      );
      expect(publishFailed).toMatchObject({
        level: "WARN",
        error: expect.any(String),
        error_type: expect.any(String),
        vm_id: vmId,
        trace_id: traceOfCreate(e2e, vmId),
        user_id: String(me.id),
        user_name: me.username,
      });
    } finally {
      await nats.start();
    }
    await until(
      "every service reconnected",
      async () => servicesLogging(before, "reconnected to NATS"),
      (s) => s.length === 5,
    );

    const vm = await reaches(vmId, ["running", "error"]);
    expect(vm.status, JSON.stringify(vm)).toBe("running");
    expect(vm.ip_address).toMatch(/^10\.99\.0\.[2-6]$/);
    // Applied once: one boot, one address, however many times the messages went around.
    const types = await historyOf(vmId);
    expect(types.filter((t) => t === "VmRunning")).toHaveLength(1);
    expect(types.filter((t) => t === "VmProvisioning")).toHaveLength(1);
    expect(await poolAllocated(admin)).toBe(1);
  });

  test("with vm-service's PostgreSQL stopped the API answers 503 problem+json, and after it returns nothing is lost and both operations complete", {
    timeout: 120_000,
  }, async () => {
    const inFlight = await create("through-pg-stop");
    await reaches(inFlight, ["provisioning"]);
    const listedBefore = (await user.call("GET", "/api/v1/vms?page_size=100")).body.items.length;
    const before = e2e.lines.length;

    await postgres.stop();
    let createdMeanwhile: string;
    try {
      // Reads that need vm-service's database: 503 with a problem document, and a hint to retry.
      const read = await user.call("GET", `/api/v1/vms/${inFlight}`);
      expect(read.status, JSON.stringify(read.body)).toBe(503);
      expect(read.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(read.headers.get("retry-after")).toBe("1");
      expect(read.body).toMatchObject({ status: 503, detail: expect.any(String) });
      const list = await user.call("GET", "/api/v1/vms");
      expect(list.status).toBe(503);
      // A command is accepted into JetStream: 202, to be applied when vm-service can write again.
      const accepted = await user.call("POST", "/api/v1/vms", { name: "while-pg-down" });
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
      expect(accepted.body.status).toBe("pending");
      createdMeanwhile = accepted.body.vm_id;
      // The failing step is logged in vm-service with its error, the VM, the trace and the user.
      const failing = await until(
        "vm-service logging its database failure for the VM in flight",
        async () => problemsOf(e2e, "vm-service", inFlight, before),
        (lines) =>
          lines.some(
            (l) => l.message === "handler waits for a dependency that is away" && l.trace_id !== undefined,
          ),
      );
      // (Other lines may come first, e.g. the pool reporting an idle connection the server ended.)
      const line = failing.find((l) => l.message === "handler waits for a dependency that is away")!;
      // Its answer from the provisioner (VmBooted) could not be recorded: held and retried, not lost.
      expect(line).toMatchObject({
        level: "WARN",
        message: "handler waits for a dependency that is away",
        subject: expect.stringMatching(/\.evt\.provisioner\..+\.VmBooted$/),
        error: expect.stringMatching(/ECONNREFUSED|terminating connection|Connection terminated/),
        error_type: expect.any(String),
        vm_id: inFlight,
        trace_id: traceOfCreate(e2e, inFlight),
        user_id: String(me.id),
      });
    } finally {
      await postgres.start();
    }
    // Both complete: the boot answered while the database was away, and the create it never saw.
    expect((await reaches(inFlight, ["running", "error"])).status).toBe("running");
    expect((await reaches(createdMeanwhile, ["running", "error"])).status).toBe("running");
    // Nothing lost: every VM from before is still listed, and the in-flight VM's history is whole.
    const listed = (await user.call("GET", "/api/v1/vms?page_size=100")).body.items;
    expect(listed.length).toBe(listedBefore + 1);
    expect(await historyOf(inFlight)).toEqual(
      expect.arrayContaining(["VmCreated", "VmProvisioning", "VmRunning"]),
    );
    expect(await historyOf(createdMeanwhile)).toEqual(expect.arrayContaining(["VmCreated", "VmRunning"]));
  });

  test("when the pool is exhausted the next VM ends in error saying so, logged with full context, and the others run on", {
    timeout: 120_000,
  }, async () => {
    const running: string[] = [];
    let exhausted: { vmId: string; vm: Record<string, unknown> } | undefined;
    for (let i = 0; i <= POOL_SIZE && !exhausted; i++) {
      const vmId = await create(`fill-${i}`);
      const vm = await reaches(vmId, ["running", "error"]);
      if (vm.status === "running") running.push(vmId);
      else exhausted = { vmId, vm };
    }
    expect(exhausted, "a VM failed for want of an address").toBeDefined();
    const { vmId, vm } = exhausted!;
    expect(vm.error_message).toBe("IP allocation failed: exhausted (pool default)");
    expect(vm.ip_address).toBeNull();
    expect(await poolAllocated(admin)).toBe(POOL_SIZE);

    // The others are untouched: every earlier VM still runs with its own address.
    const items = (await user.call("GET", "/api/v1/vms?page_size=100")).body.items as Array<{
      vm_id: string;
      status: string;
      ip_address: string | null;
    }>;
    const others = items.filter((v) => v.vm_id !== vmId);
    expect(others).toHaveLength(POOL_SIZE);
    for (const other of others) expect(other.status, other.vm_id).toBe("running");
    expect(new Set(others.map((v) => v.ip_address)).size).toBe(POOL_SIZE);

    // Logged where it happened (ippool-service) and where it was decided (vm-service).
    const trace = traceOfCreate(e2e, vmId);
    const refused = problemsOf(e2e, "ippool-service", vmId).find((l) => l.message === "no address allocated");
    expect(refused, "ippool-service logged the refusal").toMatchObject({
      level: "WARN",
      reason: "exhausted",
      pool: "default",
      vm_id: vmId,
      trace_id: trace,
      user_id: String(me.id),
    });
    const decided = problemsOf(e2e, "vm-service", vmId).find((l) => l.message === "VM failed");
    expect(decided, "vm-service logged the VM's failure").toMatchObject({
      level: "WARN",
      step: "allocate",
      error_message: vm.error_message,
      vm_id: vmId,
      trace_id: trace,
      user_id: String(me.id),
    });
    expect(e2e.invalid).toEqual([]);
  });
});

/** The services that wrote `message` after line `from`. */
function servicesLogging(from: number, message: string): string[] {
  return [
    ...new Set(
      e2e.lines
        .slice(from)
        .filter((l) => l.entry.message === message)
        .map((l) => l.service),
    ),
  ];
}
