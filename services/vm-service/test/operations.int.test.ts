import { DeadLetterHeader } from "@mikrom/bus";
import {
  type Actor,
  CommandRejected,
  CreateVm,
  DeleteVm,
  GetVm,
  Header,
  HostRegistered,
  HostStopped,
  IpAllocated,
  ListVms,
  RestartVm,
  StartVm,
  StopVm,
  UpdateVm,
  VmBooted,
  VmDestroyed,
  VmHistory,
  type VmListKey,
  VmShutDown,
  type VmStatus,
  WaitVm,
} from "@mikrom/contracts";
import { openDatabase } from "@mikrom/runtime";
import { describe, expect, test } from "@mikrom/testkit";
import { sql } from "kysely";
import type { Tables } from "../src/store/tables.ts";
import { OWNER, testConfig, vmIdOf, World, withService } from "./harness.ts";

const HOST = "host-a";
const ADMIN = { userId: 1, userName: "root", superuser: true };

async function createdVm(w: World, vmId: string, n: number, actor: Actor = OWNER): Promise<void> {
  const created = await w.command("create", CreateVm, {
    vmId,
    actor,
    name: `vm-${n}`,
    description: null,
    vcpuCount: 1,
    memoryMb: 512,
  });
  expect(created.headers?.get(Header.Type)).toBe("VmCreated");
}

async function runningVm(w: World, vmId: string, n: number): Promise<void> {
  await createdVm(w, vmId, n);
  await w.commands.ofType("AllocateIp", vmId);
  await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
    vmId,
    poolId: "pool-0000aaaa",
    pool: "default",
    address: `10.0.0.${10 + n}`,
    prefixLength: 24,
    gateway: "10.0.0.1",
  });
  await w.commands.ofType("BootVm", vmId);
  await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
    vmId,
    hostId: HOST,
    driver: "fake",
    bootMs: 1,
  });
  await w.until(vmId, "running");
}

async function host(w: World): Promise<void> {
  await w.publish(w.names.event("host", HOST, "HostRegistered"), HostRegistered, {
    hostId: HOST,
    driver: "fake",
    vcpus: 32,
    memoryMb: 32768,
    startedAt: new Date().toISOString(),
  });
}

/** Every page of the list by keyset paging, each after the last one's final VM; `between` pages. */
async function walk(
  w: World,
  req: { actor: Actor; status?: VmStatus },
  pageSize: number,
  between?: () => Promise<void>,
): Promise<string[]> {
  const seen: string[] = [];
  let after: VmListKey | undefined;
  for (;;) {
    const page = await w.query(ListVms, { ...req, page: 1, pageSize, ...(after && { after }) });
    seen.push(...page.items.map((v) => v.vmId));
    if (!page.more) return seen;
    after = page.keys?.at(-1);
    await between?.();
  }
}

