import { announce } from "@mikrom/bus";
import {
  CreateVm,
  GetVm,
  Header,
  HostHeartbeat,
  HostRegistered,
  IpAllocated,
  IpAllocationFailed,
  ListHosts,
  ListVms,
  StopVm,
  VmBooted,
  VmBootFailed,
  VmHistory,
  VmShutDown,
} from "@mikrom/contracts";
import { openDatabase } from "@mikrom/runtime";
import { describe, expect, test } from "@mikrom/testkit";
import { sql } from "kysely";
import { onVmCommand } from "../src/handlers/commands.ts";
import type { Tables } from "../src/store/tables.ts";
import { OWNER, testConfig, vmIdOf, World, withService } from "./harness.ts";

const HOST = "host-a";

async function registerHost(
  w: World,
  hostId = HOST,
  { vcpus, memoryMb } = { vcpus: 16, memoryMb: 16384 },
): Promise<void> {
  await w.publish(w.names.event("host", hostId, "HostRegistered"), HostRegistered, {
    hostId,
    driver: "fake",
    vcpus,
    memoryMb,
    startedAt: new Date().toISOString(),
  });
}

/** What the host registry says HOST holds. */
async function hostLoad(url: string) {
  const store = openDatabase<Tables>(url);
  try {
    return await store
      .selectFrom("hosts")
      .select(["placed_vms", "used_vcpus", "used_memory_mb"])
      .where("host_id", "=", HOST)
      .executeTakeFirstOrThrow();
  } finally {
    await store.destroy();
  }
}

async function create(w: World, vmId: string): Promise<void> {
  const outcome = await w.command("create", CreateVm, {
    vmId,
    actor: OWNER,
    name: "web-1",
    description: null,
    vcpuCount: 2,
    memoryMb: 1024,
  });
  expect(outcome.headers?.get(Header.Type)).toBe("VmCreated");
}

async function allocate(w: World, vmId: string, address = "10.0.0.5"): Promise<void> {
  await w.commands.ofType("AllocateIp", vmId);
  await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
    vmId,
    poolId: "pool-0000aaaa",
    pool: "default",
    address,
    prefixLength: 24,
    gateway: "10.0.0.1",
  });
}

async function boot(w: World, vmId: string, hostId = HOST): Promise<void> {
  const cmd = await w.commands.ofType("BootVm", vmId);
  expect(cmd.subject).toBe(w.names.command("provisioner", hostId, "boot"));
  await w.publish(w.names.event("provisioner", hostId, "VmBooted"), VmBooted, {
    vmId,
    hostId,
    driver: "fake",
    bootMs: 5,
  });
}

