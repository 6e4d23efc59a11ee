import { setTimeout as delay } from "node:timers/promises";
import { callQuery } from "@mikrom/bus";
import {
  BootVm,
  DestroyVm,
  GetConsole,
  names as namesOf,
  provisionerQuerySubject,
  RebootVm,
  ResumeVm,
  ShutDownVm,
} from "@mikrom/contracts";
import { setLogDestination, startTelemetry } from "@mikrom/telemetry";
import { describe, expect, test } from "@mikrom/testkit";
import { FakeDriver, type Instance } from "../src/drivers/index.ts";
import { type RunningAgent, startProvisioner } from "../src/service.ts";
import { listHeld, recordVm } from "../src/store/instances.ts";
import { agentConfig, bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";

/**
 * The agent with the fake driver over real NATS and PostgreSQL: commands in, answers out through
 * the outbox, the instances table, host presence, the console query, reconcile after a restart.
 */
const HOST = "host-a";

async function withAgent(
  infra: { db: { url: string }; nats: { url: string; namespace: string } },
  env: Record<string, string>,
  body: (agent: RunningAgent, runDir: string) => Promise<void>,
): Promise<void> {
  const run = await tempRunDir();
  try {
    const agent = await startProvisioner(
      agentConfig({
        NATS_URL: infra.nats.url,
        PROVISIONER_DATABASE_URL: infra.db.url,
        MIKROM_NAMESPACE: infra.nats.namespace,
        MIKROM_HOST_ID: HOST,
        MIKROM_DRIVER: "fake",
        MIKROM_RUN_DIR: run.dir,
        ...env,
      }),
    );
    try {
      await body(agent, run.dir);
    } finally {
      await agent.stop();
    }
  } finally {
    await run.remove();
  }
}

describe("the provisioner agent (fake driver)", () => {
  test("a BootVm is answered with VmBooted caused by the command, and the instance is stored", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (agent) => {
      const id = await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000000a"));
      const booted = await tap.next("VmBooted", (e) => e.type === "VmBooted");
      expect(booted.subject).toBe(`${nats.namespace}.evt.provisioner.${HOST}.VmBooted`);
      expect(booted.causationId).toBe(id);
      expect(booted.correlationId).toBe(id);
      expect(booted.data).toMatchObject({ vmId: "srv-0000000a", hostId: HOST, driver: "fake" });
      const [held] = await listHeld(agent.store.db);
      expect(held).toMatchObject({ vmId: "srv-0000000a", status: "running" });
      expect(held?.instance?.consoleLog).toContain("srv-0000000a");
    });
    tap.close();
  });

  test("a BootVm for a VM that already runs is answered with VmBooted again without a second boot", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (agent) => {
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000000b"));
      await tap.next("first VmBooted", (e) => e.type === "VmBooted");
      const [first] = await listHeld(agent.store.db);
      const again = await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000000b"));
      await tap.next("second VmBooted", (e) => e.type === "VmBooted" && e.causationId === again);
      const [second] = await listHeld(agent.store.db);
      // The fake refuses to boot a running VM, so a second boot would have been a VmBootFailed.
      expect(tap.of("VmBootFailed")).toEqual([]);
      expect(second?.instance?.startedAt).toBe(first?.instance?.startedAt);
    });
    tap.close();
  });

  test("a boot that fails is answered with VmBootFailed naming the step and the reason", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, { MIKROM_FAKE_FAILURE_RATE: "1" }, async (agent) => {
      const id = await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000000c"));
      const failed = await tap.next("VmBootFailed", (e) => e.type === "VmBootFailed");
      expect(failed.causationId).toBe(id);
      expect(failed.data).toMatchObject({ vmId: "srv-0000000c", hostId: HOST, step: "readiness" });
      expect(failed.data.reason).toContain("injected failure");
      const [held] = await listHeld(agent.store.db);
      expect(held?.status).toBe("failed");
    });
    tap.close();
  });

  test("shutdown, resume, reboot and destroy are each answered, and a destroy of an unknown VM too", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    const vmId = "srv-0000000d";
    await withAgent({ db, nats }, {}, async (agent) => {
      const send = (def: Parameters<typeof sendCommand>[3], data: Parameters<typeof sendCommand>[4]) =>
        sendCommand(nats.nc, nats.namespace, HOST, def, data);
      const answer = async (id: string) =>
        (await tap.next(`answer to ${id}`, (e) => e.causationId === id)).type;

      expect(await answer(await send(BootVm, bootData(vmId)))).toBe("VmBooted");
      expect(await answer(await send(ShutDownVm, { vmId }))).toBe("VmShutDown");
      expect((await listHeld(agent.store.db))[0]?.status).toBe("stopped");
      expect(await answer(await send(ShutDownVm, { vmId }))).toBe("VmShutDown");
      expect(await answer(await send(ResumeVm, { vmId }))).toBe("VmBooted");
      expect(await answer(await send(RebootVm, { vmId }))).toBe("VmBooted");
      expect((await listHeld(agent.store.db))[0]?.status).toBe("running");
      expect(await answer(await send(DestroyVm, { vmId }))).toBe("VmDestroyed");
      expect(await listHeld(agent.store.db)).toEqual([]);
      expect(await answer(await send(DestroyVm, { vmId }))).toBe("VmDestroyed");
      expect(await answer(await send(DestroyVm, { vmId: "srv-000000ff" }))).toBe("VmDestroyed");
      expect(await answer(await send(ResumeVm, { vmId: "srv-000000fe" }))).toBe("VmBootFailed");
      expect(await answer(await send(ShutDownVm, { vmId: "srv-000000fe" }))).toBe("VmShutdownFailed");
      // A destroyed VM can be booted again on the same host.
      expect(await answer(await send(BootVm, bootData(vmId)))).toBe("VmBooted");
    });
    tap.close();
  });

  test("the host registers, heartbeats with its running VMs, and says when it stops", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent(
      { db, nats },
      { HEARTBEAT_INTERVAL_MS: "200", MIKROM_HOST_VCPUS: "6", MIKROM_HOST_MEMORY_MB: "4096" },
      async () => {
        const registered = await tap.next("HostRegistered", (e) => e.type === "HostRegistered");
        expect(registered.subject).toBe(`${nats.namespace}.evt.host.${HOST}.HostRegistered`);
        expect(registered.data).toMatchObject({ hostId: HOST, driver: "fake", vcpus: 6, memoryMb: 4096 });
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000010"));
        const beat = await tap.next(
          "a heartbeat counting the VM",
          (e) => e.type === "HostHeartbeat" && e.data.runningVms === 1,
        );
        expect(beat.subject).toBe(`${nats.namespace}.beat.${HOST}`);
      },
    );
    await tap.next("HostStopped", (e) => e.type === "HostStopped" && e.data.hostId === HOST);
    tap.close();
  });

  test("the console of a VM can be read through the host's query", async ({ db, nats }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async () => {
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000011", "10.0.0.11"));
      await tap.next("VmBooted", (e) => e.type === "VmBooted");
      const names = namesOf(nats.namespace);
      const spec = {
        subject: provisionerQuerySubject(names, HOST, "console"),
        request: GetConsole,
        response: GetConsole.response,
      };
      expect(spec.subject).toBe(`${nats.namespace}.qry.provisioner.${HOST}.console`);
      const view = await callQuery(nats.nc, spec, { hostId: HOST, vmId: "srv-00000011" });
      expect(view.status).toBe("running");
      expect(view.output).toContain("MIKROM-READY vm=srv-00000011 ip=10.0.0.11/24");
      await expect(callQuery(nats.nc, spec, { hostId: HOST, vmId: "srv-00000012" })).rejects.toMatchObject({
        code: "not_found",
      });
    });
    tap.close();
  });

  test("a command is a span with the driver, and its log lines carry the VM and the user from the baggage", async ({
    db,
    nats,
  }) => {
    const lines: Array<Record<string, unknown>> = [];
    setLogDestination({ write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    // Finished spans become log lines ("span") with the console exporter.
    process.env.OTEL_TRACES_EXPORTER = "console";
    const telemetry = await startTelemetry({ serviceName: "provisioner" });
    const tap = new EventTap(nats.nc, nats.namespace);
    try {
      await withAgent({ db, nats }, {}, async () => {
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000013"), {
          id: "42",
          name: "bob",
        });
        await tap.next("VmBooted", (e) => e.type === "VmBooted");
      });
    } finally {
      await telemetry.shutdown();
      delete process.env.OTEL_TRACES_EXPORTER;
      setLogDestination(undefined);
      tap.close();
    }
    const span = lines.find((l) => (l.span as { name?: string } | undefined)?.name === "provisioner.boot")
      ?.span as { trace_id: string; attributes: Record<string, unknown> } | undefined;
    expect(span?.attributes).toMatchObject({
      "provisioner.driver": "fake",
      "vm.id": "srv-00000013",
      "host.id": HOST,
    });
    const answered = lines.find((l) => l.message === "BootVm: VmBooted");
    expect(answered).toMatchObject({
      logger: "mikrom.provisioner.agent",
      vm_id: "srv-00000013",
      user_id: "42",
      user_name: "bob",
      action: "BootVm",
    });
    expect(answered?.trace_id).toBe(span?.trace_id);
  });

  test("after a restart, running VMs are adopted and one that died meanwhile is reported lost", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    const run = await tempRunDir();
    const env = {
      NATS_URL: nats.url,
      PROVISIONER_DATABASE_URL: db.url,
      MIKROM_NAMESPACE: nats.namespace,
      MIKROM_HOST_ID: HOST,
      MIKROM_DRIVER: "fake",
      MIKROM_RUN_DIR: run.dir,
    };
    try {
      const first = await startProvisioner(agentConfig(env));
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000014"));
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000015", "10.0.0.15"));
      await tap.next("two VmBooted", () => tap.of("VmBooted").length === 2);
      const held = await listHeld(first.store.db);
      await first.stop();
      // The agent's stop leaves the VMs running; one of them dies while the agent is away.
      await new FakeDriver({ runDir: run.dir }).crash(held.find((h) => h.vmId === "srv-00000015")!.instance!);

      const second = await startProvisioner(agentConfig(env));
      try {
        const lost = await tap.next("VmLost", (e) => e.type === "VmLost");
        expect(lost.data).toMatchObject({ vmId: "srv-00000015", hostId: HOST });
        expect(lost.subject).toBe(`${nats.namespace}.evt.provisioner.${HOST}.VmLost`);
        const statuses = Object.fromEntries((await listHeld(second.store.db)).map((h) => [h.vmId, h.status]));
        expect(statuses).toEqual({ "srv-00000014": "running", "srv-00000015": "lost" });
        // The adopted VM is still under control.
        const stop = await sendCommand(nats.nc, nats.namespace, HOST, ShutDownVm, { vmId: "srv-00000014" });
        expect((await tap.next("answer to the stop", (e) => e.causationId === stop)).type).toBe("VmShutDown");
        expect(tap.of("VmLost")).toHaveLength(1);
      } finally {
        await second.stop();
      }
    } finally {
      tap.close();
      await run.remove();
    }
  });

  test("a VM whose process ends while the agent runs is reported lost at the next heartbeat", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, { HEARTBEAT_INTERVAL_MS: "200" }, async (agent, runDir) => {
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000016"));
      await tap.next("VmBooted", (e) => e.type === "VmBooted");
      const [held] = await listHeld(agent.store.db);
      await new FakeDriver({ runDir }).crash(held!.instance!);
      const lost = await tap.next("VmLost", (e) => e.type === "VmLost");
      expect(lost.data.reason).toContain("ended without a stop");
      const beat = await tap.next(
        "a heartbeat after the loss",
        (e) => e.type === "HostHeartbeat" && e.data.runningVms === 0,
      );
      expect(beat.data.hostId).toBe(HOST);
    });
    tap.close();
  });

  test("a command delivered again after its answer is not acted on twice, and its answer is sent again as it was", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (agent) => {
      const vmId = "srv-00000017";
      const boot = { type: "BootVm" as const, data: bootData(vmId) };
      await agent.agent.handle(boot, { messageId: "cmd-1" });
      await agent.agent.handle({ type: "ShutDownVm", data: { vmId } }, { messageId: "cmd-2" });
      const answers = () => tap.events.filter((e) => e.data.vmId === vmId);
      await tap.next("the two answers", () => answers().length === 2);
      // The boot again, as JetStream redelivers a message whose ack was lost: the VM must stay
      // stopped, and the boot's answer (which NATS may have lost) goes out again, the same message.
      await agent.agent.handle(boot, { messageId: "cmd-1" });
      expect((await listHeld(agent.store.db))[0]?.status).toBe("stopped");
      await tap.next("the boot's answer again", () => answers().length === 3);
      const [booted, shutDown, again] = answers();
      expect([booted?.type, shutDown?.type, again?.type]).toEqual(["VmBooted", "VmShutDown", "VmBooted"]);
      expect(again?.messageId).toBe(booted?.messageId);
      expect(again?.causationId).toBe("cmd-1");
      expect((agent.driver.driver as FakeDriver).boots).toBe(1);
    });
    tap.close();
  });

  test("a boot delivered twice at once gives one running guest and no failure", async ({ db, nats }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, { MIKROM_FAKE_LATENCY_MS: "300" }, async (agent) => {
      const fake = agent.driver.driver as FakeDriver;
      // Sent twice (vm-service sending it again), both in flight at once.
      const ids = await Promise.all([
        sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000019")),
        sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-00000019")),
      ]);
      // The same message twice at once (JetStream redelivering one whose handling seemed stuck).
      const same = { type: "BootVm" as const, data: bootData("srv-0000001a", "10.0.0.26") };
      await Promise.all([
        agent.agent.handle(same, { messageId: "cmd-same" }),
        agent.agent.handle(same, { messageId: "cmd-same" }),
      ]);
      for (const id of ids) {
        expect((await tap.next(`the answer to ${id}`, (e) => e.causationId === id)).type).toBe("VmBooted");
      }
      // Its answer goes out (again only if it had gone out before the second delivery was handled).
      await tap.next("the answer to cmd-same", (e) => e.causationId === "cmd-same" && e.type === "VmBooted");
      expect(fake.boots).toBe(2);
      expect(tap.of("VmBootFailed")).toEqual([]);
      const statuses = Object.fromEntries((await listHeld(agent.store.db)).map((h) => [h.vmId, h.status]));
      expect(statuses).toEqual({ "srv-00000019": "running", "srv-0000001a": "running" });
    });
    tap.close();
  });

  test("a boot cut short before the guest was ready is cleaned up at start, without a VmLost", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (first, runDir) => {
      // What a crash in the middle of a boot leaves: a `booting` row with the spawned VM's record,
      // and a VM that never got ready (the fake's boot runs on its agent's timer: it dies with it).
      const vmId = "srv-00000018";
      const fake = new FakeDriver({ runDir, bootLatencyMs: 60_000 });
      const cut = new AbortController();
      let spawned: Instance | undefined;
      const booting = fake
        .boot(bootData(vmId), {
          signal: cut.signal,
          onSpawned: (i) => {
            spawned = i;
          },
        })
        .catch(() => undefined);
      while (!spawned) await delay(10);
      const instance = spawned;
      await first.store.transaction((session) =>
        recordVm(session, "fake", { vmId, status: "booting", spec: bootData(vmId), instance }, []),
      );
      expect(await fake.find(vmId)).toEqual({ status: "gone", instance });
      expect(await first.agent.reconcile()).toMatchObject({ cleaned: [vmId], adopted: [], lost: [] });
      expect(await fake.find(vmId)).toBeUndefined();
      expect((await listHeld(first.store.db))[0]?.status).toBe("failed");
      cut.abort();
      await booting;
      // The redelivered command then boots it afresh.
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(vmId));
      await tap.next("VmBooted", (e) => e.type === "VmBooted");
      expect(tap.of("VmLost")).toEqual([]);
    });
    tap.close();
  });

  test("a VM whose stop was under way when the agent died is found stopped at start, not lost, and the stop is answered", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (first, runDir) => {
      // What a crash in the middle of a stop leaves: the row still `running` with the stop under
      // way, and the VM's process ended (the driver never got to mark it stopped).
      const vmId = "srv-0000001c";
      const fake = new FakeDriver({ runDir });
      const instance = await fake.boot(bootData(vmId));
      await first.store.transaction((session) =>
        recordVm(
          session,
          "fake",
          { vmId, status: "running", spec: bootData(vmId), instance, operation: "ShutDownVm" },
          [],
        ),
      );
      await fake.crash(instance);
      expect(await first.agent.reconcile()).toMatchObject({ lost: [] });
      expect((await listHeld(first.store.db))[0]).toMatchObject({ status: "stopped", operation: undefined });
      const id = await sendCommand(nats.nc, nats.namespace, HOST, ShutDownVm, { vmId });
      expect((await tap.next("the answer", (e) => e.causationId === id)).type).toBe("VmShutDown");
      expect(tap.of("VmLost")).toEqual([]);
    });
    tap.close();
  });

  test("a VM booted by an agent that died before recording it is adopted at start, and its boot answered without a second one", async ({
    db,
    nats,
  }) => {
    const tap = new EventTap(nats.nc, nats.namespace);
    await withAgent({ db, nats }, {}, async (first, runDir) => {
      // What a crash between the driver's boot and its record leaves: the row as it was before the
      // boot (`booting`, no record: the fake never got to store one) and a VM that runs.
      const vmId = "srv-0000001b";
      const instance = await new FakeDriver({ runDir }).boot(bootData(vmId));
      await first.store.transaction((session) =>
        recordVm(session, "fake", { vmId, status: "booting", spec: bootData(vmId), instance: null }, []),
      );
      expect(await first.agent.reconcile()).toMatchObject({ adopted: [vmId], cleaned: [], lost: [] });
      expect((await listHeld(first.store.db))[0]).toMatchObject({ status: "running", instance });
      const id = await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(vmId));
      const answer = await tap.next("the answer", (e) => e.causationId === id);
      expect(answer.type).toBe("VmBooted");
      expect((first.driver.driver as FakeDriver).boots).toBe(0);
      expect(tap.of("VmLost")).toEqual([]);
    });
    tap.close();
  });
});
