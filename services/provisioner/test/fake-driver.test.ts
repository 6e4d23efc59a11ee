import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BootFailed, type BootSpec, BootTimeout, FakeDriver, type Instance } from "../src/drivers/index.ts";

const spec: BootSpec = {
  vmId: "srv-0000f00d",
  vcpuCount: 1,
  memoryMb: 128,
  ipAddress: "10.5.0.2",
  prefixLength: 24,
};

let runDir: string;
beforeEach(async () => {
  runDir = await mkdtemp(join(tmpdir(), "mikrom-fake-"));
});
afterEach(async () => {
  await rm(runDir, { recursive: true, force: true });
});

describe("the fake driver", () => {
  it("finds the VM it runs by its id, also after a driver restart, and nothing once it is destroyed", async () => {
    const vm = await new FakeDriver({ runDir }).boot(spec);
    const restarted = new FakeDriver({ runDir });
    expect(await restarted.find(spec.vmId)).toEqual({ status: "running", instance: vm });
    expect(await restarted.find("srv-0000beef")).toBeUndefined();
    await restarted.crash(vm);
    expect(await restarted.find(spec.vmId)).toEqual({ status: "gone", instance: vm });
    await restarted.destroy(vm);
    expect(await restarted.find(spec.vmId)).toBeUndefined();
  });

  it("records what it spawned before the VM is ready; a boot whose agent died is found gone, without a boot time", async () => {
    const driver = new FakeDriver({ runDir, bootLatencyMs: 60_000 });
    const cut = new AbortController();
    const spawned: Instance[] = [];
    const boot = driver
      .boot(spec, { signal: cut.signal, onSpawned: (i) => void spawned.push(i) })
      .catch(() => "cut");
    while (spawned.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const found = await new FakeDriver({ runDir }).find(spec.vmId);
    expect(found).toEqual({ status: "gone", instance: spawned[0] });
    expect(found?.instance.bootMs).toBeUndefined();
    cut.abort();
    expect(await boot).toBe("cut");
    expect(driver.boots).toBe(1);
  });

  it("boots, reports the readiness line, stops and destroys", async () => {
    const driver = new FakeDriver({ runDir });
    const vm = await driver.boot(spec);
    expect(vm.driver).toBe("fake");
    expect(await driver.status(vm)).toBe("running");
    expect(await driver.console(vm)).toContain("MIKROM-READY vm=srv-0000f00d ip=10.5.0.2/24");
    await driver.stop(vm);
    expect(await driver.status(vm)).toBe("stopped");
    await driver.destroy(vm);
    expect(await driver.status(vm)).toBe("gone");
  });

  it("keeps its VMs across a driver restart, so they can be adopted", async () => {
    const vm = await new FakeDriver({ runDir }).boot(spec);
    const restarted = new FakeDriver({ runDir });
    expect(await restarted.adopt(JSON.parse(JSON.stringify(vm)))).toEqual({
      status: "running",
      instance: vm,
    });
  });

  it("reports a crashed VM as gone", async () => {
    const driver = new FakeDriver({ runDir });
    const vm = await driver.boot(spec);
    await driver.crash(vm);
    expect((await driver.adopt(vm)).status).toBe("gone");
  });

  it("refuses to boot a VM that already runs", async () => {
    const driver = new FakeDriver({ runDir });
    await driver.boot(spec);
    await expect(driver.boot(spec)).rejects.toBeInstanceOf(BootFailed);
  });

  it("fails boots at the configured rate, as failures or timeouts", async () => {
    const failing = new FakeDriver({ runDir, failureRate: 1 });
    await expect(failing.boot(spec)).rejects.toBeInstanceOf(BootFailed);
    const timingOut = new FakeDriver({ runDir, failureRate: 1, timeoutShare: 1 });
    await expect(timingOut.boot(spec)).rejects.toBeInstanceOf(BootTimeout);
    const healthy = new FakeDriver({ runDir, failureRate: 0 });
    expect((await healthy.boot(spec)).vmId).toBe(spec.vmId);
  });

  it("fails about the configured share of many boots", async () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const driver = new FakeDriver({ runDir, failureRate: 0.3, random });
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => driver.boot({ ...spec, vmId: `vm-${i}` })),
    );
    const failed = results.filter((r) => r.status === "rejected").length;
    expect(failed).toBeGreaterThan(30);
    expect(failed).toBeLessThan(90);
  });

  it("waits its latency and can be aborted meanwhile", async () => {
    const driver = new FakeDriver({ runDir, bootLatencyMs: [5_000, 10_000] });
    const controller = new AbortController();
    const booting = driver.boot(spec, { signal: controller.signal });
    controller.abort(new Error("agent stopping"));
    await expect(booting).rejects.toThrow();
  });

  it("refuses another driver's instance", async () => {
    const vm = await new FakeDriver({ runDir }).boot(spec);
    await expect(new FakeDriver({ runDir }).adopt({ ...vm, driver: "qemu" })).rejects.toThrow(/qemu driver/);
  });
});
