import { type ChildProcess, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BootVm, DestroyVm, ShutDownVm } from "@mikrom/contracts";
import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { afterAll } from "vitest";
import { isAlive } from "../src/drivers/process.ts";
import { bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";
import { processesMentioning, qemuTestEnv } from "./support/qemu-env.ts";

/**
 * The acceptance test of issue #7: the real agent (src/main.ts as a child process) with the qemu
 * driver and real guests is SIGKILLed while two VMs run; one guest's qemu is killed meanwhile; the
 * restarted agent adopts the live VM (stop and destroy still work on it) and reports the dead one
 * with VmLost. Two guests only: TCG is CPU-bound on this shared two-core machine.
 */
const env = await qemuTestEnv();
const MAIN = join(dirname(fileURLToPath(import.meta.url)), "../src/main.ts");
const HOST = "host-vm";
const runDirs: Array<{ dir: string; remove(): Promise<void> }> = [];
const agents: ChildProcess[] = [];

afterAll(async () => {
  for (const agent of agents) if (agent.exitCode === null && agent.signalCode === null) agent.kill("SIGKILL");
  for (const run of runDirs) {
    for (const pid of await processesMentioning(run.dir)) process.kill(pid, "SIGKILL");
    await run.remove();
  }
});

function startAgent(variables: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ...variables },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agents.push(child);
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { child, output: () => output };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

async function pidsOf(databaseUrl: string): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ vm_id: string; pid: number }>("SELECT vm_id, pid FROM instances");
    return new Map(rows.map((r) => [r.vm_id, r.pid]));
  } finally {
    await client.end();
  }
}

async function waitUntilDead(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isAlive(pid))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

describe(`the agent with real guests (${"skip" in env ? `skipped: ${env.skip}` : env.accel})`, () => {
  test.skipIf("skip" in env)(
    "an agent killed while VMs run adopts the live one on restart and reports the dead one lost",
    { timeout: 240_000 },
    async ({ db, nats }) => {
      if ("skip" in env) return;
      const run = await tempRunDir();
      runDirs.push(run);
      const variables = {
        NATS_URL: nats.url,
        PROVISIONER_DATABASE_URL: db.url,
        MIKROM_NAMESPACE: nats.namespace,
        MIKROM_HOST_ID: HOST,
        MIKROM_DRIVER: "qemu",
        MIKROM_QEMU_ACCEL: env.accel,
        MIKROM_RUN_DIR: run.dir,
        MIKROM_BOOT_TIMEOUT_MS: "120000",
        HEARTBEAT_INTERVAL_MS: "60000",
        PROVISIONER_CONCURRENCY: "2",
      };
      const tap = new EventTap(nats.nc, nats.namespace);
      const [live, dead] = ["srv-0000a001", "srv-0000a002"];
      try {
        const first = startAgent(variables);
        await tap.next("the first HostRegistered", (e) => e.type === "HostRegistered", { timeoutMs: 60_000 });
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(live, "10.0.0.21"));
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData(dead, "10.0.0.22"));
        await tap
          .next("two VmBooted", () => tap.of("VmBooted").length === 2, { timeoutMs: 180_000 })
          .catch((error: unknown) => {
            throw new Error(`${(error as Error).message}\nagent output:\n${first.output()}`);
          });
        expect(tap.of("VmBootFailed")).toEqual([]);
        const pids = await pidsOf(db.url);

        first.child.kill("SIGKILL");
        await exited(first.child);
        expect(await isAlive(pids.get(live)!)).toBe(true);
        process.kill(pids.get(dead)!, "SIGKILL");
        expect(await waitUntilDead(pids.get(dead)!)).toBe(true);

        const registeredBefore = tap.of("HostRegistered").length;
        const second = startAgent(variables);
        const lost = await tap.next("VmLost", (e) => e.type === "VmLost", { timeoutMs: 60_000 });
        expect(lost.data).toMatchObject({ vmId: dead, hostId: HOST });
        await tap.next(
          "the second HostRegistered",
          () => tap.of("HostRegistered").length > registeredBefore,
          {
            timeoutMs: 60_000,
          },
        );
        // The adopted VM is the same process, and still under control.
        expect(await isAlive(pids.get(live)!)).toBe(true);
        const stop = await sendCommand(nats.nc, nats.namespace, HOST, ShutDownVm, { vmId: live });
        expect(
          (await tap.next("answer to the stop", (e) => e.causationId === stop, { timeoutMs: 30_000 })).type,
        ).toBe("VmShutDown");
        expect(await waitUntilDead(pids.get(live)!)).toBe(true);
        for (const vmId of [live, dead]) {
          const destroy = await sendCommand(nats.nc, nats.namespace, HOST, DestroyVm, { vmId });
          expect(
            (
              await tap.next(`answer to the destroy of ${vmId}`, (e) => e.causationId === destroy, {
                timeoutMs: 30_000,
              })
            ).type,
          ).toBe("VmDestroyed");
        }
        expect(tap.of("VmLost")).toHaveLength(1);

        second.child.kill("SIGTERM");
        await exited(second.child);
        await tap.next("HostStopped", (e) => e.type === "HostStopped", { timeoutMs: 10_000 });
        expect(await processesMentioning(run.dir)).toEqual([]);
      } finally {
        tap.close();
      }
    },
  );
});
