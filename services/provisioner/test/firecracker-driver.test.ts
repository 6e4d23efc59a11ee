import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BootFailed, type BootSpec, FirecrackerDriver, type Instance } from "../src/drivers/index.ts";
import { isAlive } from "../src/drivers/process.ts";
import type { JournalEntry } from "./support/firecracker/fake-server.ts";
import { readJsonLines } from "./support/json-lines.ts";

/** The seam: the driver starts this fake (a spec-validating API server) instead of the real binary. */
const FAKE_CLI = fileURLToPath(new URL("./support/firecracker/fake-cli.ts", import.meta.url));

const spec: BootSpec = {
  vmId: "srv-0000fc01",
  vcpuCount: 2,
  memoryMb: 256,
  ipAddress: "10.6.0.9",
  prefixLength: 24,
  gateway: "10.6.0.1",
  // No bridge is configured, so the driver takes the tap as existing; the fake does not open it.
  tap: "mk-0000fc01",
};

let dir: string;
let journalFile: string;
let kernel: string;
const drivers: FirecrackerDriver[] = [];
const booted: Instance[] = [];

function driver(overrides: { kernel?: string } = {}): FirecrackerDriver {
  const created = new FirecrackerDriver({
    runDir: join(dir, "run"),
    kernel: overrides.kernel ?? kernel,
    initrd: kernel,
    rootfs: kernel,
    command: [process.execPath, FAKE_CLI, "--journal", journalFile],
    // The fake is a Node process that loads and compiles the spec before it listens: on a loaded
    // machine that took 5-10 s here, past the 5 s default, and every boot failed at the spawn step.
    apiTimeoutMs: 30_000,
  });
  drivers.push(created);
  return created;
}

const journal = (): Promise<JournalEntry[]> => readJsonLines(journalFile);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-fcd-"));
  journalFile = join(dir, "journal.jsonl");
  kernel = join(dir, "vmlinux");
  await writeFile(kernel, "kernel");
});
afterEach(async () => {
  for (const vm of booted.splice(0)) await drivers[0]?.destroy(vm).catch(() => {});
  for (const d of drivers.splice(0)) await d.close();
  await rm(dir, { recursive: true, force: true });
});

describe("the firecracker driver against the fake Firecracker", () => {
  it("finds the VM it runs by its id from the run folder's record, as a restarted agent would", async () => {
    const vm = await driver().boot(spec);
    booted.push(vm);
    const restarted = driver();
    expect(await restarted.find(spec.vmId)).toEqual({ status: "running", instance: vm });
    expect(await restarted.find("srv-0000fcff")).toBeUndefined();
    await restarted.stop(vm);
    expect((await restarted.find(spec.vmId))?.status).toBe("stopped");
    await restarted.destroy(vm);
    expect(await restarted.find(spec.vmId)).toBeUndefined();
  });

  it("configures, starts, waits for the guest and stops it, each call accepted by the spec", async () => {
    const fc = driver();
    const vm = await fc.boot(spec);
    booted.push(vm);
    expect(vm).toMatchObject({ driver: "firecracker", vmId: spec.vmId, ipAddress: "10.6.0.9" });
    expect(await isAlive(vm.pid!)).toBe(true);
    expect(await fc.status(vm)).toBe("running");
    expect(await fc.console(vm)).toContain("MIKROM-READY vm=srv-0000fc01 ip=10.6.0.9/24");

    await fc.stop(vm);
    expect(await isAlive(vm.pid!)).toBe(false);
    expect(await fc.status(vm)).toBe("stopped");

    const calls = await journal();
    expect(calls.every((c) => c.status >= 200 && c.status < 300)).toBe(true);
    const writes = calls.filter((c) => c.method !== "GET");
    expect(writes.map((c) => `${c.method} ${c.path}`)).toEqual([
      "PUT /machine-config",
      "PUT /boot-source",
      "PUT /drives/rootfs",
      "PUT /network-interfaces/eth0",
      "PUT /actions",
      "PUT /actions",
    ]);
    expect(writes[0]?.body).toEqual({ vcpu_count: 2, mem_size_mib: 256 });
    expect(writes[1]?.body).toHaveProperty(
      "boot_args",
      expect.stringContaining("ip=10.6.0.9::10.6.0.1:255.255.255.0::eth0:off"),
    );
    expect(writes[3]?.body).toMatchObject({ iface_id: "eth0", host_dev_name: "mk-0000fc01" });
    expect(writes.slice(4).map((c) => c.body)).toEqual([
      { action_type: "InstanceStart" },
      { action_type: "SendCtrlAltDel" },
    ]);

    await fc.destroy(vm);
    expect(await fc.status(vm)).toBe("gone");
    await expect(access(vm.runDir)).rejects.toThrow();
  });

  it("lets a new driver (an agent restarted) adopt a running VM and stop it", async () => {
    const vm = await driver().boot(spec);
    booted.push(vm);
    const restarted = driver();
    const adopted = await restarted.adopt(JSON.parse(JSON.stringify(vm)));
    expect(adopted.status).toBe("running");
    await restarted.destroy(adopted.instance);
    expect(await isAlive(vm.pid!)).toBe(false);
    await expect(access(vm.apiSocket!)).rejects.toThrow();
  });

  it("reports a VM whose process died as gone", async () => {
    const vm = await driver().boot(spec);
    booted.push(vm);
    process.kill(vm.pid!, "SIGKILL");
    await expect.poll(() => isAlive(vm.pid!), { timeout: 5000 }).toBe(false);
    expect((await driver().adopt(vm)).status).toBe("gone");
  });

  it("does not take a reused pid for the VM", async () => {
    const vm = await driver().boot(spec);
    booted.push(vm);
    expect((await driver().adopt({ ...vm, pid: process.pid })).status).toBe("gone");
  });

  it("fails the boot at the configure step when Firecracker refuses the kernel, and leaves nothing", async () => {
    const fc = driver({ kernel: join(dir, "missing-vmlinux") });
    const error = await fc.boot(spec).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailed);
    expect(error).toMatchObject({ step: "configure" });
    expect((error as Error).message).toMatch(/Cannot open kernel image/);
    await expect(access(join(dir, "run", spec.vmId))).rejects.toThrow();
    const calls = await journal();
    expect(calls.at(-1)).toMatchObject({ path: "/boot-source", status: 400 });
  });
});