describe("the VM lifecycle over NATS and PostgreSQL", () => {
  test("a create goes pending, provisioning, running as the IP and boot events arrive", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      await registerHost(w);
      const vmId = vmIdOf(1);
      await create(w, vmId);
      // Read your writes: the VM is readable as soon as the command is answered.
      expect(await w.query(GetVm, { vmId, actor: OWNER })).toMatchObject({
        status: "pending",
        name: "web-1",
      });
      await allocate(w, vmId);
      const provisioning = await w.vmEvents.ofType("VmProvisioning", vmId);
      expect(provisioning.json()).toMatchObject({ ipAddress: "10.0.0.5", hostId: HOST });
      await boot(w, vmId);
      const vm = await w.until(vmId, "running");
      expect(vm).toMatchObject({ ipAddress: "10.0.0.5", host: HOST, errorMessage: null, vcpuCount: 2 });

      const history = await w.query(VmHistory, { vmId, actor: OWNER });
      expect(history.events.map((e) => e.type)).toEqual(["VmCreated", "VmProvisioning", "VmRunning"]);
      expect(history.events[0]!.actor).toEqual({ userId: OWNER.userId, userName: OWNER.userName });
      const list = await w.query(ListVms, { actor: OWNER, page: 1, pageSize: 10 });
      expect(list).toMatchObject({ total: 1, items: [{ vmId, status: "running" }] });
      await expect(
        w.query(GetVm, { vmId, actor: { userId: 99, userName: "eve", superuser: false } }),
      ).rejects.toThrow(/not_found/);
    });
  });

  test("a failed allocation puts the VM in error and releases the IP", async ({ db, nats }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      await registerHost(w);
      const vmId = vmIdOf(2);
      await create(w, vmId);
      await w.commands.ofType("AllocateIp", vmId);
      await w.publish(w.names.event("ippool", vmId, "IpAllocationFailed"), IpAllocationFailed, {
        vmId,
        pool: "default",
        reason: "exhausted",
      });
      const vm = await w.until(vmId, "error");
      expect(vm.errorMessage).toBe("IP allocation failed: exhausted (pool default)");
      expect(vm.ipAddress).toBeNull();
      await w.commands.ofType("ReleaseIp", vmId);
    });
  });

  test("a failed boot puts the VM in error and gives back the IP and the host", async ({ db, nats }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      await registerHost(w);
      const vmId = vmIdOf(3);
      await create(w, vmId);
      await allocate(w, vmId);
      await w.commands.ofType("BootVm", vmId);
      // Placed: the host counts the VM and its size, which placement balances on.
      expect(await hostLoad(db.url)).toEqual({ placed_vms: 1, used_vcpus: 2, used_memory_mb: 1024 });
      await w.publish(w.names.event("provisioner", HOST, "VmBootFailed"), VmBootFailed, {
        vmId,
        hostId: HOST,
        step: "kernel",
        reason: "kernel image missing",
      });
      const vm = await w.until(vmId, "error");
      expect(vm).toMatchObject({ ipAddress: null, host: null });
      expect(vm.errorMessage).toContain("kernel image missing");
      await w.commands.ofType("ReleaseIp", vmId);
      await w.commands.ofType("DestroyVm", vmId);
      expect(await hostLoad(db.url)).toEqual({ placed_vms: 0, used_vcpus: 0, used_memory_mb: 0 });
    });
  });

  test("a provisioner that stays silent past the boot deadline leaves the VM in error, IP released", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { BOOT_TIMEOUT_MS: "300" }), async () => {
      await registerHost(w);
      const vmId = vmIdOf(4);
      await create(w, vmId);
      await allocate(w, vmId);
      await w.commands.ofType("BootVm", vmId);
      const vm = await w.until(vmId, "error");
      expect(vm.errorMessage).toBe(`boot timed out: no answer from provisioner host ${HOST} within 300 ms`);
      await w.commands.ofType("ReleaseIp", vmId);
    });
  });

  test("two stops at once: one is accepted, one refused; a redelivered command changes nothing", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async (service) => {
      await registerHost(w);
      const vmId = vmIdOf(5);
      await create(w, vmId);
      await allocate(w, vmId);
      await boot(w, vmId);
      await w.until(vmId, "running");

      const outcomes = await Promise.all([
        w.command("stop", StopVm, { vmId, actor: OWNER }),
        w.command("stop", StopVm, { vmId, actor: OWNER }),
      ]);
      const types = outcomes.map((m) => m.headers?.get(Header.Type)).sort();
      expect(types).toEqual(["CommandRejected", "VmStopRequested"]);
      const rejected = outcomes.find((m) => m.headers?.get(Header.Type) === "CommandRejected")!;
      expect(rejected.json()).toMatchObject({
        code: "conflict",
        reason: "VM is not running (current status: stopping)",
      });

      // The accepted stop arrives again (as after a lost ack): the inbox knows it.
      const accepted = outcomes.find((m) => m.headers?.get(Header.Type) === "VmStopRequested")!;
      const before = await w.query(VmHistory, { vmId, actor: OWNER });
      const again = await onVmCommand(service.deps, {
        message: { type: "StopVm", data: { vmId, actor: OWNER } },
        messageId: accepted.headers!.get(Header.CausationId),
        correlationId: null,
      });
      expect(again.outcome).toBe("duplicate");
      expect((await w.query(VmHistory, { vmId, actor: OWNER })).events).toHaveLength(before.events.length);

      await w.commands.ofType("ShutDownVm", vmId);
      await w.publish(w.names.event("provisioner", HOST, "VmShutDown"), VmShutDown, { vmId, hostId: HOST });
      await w.until(vmId, "stopped");
    });
  });

  test("a create with no host waits with its address held and boots once a host registers", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      const vmId = vmIdOf(7);
      await create(w, vmId);
      await allocate(w, vmId);
      await w.vmEvents.ofType("VmAwaitingHost", vmId);
      expect(await w.query(GetVm, { vmId, actor: OWNER })).toMatchObject({
        status: "pending",
        ipAddress: "10.0.0.5",
        host: null,
        errorMessage: null,
      });
      await registerHost(w);
      await boot(w, vmId);
      expect(await w.until(vmId, "running")).toMatchObject({ host: HOST, ipAddress: "10.0.0.5" });
      expect(w.commands.typesFor(vmId)).not.toContain("ReleaseIp");
    });
  });

  test("a create with no host at all fails at the schedule deadline, naming the step, and releases the IP", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { SCHEDULE_TIMEOUT_MS: "500" }), async () => {
      const vmId = vmIdOf(8);
      await create(w, vmId);
      await allocate(w, vmId);
      const vm = await w.until(vmId, "error");
      expect(vm).toMatchObject({
        errorMessage: "schedule timed out: no host for the VM within 500 ms: no live provisioner host",
        host: null,
        ipAddress: null,
      });
      await w.commands.ofType("ReleaseIp", vmId);
      expect(w.commands.typesFor(vmId)).not.toContain("BootVm");
    });
  });

  /** The VM as its owner reads it, host status included. */
  const read = (w: World, vmId: string) => w.query(GetVm, { vmId, actor: OWNER });
  /**
   * A heartbeat as agents send it, on `<ns>.beat.<host>` (core NATS); `stream`: as agents before that
   * did, on the events stream, which vm-service still takes during an upgrade.
   */
  const heartbeat = async (
    w: World,
    via: "core" | "stream" = "core",
    hostId = HOST,
    subjectHost = hostId,
  ) => {
    const data = { hostId, at: new Date().toISOString(), runningVms: 1 };
    if (via === "stream")
      await w.publish(w.names.event("host", subjectHost, "HostHeartbeat"), HostHeartbeat, data);
    else {
      announce(w.nats.nc, HostHeartbeat, w.names.heartbeat(subjectHost), data);
      await w.nats.nc.flush();
    }
  };
  /** Hosts are judged only once the sweeper's catch-up (10 s from when it starts) is over: up to 30 s. */
  async function untilHost(w: World, vmId: string, hostStatus: "reachable" | "unreachable") {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      const vm = await read(w, vmId);
      if (vm.hostStatus === hostStatus) return vm;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`host of ${vmId} never became ${hostStatus}`);
  }

  test("a silent host is unreachable: its VMs keep their state, host commands are refused, lost only after the grace", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    const env = { HOST_HEARTBEAT_TIMEOUT_MS: "1500", HOST_LOST_AFTER_MS: "3000" };
    await withService(testConfig(db, nats, env), async () => {
      await registerHost(w);
      const vmId = vmIdOf(6);
      await create(w, vmId);
      await allocate(w, vmId);
      await boot(w, vmId);
      expect(await w.until(vmId, "running")).toMatchObject({ hostStatus: "reachable" });
      await heartbeat(w);
      // No more heartbeats: the host goes silent. Its VM is most likely still running there.
      expect(await untilHost(w, vmId, "unreachable")).toMatchObject({ status: "running", host: HOST });
      const stop = await w.command("stop", StopVm, { vmId, actor: OWNER });
      expect(stop.json()).toMatchObject({
        code: "conflict",
        reason: expect.stringMatching(/host-a is unreachable/),
      });
      // Silent past the grace: now the VM counts as gone.
      const vm = await w.until(vmId, "error");
      expect(vm.errorMessage).toMatch(/^host lost: no heartbeat from host host-a/);
      expect(vm).toMatchObject({ host: null, ipAddress: null, hostStatus: null });
      await w.commands.ofType("ReleaseIp", vmId);
    });
  });

  test.for(["core", "stream"] as const)(
    "an agent silent past its heartbeat that comes back (heartbeat on %s) leaves its VMs running",
    async (via, { db, nats }) => {
      const w = new World(nats);
      await withService(testConfig(db, nats, { HOST_HEARTBEAT_TIMEOUT_MS: "1000" }), async () => {
        await registerHost(w);
        const vmId = vmIdOf(7);
        await create(w, vmId);
        await allocate(w, vmId);
        await boot(w, vmId);
        await w.until(vmId, "running");
        await untilHost(w, vmId, "unreachable");
        await heartbeat(w, via);
        expect(await untilHost(w, vmId, "reachable")).toMatchObject({
          status: "running",
          errorMessage: null,
        });
        expect(w.vmEvents.typesFor(vmId)).not.toContain("VmFailed");
        // And it takes commands again.
        const stop = await w.command("stop", StopVm, { vmId, actor: OWNER });
        expect(stop.headers?.get("Mikrom-Type")).toBe("VmStopRequested");
      });
    },
  );

  test("a live host's heartbeats are taken while placements hold the scheduling lock, window after window", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    // Heartbeats are written a window at a time (100 ms with this timeout).
    await withService(testConfig(db, nats, { HOST_HEARTBEAT_TIMEOUT_MS: "2000" }), async () => {
      // Too small for the VM: it waits for a host, and every window of heartbeats gives it a look.
      await registerHost(w, HOST, { vcpus: 1, memoryMb: 512 });
      const vmId = vmIdOf(8);
      await create(w, vmId);
      await allocate(w, vmId);
      await w.vmEvents.ofType("VmAwaitingHost", vmId);
      const store = openDatabase<Tables>(db.url);
      const lastSeen = async () =>
        (
          await store
            .selectFrom("hosts")
            .select("last_seen")
            .where("host_id", "=", HOST)
            .executeTakeFirstOrThrow()
        ).last_seen;
      const untilHeardAfter = async (before: Date) => {
        for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
          const seen = await lastSeen();
          if (seen > before) return seen;
          await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error("the heartbeat waited for the scheduling lock");
      };
      try {
        // A placement that never finishes holds the lock for as long as the heartbeats are awaited;
        // the look the first window gives the waiting VM waits behind it, the second window must not.
        await store.transaction().execute(async (tx) => {
          await sql`SELECT pg_advisory_xact_lock(hashtext('vm-scheduling'))`.execute(tx);
          await heartbeat(w);
          const first = await untilHeardAfter(await lastSeen());
          await heartbeat(w);
          await untilHeardAfter(first);
        });
      } finally {
        await store.destroy();
      }
    });
  });

  test("every host's heartbeat is taken; one on another host's subject is dropped", async ({ db, nats }) => {
    const w = new World(nats);
    const hosts = Array.from({ length: 20 }, (_, i) => `host-${i}`);
    await withService(testConfig(db, nats), async () => {
      for (const h of hosts) await registerHost(w, h);
      const store = openDatabase<Tables>(db.url);
      const lastSeen = async () =>
        new Map(
          (await store.selectFrom("hosts").select(["host_id", "last_seen"]).execute()).map((r) => [
            r.host_id,
            r.last_seen.getTime(),
          ]),
        );
      try {
        await expect.poll(async () => (await lastSeen()).size, { timeout: 10_000 }).toBe(hosts.length);
        const before = await lastSeen();
        await new Promise((r) => setTimeout(r, 10));
        // host-0 speaking for host-1, on its own subject: neither is heard from.
        await heartbeat(w, "core", "host-1", "host-0");
        for (const h of hosts.slice(2)) await heartbeat(w, "core", h);
        await expect
          .poll(
            async () => {
              const now = await lastSeen();
              return hosts.slice(2).filter((h) => now.get(h)! <= before.get(h)!);
            },
            { timeout: 10_000 },
          )
          .toEqual([]);
        const after = await lastSeen();
        expect([after.get("host-0"), after.get("host-1")]).toEqual([
          before.get("host-0"),
          before.get("host-1"),
        ]);
      } finally {
        await store.destroy();
      }
    });
  });

  test("the host registry answers a superuser: capacity, load, last heartbeat, the VMs the host says it runs; a user is refused", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    const ADMIN = { userId: 1, userName: "root", superuser: true };
    await withService(testConfig(db, nats), async () => {
      await registerHost(w);
      const vmId = vmIdOf(9);
      await create(w, vmId);
      await allocate(w, vmId);
      await boot(w, vmId);
      await w.until(vmId, "running");
      await heartbeat(w);
      const hosts = () => w.query(ListHosts, { actor: ADMIN });
      await expect.poll(async () => (await hosts()).items[0]?.runningVms, { timeout: 10_000 }).toBe(1);
      const [host] = (await hosts()).items;
      expect(host).toMatchObject({
        hostId: HOST,
        driver: "fake",
        vcpus: 16,
        memoryMb: 16384,
        status: "up",
        placedVms: 1,
        usedVcpus: 2,
        usedMemoryMb: 1024,
        unreachableSince: null,
        stoppedAt: null,
      });
      expect(Date.parse(host!.registeredAt!)).toBeLessThanOrEqual(Date.parse(host!.lastSeenAt));
      await expect(w.query(ListHosts, { actor: OWNER })).rejects.toThrow(/^forbidden/);
    });
  });

  test("an allocation waiting in the IP pool's queue outlives its deadline; taken and never answered, it fails", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    const allocations = () =>
      w.commands.messages.filter((m) => m.headers?.get("Mikrom-Type") === "AllocateIp");
    await withService(
      testConfig(db, nats, { ALLOCATE_TIMEOUT_MS: "400", RESEND_AFTER_MS: "100" }),
      async () => {
        await registerHost(w);
        const vmId = vmIdOf(9);
        await create(w, vmId);
        await w.commands.ofType("AllocateIp", vmId);
        // The IP pool is down: its queue holds the command past several deadlines and resend times;
        // the VM waits, and nothing more is sent into a queue nobody drains.
        await new Promise((r) => setTimeout(r, 1_000));
        const queued = allocations().length;
        await new Promise((r) => setTimeout(r, 1_500));
        expect((await w.query(GetVm, { vmId, actor: OWNER })).status).toBe("pending");
        expect(allocations()).toHaveLength(queued);
        // It is back, takes every command and loses them: now the answer is late, the command is sent
        // again, and at the deadline the VM fails.
        const taking = setInterval(() => void w.takeCommands("ippool").catch(() => {}), 50);
        try {
          const vm = await w.until(vmId, "error");
          expect(vm.errorMessage).toBe(
            "allocate timed out: no answer from the IP pool service within 400 ms",
          );
        } finally {
          clearInterval(taking);
        }
      },
    );
  });

  test("a step whose command was lost is sent again, the same message, before its deadline", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { RESEND_AFTER_MS: "300" }), async () => {
      await registerHost(w);
      const vmId = vmIdOf(8);
      await create(w, vmId);
      await allocate(w, vmId);
      const first = await w.commands.ofType("BootVm", vmId);
      const id = first.headers?.get("Mikrom-Message-Id");
      expect(first.headers?.get("Nats-Msg-Id")).toBe(id);
      // Nobody answers (as if NATS lost the BootVm): it goes out again under the same message id,
      // marked sent again, so JetStream's duplicate window does not drop it while it holds the first.
      const again = await w.commands.next(
        (m) => m !== first && m.headers?.get("Mikrom-Type") === "BootVm" && m.subject.endsWith(".boot"),
      );
      expect(again.headers?.get("Mikrom-Message-Id")).toBe(id);
      expect(again.headers?.get("Nats-Msg-Id")).toBe(`${id}:resend:1`);
      expect(again.json()).toEqual(first.json());
      await boot(w, vmId);
      await w.until(vmId, "running");
    });
  });
});
