import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BootVm, CreateVm, Header, HostRegistered, IpAllocated, VmBooted } from "@mikrom/contracts";
import { describe, expect, type TestDatabase, type TestNats, test } from "@mikrom/testkit";
import { OWNER, vmIdOf, World } from "./harness.ts";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const HOST = "host-a";

/** The real service as its own process; resolves once it logged that it is ready. */
function startProcess(
  db: TestDatabase,
  nats: TestNats,
  env: Record<string, string> = {},
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NATS_URL: nats.url,
      VM_DATABASE_URL: db.url,
      MIKROM_NAMESPACE: nats.namespace,
      SWEEP_INTERVAL_MS: "100",
      LOG_LEVEL: "info",
      OTEL_TRACES_EXPORTER: "none",
      OTEL_METRICS_EXPORTER: "none",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`vm-service did not start:\n${out}`)), 60_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes("vm-service ready")) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`vm-service exited with ${code}:\n${out}`));
    });
  });
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

async function stopGracefully(child: ChildProcess): Promise<void> {
  const exited = new Promise<number | null>((resolve) => {
    child.removeAllListeners("exit");
    child.on("exit", (code) => resolve(code));
  });
  child.kill("SIGTERM");
  expect(await exited).toBe(0);
}

async function setUp(w: World, vmId: string): Promise<void> {
  await w.publish(w.names.event("host", HOST, "HostRegistered"), HostRegistered, {
    hostId: HOST,
    driver: "fake",
    vcpus: 8,
    memoryMb: 8192,
    startedAt: new Date().toISOString(),
  });
  const outcome = await w.command("create", CreateVm, {
    vmId,
    actor: OWNER,
    name: "crashy",
    description: null,
    vcpuCount: 1,
    memoryMb: 512,
  });
  expect(outcome.headers?.get(Header.Type)).toBe("VmCreated");
  await w.commands.ofType("AllocateIp", vmId);
}

describe("the service killed in the middle of a create", () => {
  test("after a SIGKILL and a restart the VM still reaches running", async ({ db, nats }) => {
    const w = new World(nats);
    const vmId = vmIdOf(0xdead);
    let child = await startProcess(db, nats);
    await setUp(w, vmId);
    await kill9(child);

    // The IP pool answers while the service is down; JetStream keeps it for the restarted service.
    await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
      vmId,
      poolId: "pool-0000aaaa",
      pool: "default",
      address: "10.0.0.9",
      prefixLength: 24,
      gateway: "10.0.0.1",
    });
    child = await startProcess(db, nats);
    try {
      const boot = await w.commands.ofType(BootVm.type, vmId);
      expect(boot.subject).toBe(w.names.command("provisioner", HOST, "boot"));
      await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
        vmId,
        hostId: HOST,
        driver: "fake",
        bootMs: 3,
      });
      expect(await w.until(vmId, "running")).toMatchObject({ ipAddress: "10.0.0.9", host: HOST });
    } finally {
      await stopGracefully(child);
    }
  }, 150_000);

  test("a deadline started before a SIGKILL still fires after the restart", async ({ db, nats }) => {
    const w = new World(nats);
    const vmId = vmIdOf(0xbeef);
    const env = { ALLOCATE_TIMEOUT_MS: "1500" };
    let child = await startProcess(db, nats, env);
    await setUp(w, vmId);
    await kill9(child);
    // The IP pool took the allocation and never answered; the deadline row written with VmCreated
    // is all that remains.
    await w.commands.ofType("AllocateIp", vmId);
    expect(await w.takeCommands("ippool")).toBeGreaterThan(0);
    // And every copy sent again after the restart.
    const taking = setInterval(() => void w.takeCommands("ippool").catch(() => {}), 50);
    child = await startProcess(db, nats, env);
    try {
      const vm = await w.until(vmId, "error").finally(() => clearInterval(taking));
      expect(vm.errorMessage).toBe("allocate timed out: no answer from the IP pool service within 1500 ms");
      await w.commands.ofType("ReleaseIp", vmId);
    } finally {
      await stopGracefully(child);
    }
  }, 150_000);
});
