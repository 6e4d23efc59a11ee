import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { connectNats } from "@mikrom/bus";
import { BootVm, HOST_CONTEXT, names as namesOf, PROVISIONER_SERVICE, RebootVm } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { FakeDriver, type Instance } from "../src/drivers/index.ts";
import { startProvisioner } from "../src/service.ts";
import { listHeld } from "../src/store/instances.ts";
import { agentConfig, bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";
import { startAgentProcess } from "./support/agent-process.ts";
import { startOwnNatsServer } from "./support/own-nats.ts";

/**
 * The agent under the faults of issue 14: killed between a driver call and its record, and NATS
 * killed and started again under it.
 */
const HOST = "host-f";

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

interface Row {
  status: string;
  instance: Instance | null;
}

/**
 * SIGKILLs a real agent process after the driver has booted the guest and before the agent has
 * recorded it: the test holds the VM's row locked, so the agent's record waits; once the guest runs
 * and the agent waits on the lock, the agent is killed (its transaction never commits).
 */
async function killedBetweenBootAndRecord(
  infra: { db: { url: string }; nats: { nc: NatsConnection; url: string; namespace: string } },
  command: "BootVm" | "RebootVm",
): Promise<void> {
  const { db, nats } = infra;
  const vmId = command === "BootVm" ? "srv-0000c001" : "srv-0000c002";
  const run = await tempRunDir();
  const variables = {
    NATS_URL: nats.url,
    PROVISIONER_DATABASE_URL: db.url,
    MIKROM_NAMESPACE: nats.namespace,
    MIKROM_HOST_ID: HOST,
    MIKROM_DRIVER: "fake",
    MIKROM_RUN_DIR: run.dir,
    MIKROM_FAKE_LATENCY_MS: "500",
    PROVISIONER_ACK_WAIT_MS: "2000",
    LOG_LEVEL: "warn",
  };
  const tap = new EventTap(nats.nc, nats.namespace);
  const client = new pg.Client({ connectionString: db.url });
  const first = startAgentProcess(variables);
  try {
    await tap
      .next("HostRegistered", (e) => e.type === "HostRegistered", { timeoutMs: 30_000 })
      .catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\nagent output:\n${first.output()}`);
      });
    await client.connect();
    const row = async (): Promise<Row | undefined> =>
      (await client.query<Row>("SELECT status, instance FROM instances WHERE vm_id = $1", [vmId])).rows[0];
    let before: string | undefined;
    if (command === "RebootVm") {
      await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(vmId));
      await tap.next("the first VmBooted", (e) => e.type === "VmBooted");
      before = (await row())?.instance?.startedAt;
    }
    const id =
      command === "BootVm"
        ? await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(vmId))
        : await sendCommand(nats.nc, nats.namespace, HOST, RebootVm, { vmId });
    // The boot under way has stored the record of what it spawned (a new one, for the reboot).
    await until("the spawned VM's record", async () => {
      const now = await row();
      return now?.status === "booting" && now.instance && now.instance.startedAt !== before ? now : undefined;
    });
    await client.query("BEGIN");
    await client.query("SELECT 1 FROM instances WHERE vm_id = $1 FOR UPDATE", [vmId]);
    const state = join(run.dir, vmId, "state");
    await until("the guest running", async () =>
      (await readFile(state, "utf8").catch(() => "")) === "running" ? true : undefined,
    );
    await until("the agent waiting to record the boot", async () => {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      return (rows[0]?.n ?? 0) > 0 ? true : undefined;
    });
    await first.kill();
    await client.query("ROLLBACK");
    const left = await row();
    expect(left?.status).toBe("booting");
    const booted = JSON.parse(await readFile(join(run.dir, vmId, "instance.json"), "utf8")) as Instance;
    expect(booted.bootMs).toBeDefined();

    const second = await startProvisioner(agentConfig(variables));
    try {
      const answer = await tap.next("the answer to the redelivered command", (e) => e.causationId === id, {
        timeoutMs: 30_000,
      });
      expect(answer.type).toBe("VmBooted");
      expect(tap.of("VmBootFailed")).toEqual([]);
      expect(tap.of("VmLost")).toEqual([]);
      const [held] = await listHeld(second.store.db);
      expect(held?.status).toBe("running");
      expect(await readFile(state, "utf8")).toBe("running");
      const fake = second.driver.driver as FakeDriver;
      if (command === "BootVm") {
        // The guest the killed agent booted is the one that runs: adopted, not booted again.
        expect(fake.boots).toBe(0);
        expect(held?.instance?.startedAt).toBe(booted.startedAt);
      } else {
        // A reboot is done again when it comes again: one more reboot, and the VM runs.
        expect(fake.boots).toBe(1);
      }
    } finally {
      await second.stop();
    }
  } finally {
    await first.kill();
    await client.end().catch(() => {});
    tap.close();
    await run.remove();
  }
}

describe("the provisioner agent under faults (fake driver)", () => {
  test("an agent killed between the driver's boot and its record, restarted, answers the redelivered boot with VmBooted and boots nothing", {
    timeout: 90_000,
  }, async ({ db, nats }) => {
    await killedBetweenBootAndRecord({ db, nats }, "BootVm");
  });

  test("an agent killed between a reboot's boot and its record, restarted, answers the redelivered reboot with VmBooted", {
    timeout: 90_000,
  }, async ({ db, nats }) => {
    await killedBetweenBootAndRecord({ db, nats }, "RebootVm");
  });

  test("after NATS is killed and started again, the agent announces itself again, heartbeats again, and reports a VM lost meanwhile", {
    timeout: 90_000,
  }, async ({ db, nats }) => {
    const server = await startOwnNatsServer();
    const run = await tempRunDir();
    const names = namesOf(nats.namespace);
    const agent = await startProvisioner(
      agentConfig({
        NATS_URL: server.url,
        PROVISIONER_DATABASE_URL: db.url,
        MIKROM_NAMESPACE: nats.namespace,
        MIKROM_HOST_ID: HOST,
        MIKROM_DRIVER: "fake",
        MIKROM_RUN_DIR: run.dir,
        HEARTBEAT_INTERVAL_MS: "300",
        LOG_LEVEL: "warn",
      }),
    );
    const nc = await connectNats({ servers: server.url, name: "test", reconnectTimeWaitMs: 100 });
    try {
      const jsm = await jetstreamManager(nc);
      const subject = (type: string) => names.event(HOST_CONTEXT, HOST, type);
      /** The stream's last message on a subject (the stream keeps what the server stored, across its restart). */
      const last = async (on: string) =>
        jsm.streams
          .getMessage(names.streams.events, { last_by_subj: on })
          .then((m) => m ?? undefined)
          .catch(() => undefined);
      // Heartbeats are core NATS: heard as they come (the subscription is made again after the restart).
      const beats: number[] = [];
      nc.subscribe(names.heartbeat(HOST), {
        callback: () => {
          beats.push(Date.now());
        },
      });
      const registered = await until("HostRegistered", () => last(subject("HostRegistered")));
      await until("a heartbeat", async () => (beats.length > 0 ? true : undefined));
      const vmId = "srv-0000c003";
      await agent.agent.handle({ type: "BootVm", data: bootData(vmId) }, { messageId: "cmd-boot" });
      const [held] = await listHeld(agent.store.db);

      await server.kill();
      // While NATS is away the VM dies: the watch (it needs the database only) finds it.
      await new FakeDriver({ runDir: run.dir }).crash(held!.instance!);
      await until("the VM recorded lost", async () =>
        (await listHeld(agent.store.db))[0]?.status === "lost" ? true : undefined,
      );
      await delay(1_000);
      await server.start();

      const again = await until("HostRegistered again", async () => {
        const m = await last(subject("HostRegistered"));
        return m && m.seq > registered.seq ? m : undefined;
      });
      // The same agent: the announcement carries the start it had.
      expect(again.json<{ startedAt: string }>().startedAt).toBe(
        registered.json<{ startedAt: string }>().startedAt,
      );
      const sinceAgain = Date.now();
      await until("a heartbeat after it", async () => (beats.some((t) => t > sinceAgain) ? true : undefined));
      const lost = await until("the VmLost recorded meanwhile", () =>
        last(names.event(PROVISIONER_SERVICE, HOST, "VmLost")),
      );
      expect(lost.json<{ vmId: string; reason: string }>()).toMatchObject({
        vmId,
        reason: expect.stringContaining("ended without a stop"),
      });
    } finally {
      await agent.stop();
      await nc.close();
      await server.dispose();
      await run.remove();
    }
  });
});
