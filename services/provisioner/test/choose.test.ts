import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  chooseDriver,
  type DriverConfig,
  DriverUnavailable,
  driverConfigFromEnv,
  FakeDriver,
  probeKvm,
  QemuDriver,
} from "../src/drivers/index.ts";
import { qemuTestEnv } from "./support/qemu-env.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mikrom-choose-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(env: Record<string, string>): DriverConfig {
  return driverConfigFromEnv({
    MIKROM_RUN_DIR: join(dir, "run"),
    MIKROM_GUEST_DIR: join(dir, "no-guest"),
    ...env,
  });
}

describe("choosing the driver", () => {
  it("takes the one MIKROM_DRIVER names", async () => {
    const choice = await chooseDriver(config({ MIKROM_DRIVER: "fake" }));
    expect(choice.driver).toBeInstanceOf(FakeDriver);
    expect(choice.reason).toBe("MIKROM_DRIVER=fake");
  });

  it("falls back to fake, saying why, when qemu is not installed", async () => {
    const choice = await chooseDriver(config({ MIKROM_QEMU_BINARY: "no-such-qemu" }));
    expect(choice.name).toBe("fake");
    expect(choice.reason).toMatch(/no-such-qemu is not installed/);
  });

  it("falls back to fake, saying why, when the guest is not built", async () => {
    const choice = await chooseDriver(config({}));
    expect(choice.name).toBe("fake");
    expect(choice.reason).toMatch(/guest is not built .*build\.sh/);
  });

  it("refuses an explicit driver that cannot run here", async () => {
    await expect(chooseDriver(config({ MIKROM_DRIVER: "qemu" }))).rejects.toBeInstanceOf(DriverUnavailable);
    await expect(
      chooseDriver(
        config({ MIKROM_DRIVER: "firecracker", MIKROM_FIRECRACKER_BINARY: "no-such-firecracker" }),
      ),
    ).rejects.toBeInstanceOf(DriverUnavailable);
  });
});

describe("choosing the firecracker driver", () => {
  it("runs Firecracker through the jailer when one is configured, and refuses one it cannot use", async () => {
    const bin = join(dir, "bin");
    await mkdir(bin, { recursive: true });
    for (const name of ["firecracker", "jailer"])
      await writeFile(join(bin, name), "#!/bin/sh\n", { mode: 0o755 });
    const env = {
      MIKROM_DRIVER: "firecracker",
      MIKROM_FIRECRACKER_BINARY: join(bin, "firecracker"),
      MIKROM_FIRECRACKER_KERNEL: join(dir, "vmlinux"),
      MIKROM_GUEST_CGROUPS: "off",
    };
    const plain = await chooseDriver(config(env));
    expect(plain.reason).toMatch(
      /not jailed \(no MIKROM_FIRECRACKER_JAILER\): Firecracker runs as the agent's user/,
    );
    await plain.driver.close();

    const jailed = {
      ...env,
      MIKROM_FIRECRACKER_JAILER: join(bin, "jailer"),
      MIKROM_FIRECRACKER_CHROOT_BASE: join(dir, "jail"),
    };
    await expect(
      chooseDriver(config({ ...jailed, MIKROM_FIRECRACKER_JAILER: join(bin, "no-jailer") })),
    ).rejects.toThrow(/no-jailer is not installed/);
    if (process.getuid?.() !== 0) {
      await expect(chooseDriver(config(jailed))).rejects.toThrow(/needs the agent to run as root/);
      return;
    }
    await expect(chooseDriver(config({ ...jailed, MIKROM_GUEST_UIDS: "off" }))).rejects.toThrow(
      /a uid of its own: MIKROM_GUEST_UIDS=off/,
    );
    const choice = await chooseDriver(config(jailed));
    expect(choice.reason).toContain(
      `jailed by ${join(bin, "jailer")} in ${join(dir, "jail")}, a uid per guest`,
    );
    await choice.driver.close();
  });

  it("takes the jailer's chroot base as an absolute path, /srv/jailer (the jailer's own) unless told", () => {
    expect(driverConfigFromEnv({}).firecrackerChrootBase).toBe("/srv/jailer");
    expect(() => driverConfigFromEnv({ MIKROM_FIRECRACKER_CHROOT_BASE: "srv/jailer" })).toThrow(
      /MIKROM_FIRECRACKER_CHROOT_BASE: an absolute path/,
    );
  });
});

describe("choosing qemu on this machine", async () => {
  const env = await qemuTestEnv();

  it("picks qemu when it and the guest are present, with the acceleration the KVM probe allows", async (ctx) => {
    if ("skip" in env) return ctx.skip(env.skip);
    const choice = await chooseDriver(config({ MIKROM_GUEST_DIR: env.guest.dir }));
    expect(choice.driver).toBeInstanceOf(QemuDriver);
    expect((choice.driver as QemuDriver).accel).toBe(env.accel);
    expect(choice.reason).toMatch(env.accel === "kvm" ? /KVM: a probe boot/ : /TCG \(software emulation\)/);
    await choice.driver.close();
  });

  it("keeps the KVM verdict, so the probe boot runs once per host kernel, guest and qemu", async (ctx) => {
    if ("skip" in env) return ctx.skip(env.skip);
    const cacheFile = join(dir, "kvm-probe.json");
    const first = await probeKvm({
      guest: env.guest,
      runDir: join(dir, "probe"),
      cacheFile,
      timeoutMs: 10_000,
    });
    const second = await probeKvm({
      guest: env.guest,
      runDir: join(dir, "probe"),
      cacheFile,
      timeoutMs: 10_000,
    });
    expect(first.reason).not.toBe("");
    if (first.key === "") {
      expect(first.reason).toMatch(/\/dev\/kvm/);
    } else {
      expect(first.cached).toBe(false);
      expect(second).toMatchObject({ cached: true, usable: first.usable, key: first.key });
    }
  }, 30_000);
});