describe("VM operations after create", () => {
  test("stop, start, restart and delete go through the provisioner and end where they should", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      await host(w);
      const vmId = vmIdOf(0x10);
      await runningVm(w, vmId, 1);

      expect((await w.command("stop", StopVm, { vmId, actor: OWNER })).headers?.get(Header.Type)).toBe(
        "VmStopRequested",
      );
      await w.commands.ofType("ShutDownVm", vmId);
      await w.publish(w.names.event("provisioner", HOST, "VmShutDown"), VmShutDown, { vmId, hostId: HOST });
      await w.until(vmId, "stopped");

      const refused = await w.command("restart", RestartVm, { vmId, actor: OWNER });
      expect(refused.json()).toMatchObject({
        command: "RestartVm",
        code: "conflict",
        reason: "VM is not running (current status: stopped)",
      });

      await w.command("start", StartVm, { vmId, actor: OWNER });
      const resume = await w.commands.ofType("ResumeVm", vmId);
      expect(resume.subject).toBe(w.names.command("provisioner", HOST, "resume"));
      await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
        vmId,
        hostId: HOST,
        driver: "fake",
        bootMs: 1,
      });
      await w.until(vmId, "running");

      await w.command("restart", RestartVm, { vmId, actor: OWNER });
      await w.commands.ofType("RebootVm", vmId);
      expect((await w.query(GetVm, { vmId, actor: OWNER })).status).toBe("restarting");
      await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
        vmId,
        hostId: HOST,
        driver: "fake",
        bootMs: 1,
      });
      await w.until(vmId, "running");

      await w.command("delete", DeleteVm, { vmId, actor: OWNER });
      await w.commands.ofType("DestroyVm", vmId);
      await w.publish(w.names.event("provisioner", HOST, "VmDestroyed"), VmDestroyed, { vmId, hostId: HOST });
      await w.vmEvents.ofType("VmDeleted", vmId);
      await w.commands.ofType("ReleaseIp", vmId);
      await expect(w.query(GetVm, { vmId, actor: OWNER })).rejects.toThrow(/not_found/);
      // Gone from reads, its history stays.
      const history = await w.query(VmHistory, { vmId, actor: OWNER });
      expect(history.events.map((e) => e.type)).toEqual([
        "VmCreated",
        "VmProvisioning",
        "VmRunning",
        "VmStopRequested",
        "VmStopped",
        "VmStartRequested",
        "VmRunning",
        "VmRestartRequested",
        "VmRunning",
        "VmDeleteRequested",
        "VmDeleted",
      ]);
    });
  });

  test("update renames, the per-user limit refuses, and lists page newest first with a status filter", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { MAX_VMS_PER_USER: "3" }), async () => {
      await host(w);
      await runningVm(w, vmIdOf(0x21), 1);
      for (const n of [0x22, 0x23]) {
        await w.command("create", CreateVm, {
          vmId: vmIdOf(n),
          actor: OWNER,
          name: `vm-${n}`,
          description: null,
          vcpuCount: 1,
          memoryMb: 512,
        });
      }
      const limited = await w.command("create", CreateVm, {
        vmId: vmIdOf(0x24),
        actor: OWNER,
        name: "one-too-many",
        description: null,
        vcpuCount: 1,
        memoryMb: 512,
      });
      expect(limited.json()).toMatchObject({
        code: "limit",
        reason: "VM limit reached: at most 3 VMs per user",
      });

      const updated = await w.command("update", UpdateVm, {
        vmId: vmIdOf(0x21),
        actor: OWNER,
        name: "renamed",
        description: "the web server",
      });
      expect(updated.headers?.get(Header.Type)).toBe("VmUpdated");
      expect(await w.query(GetVm, { vmId: vmIdOf(0x21), actor: OWNER })).toMatchObject({
        name: "renamed",
        description: "the web server",
        status: "running",
      });

      const page1 = await w.query(ListVms, { actor: OWNER, page: 1, pageSize: 2 });
      expect(page1.total).toBe(3);
      expect(page1.items.map((v) => v.vmId)).toEqual([vmIdOf(0x23), vmIdOf(0x22)]);
      const page2 = await w.query(ListVms, { actor: OWNER, page: 2, pageSize: 2 });
      expect(page2.items.map((v) => v.vmId)).toEqual([vmIdOf(0x21)]);
      const running = await w.query(ListVms, { actor: OWNER, page: 1, pageSize: 10, status: "running" });
      expect(running.items.map((v) => v.vmId)).toEqual([vmIdOf(0x21)]);
      const stranger = { userId: 99, userName: "eve", superuser: false };
      expect((await w.query(ListVms, { actor: stranger, page: 1, pageSize: 10 })).total).toBe(0);
      expect((await w.query(ListVms, { actor: ADMIN, page: 1, pageSize: 10 })).total).toBe(3);
      expect((await w.query(GetVm, { vmId: vmIdOf(0x21), actor: ADMIN })).userId).toBe(OWNER.userId);

      // Another user's VM does not exist for them, for commands as for reads.
      const foreign = await w.command("stop", StopVm, { vmId: vmIdOf(0x21), actor: stranger });
      expect(foreign.json()).toMatchObject({ code: "not_found" });
    });
  });

  test("keyset pages list every VM once, newest first, through equal times and microseconds, whoever asks", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    const other: Actor = { userId: 8, userName: "bob", superuser: false };
    // Four VMs in one microsecond and others a microsecond away, which a Date (milliseconds) would
    // round together: a place kept to the millisecond would skip or repeat them.
    const vms: Array<[number, Actor, string]> = [
      [0x30, OWNER, "2026-01-01T00:00:00.000002Z"],
      [0x31, OWNER, "2026-01-01T00:00:00.000001Z"],
      [0x32, other, "2026-01-01T00:00:00.000001Z"],
      [0x33, OWNER, "2026-01-01T00:00:00.000001Z"],
      [0x34, OWNER, "2026-01-01T00:00:00.000001Z"],
      [0x35, other, "2026-01-01T00:00:00.000000Z"],
      [0x36, OWNER, "2025-12-31T23:59:59.999999Z"],
      [0x37, OWNER, "2026-01-01T00:00:00.000000Z"],
    ];
    const everyone = [0x30, 0x34, 0x33, 0x32, 0x31, 0x37, 0x35, 0x36].map(vmIdOf);
    const owners = everyone.filter((id) => vms.find(([n]) => vmIdOf(n) === id)?.[1] === OWNER);
    await withService(testConfig(db, nats, { ALLOCATE_TIMEOUT_MS: "600000" }), async () => {
      await host(w);
      for (const [n, actor] of vms) {
        if (n === 0x30 || n === 0x33) await runningVm(w, vmIdOf(n), n - 0x30);
        else await createdVm(w, vmIdOf(n), n, actor);
      }
      const store = openDatabase<Tables>(db.url);
      try {
        for (const [n, , at] of vms)
          await sql`UPDATE vms SET created_at = ${at}::timestamptz WHERE vm_id = ${vmIdOf(n)}`.execute(store);
      } finally {
        await store.destroy();
      }

      const first = await w.query(ListVms, { actor: ADMIN, page: 1, pageSize: 2 });
      expect(first.keys?.[0]).toEqual({ createdAt: "2026-01-01T00:00:00.000002Z", vmId: vmIdOf(0x30) });
      expect(first).toMatchObject({ total: 8, more: true });
      for (const pageSize of [1, 2, 3, 8])
        expect(await walk(w, { actor: ADMIN }, pageSize)).toEqual(everyone);
      expect(await walk(w, { actor: OWNER }, 2)).toEqual(owners);
      expect(await walk(w, { actor: other }, 1)).toEqual([vmIdOf(0x32), vmIdOf(0x35)]);
      expect(await walk(w, { actor: OWNER, status: "running" }, 1)).toEqual([vmIdOf(0x30), vmIdOf(0x33)]);
      expect(await walk(w, { actor: OWNER, status: "pending" }, 3)).toEqual(
        owners.filter((id) => id !== vmIdOf(0x30) && id !== vmIdOf(0x33)),
      );

      // A VM created during the walk heads the list; the walk's pages go on from where they were.
      let created = false;
      const during = await walk(w, { actor: ADMIN }, 3, async () => {
        if (created) return;
        created = true;
        await createdVm(w, vmIdOf(0x38), 0x38);
      });
      expect(during).toEqual(everyone);
      expect((await w.query(ListVms, { actor: ADMIN, page: 1, pageSize: 1 })).items[0]?.vmId).toBe(
        vmIdOf(0x38),
      );
    });
  });

  test("a wait answers at once when the status is there, and says not reached when the timeout passes", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      const vmId = vmIdOf(0x30);
      await w.command("create", CreateVm, {
        vmId,
        actor: OWNER,
        name: "waiter",
        description: null,
        vcpuCount: 1,
        memoryMb: 512,
      });
      expect(await w.query(WaitVm, { vmId, actor: OWNER, status: "pending", timeoutMs: 0 })).toMatchObject({
        reached: true,
      });
      expect(await w.query(WaitVm, { vmId, actor: OWNER, status: "running", timeoutMs: 200 })).toMatchObject({
        reached: false,
        vm: { status: "pending" },
      });
    });
  });

  test("a VM goes to the live host with room, and to error when no host has room by the schedule deadline", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { SCHEDULE_TIMEOUT_MS: "500" }), async () => {
      const register = (hostId: string, vcpus: number) =>
        w.publish(w.names.event("host", hostId, "HostRegistered"), HostRegistered, {
          hostId,
          driver: "fake",
          vcpus,
          memoryMb: 4096,
          startedAt: new Date().toISOString(),
        });
      await register("small", 1);
      await register("large", 4);
      const place = async (n: number, vcpuCount: number) => {
        const vmId = vmIdOf(0x40 + n);
        await w.command("create", CreateVm, {
          vmId,
          actor: OWNER,
          name: `p-${n}`,
          description: null,
          vcpuCount,
          memoryMb: 512,
        });
        await w.commands.ofType("AllocateIp", vmId);
        await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
          vmId,
          poolId: "pool-0000aaaa",
          pool: "default",
          address: `10.0.1.${n}`,
          prefixLength: 24,
          gateway: "10.0.1.254",
        });
        return vmId;
      };
      const first = await place(1, 3);
      expect((await w.commands.ofType("BootVm", first)).subject).toBe(
        w.names.command("provisioner", "large", "boot"),
      );
      const second = await place(2, 2);
      const vm = await w.until(second, "error");
      expect(vm.errorMessage).toBe(
        "schedule timed out: no host for the VM within 500 ms: no live host with room for 2 vCPU and 512 MB (2 live)",
      );
      await w.commands.ofType("ReleaseIp", second);
    });
  });

  test("a host that says it stopped is unreachable, and its VMs are lost only after the grace", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats, { HOST_LOST_AFTER_MS: "1500" }), async () => {
      await host(w);
      const vmId = vmIdOf(0x50);
      await runningVm(w, vmId, 5);
      await w.publish(w.names.event("host", HOST, "HostStopped"), HostStopped, {
        hostId: HOST,
        at: new Date().toISOString(),
      });
      expect((await w.query(GetVm, { vmId, actor: OWNER })).status).toBe("running");
      // Hosts are judged only after the sweeper's catch-up window from the service's start (10 s).
      expect((await w.until(vmId, "error", 30_000)).errorMessage).toMatch(
        /^host lost: no heartbeat from host host-a/,
      );
    });
  });

  test("the IP pool's refusal of an admin's command, on the pool's subjects, is taken and ignored, not dead-lettered", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      const subject = w.names.event("ippool", "pool-0000aaaa", "CommandRejected");
      await w.publish(subject, CommandRejected, {
        code: "conflict",
        reason: 'pool "default" has 2 allocated address(es); release them before deleting it',
        command: "DeletePool",
        entityId: "pool-0000aaaa",
      });
      const stored = await nats.jsm.streams.getMessage(w.names.streams.events, { last_by_subj: subject });
      const seq = stored!.seq;
      // Handled (acknowledged, or terminated once dead-lettered) by vm-service's consumer of the pool's events.
      await expect
        .poll(
          async () =>
            (await nats.jsm.consumers.info(w.names.streams.events, "vm-service-ippool-events")).ack_floor
              .stream_seq,
          { timeout: 10_000 },
        )
        .toBeGreaterThanOrEqual(seq);
      const letter = await nats.jsm.streams
        .getMessage(w.names.streams.deadLetters, { last_by_subj: w.names.deadLetter(subject) })
        .catch(() => null);
      expect(letter?.header.get(DeadLetterHeader.Reason) ?? null).toBeNull();
    });
  });

  test("a host speaking for another host is dead-lettered with the reason and changes nothing", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    /** The dead letter of a message first published on `subject`, once the dead-letter stream has it. */
    const deadLetterOf = async (subject: string) => {
      for (let i = 0; i < 100; i++) {
        const m = await nats.jsm.streams
          .getMessage(w.names.streams.deadLetters, { last_by_subj: w.names.deadLetter(subject) })
          .catch(() => null);
        if (m) return m;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no dead letter for ${subject}`);
    };
    await withService(testConfig(db, nats), async () => {
      await host(w);
      const vmId = vmIdOf(0x60);
      await w.command("create", CreateVm, {
        vmId,
        actor: OWNER,
        name: "vm-forged",
        description: null,
        vcpuCount: 1,
        memoryMb: 512,
      });
      await w.commands.ofType("AllocateIp", vmId);
      await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
        vmId,
        pool: "default",
        poolId: "pool-0000aaaa",
        address: "10.0.0.60",
        prefixLength: 24,
        gateway: "10.0.0.1",
      });
      await w.commands.ofType("BootVm", vmId);
      // host-b's user may publish under host-b only; what it says about host-a's VM is not believed.
      const forged = w.names.event("provisioner", "host-b", "VmBooted");
      await w.publish(forged, VmBooted, { vmId, hostId: HOST, driver: "fake", bootMs: 1 });
      const forgedHost = w.names.event("host", "host-b", "HostStopped");
      await w.publish(forgedHost, HostStopped, { hostId: HOST, at: new Date().toISOString() });
      for (const subject of [forged, forgedHost]) {
        const letter = await deadLetterOf(subject);
        expect(letter.header.get(DeadLetterHeader.Reason)).toBe(
          `PermanentFailure: a fact about host ${HOST} published on ${subject}, another host's subject`,
        );
      }
      // Neither the boot nor the host's stop was taken: still booting, on a host still reachable.
      expect(await w.query(GetVm, { vmId, actor: OWNER })).toMatchObject({
        status: "provisioning",
        host: HOST,
        hostStatus: "reachable",
      });
      // The same fact on the host's own subject is taken.
      await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
        vmId,
        hostId: HOST,
        driver: "fake",
        bootMs: 1,
      });
      expect((await w.until(vmId, "running")).host).toBe(HOST);
    });
  });
});
