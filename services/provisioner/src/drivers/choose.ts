import { execFile } from "node:child_process";
import { access, constants, realpath } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { createLogger } from "@mikrom/telemetry";
import { guestCgroupsFor } from "./cgroup.ts";
import type { DriverConfig } from "./config.ts";
import type { Driver, DriverName } from "./driver.ts";
import { DriverUnavailable } from "./errors.ts";
import { FakeDriver } from "./fake/driver.ts";
import { FirecrackerDriver } from "./firecracker/driver.ts";
import type { JailerOptions } from "./firecracker/jail.ts";
import { guestFenceFor } from "./guest-fence.ts";
import { checkUnused, GuestUsers, parseUidRange } from "./guest-users.ts";
import type { Accel } from "./qemu/args.ts";
import { QemuDriver } from "./qemu/driver.ts";
import { findGuest, type Guest } from "./qemu/guest.ts";
import { hostTscKhz } from "./qemu/host-clock.ts";
import { probeKvm } from "./qemu/kvm-probe.ts";

const run = promisify(execFile);
const log = createLogger("mikrom.provisioner.driver");

export interface DriverChoice {
  driver: Driver;
  name: DriverName;
  /** Why this driver (and acceleration), for the agent's start log. */
  reason: string;
}

/**
 * The driver to run: MIKROM_DRIVER when set, else the best that works here: qemu when its binary
 * and the built guest are present (with KVM only if a probe boot under KVM reaches readiness,
 * else TCG), else fake. Firecracker is only chosen explicitly (it needs working KVM, a kernel with
 * virtio-mmio devices on the command line, and its binary). Logs the choice and the reason.
 */
export async function chooseDriver(config: DriverConfig): Promise<DriverChoice> {
  const choice = await decide(config);
  log.info({ driver: choice.name, reason: choice.reason }, `driver: ${choice.name}`);
  return choice;
}

async function decide(config: DriverConfig): Promise<DriverChoice> {
  switch (config.driver) {
    case "fake":
      return { driver: fakeDriver(config), name: "fake", reason: "MIKROM_DRIVER=fake" };
    case "firecracker":
      return firecracker(config);
    case "qemu": {
      const qemu = await qemuAvailable(config);
      if ("missing" in qemu) throw new DriverUnavailable(`MIKROM_DRIVER=qemu but ${qemu.missing}`);
      return qemuChoice(config, qemu, "MIKROM_DRIVER=qemu");
    }
    case undefined: {
      const qemu = await qemuAvailable(config);
      if ("missing" in qemu) {
        return { driver: fakeDriver(config), name: "fake", reason: `no hypervisor: ${qemu.missing}` };
      }
      return qemuChoice(config, qemu, "best available");
    }
  }
}

function fakeDriver(config: DriverConfig): FakeDriver {
  return new FakeDriver({
    runDir: config.runDir,
    bootLatencyMs: config.fakeLatencyMs,
    failureRate: config.fakeFailureRate,
  });
}

type QemuFound = { binary: string; version: string; guest: Guest } | { missing: string };

async function qemuAvailable(config: DriverConfig): Promise<QemuFound> {
  const binary = await onPath(config.qemuBinary);
  if (!binary) {
    return { missing: `${config.qemuBinary} is not installed (services/provisioner/guest/install-deps.sh)` };
  }
  const guest = await findGuest(config.guestDir);
  if (!guest) {
    return { missing: `the guest is not built in ${config.guestDir} (services/provisioner/guest/build.sh)` };
  }
  const { stdout } = await run(binary, ["--version"]).catch(() => ({ stdout: "" }));
  const version = /version (\S+)/.exec(stdout)?.[1] ?? "unknown version";
  return { binary, version, guest };
}

async function qemuChoice(
  config: DriverConfig,
  qemu: { binary: string; version: string; guest: Guest },
  why: string,
): Promise<DriverChoice> {
  let accel: Accel;
  let accelReason: string;
  if (config.qemuAccel === "auto") {
    const verdict = await probeKvm({ guest: qemu.guest, runDir: config.runDir, binary: qemu.binary });
    accel = verdict.usable ? "kvm" : "tcg";
    accelReason = `${verdict.usable ? "KVM" : "TCG (software emulation)"}: ${verdict.reason}${verdict.cached ? " (cached probe)" : ""}`;
  } else {
    accel = config.qemuAccel;
    accelReason = `${accel.toUpperCase()}: MIKROM_QEMU_ACCEL=${accel}`;
  }
  const confinement = await guestCgroupsFor(config.guestCgroups);
  // QEMU drops to the VM's own user itself (-runas); only a root agent can give it one.
  const uids = process.getuid?.() === 0 ? parseUidRange(config.guestUids) : undefined;
  if (uids) await checkUnused(uids);
  const fencing = await guestFenceFor(config.guestFence, config.bridge, { runDir: config.runDir });
  const driver = new QemuDriver({
    guest: qemu.guest,
    accel,
    runDir: config.runDir,
    ...(confinement.cgroups ? { cgroups: confinement.cgroups } : {}),
    ...(fencing.fence ? { fence: fencing.fence } : {}),
    ...(uids ? { guestUsers: new GuestUsers(uids, config.runDir) } : {}),
    binary: qemu.binary,
    ...(config.bootTimeoutMs ? { bootTimeoutMs: config.bootTimeoutMs } : {}),
    ...(config.bridge ? { bridge: config.bridge } : {}),
    ...(accel === "tcg" ? { tscKhz: await hostTscKhz() } : {}),
  });
  return {
    driver,
    name: "qemu",
    reason: `${why}: qemu ${qemu.version} with the guest (${qemu.guest.kernelPackage}); ${accelReason}; ${confinement.reason}; ${fencing.reason}`,
  };
}

async function firecracker(config: DriverConfig): Promise<DriverChoice> {
  const binary = await onPath(config.firecrackerBinary);
  if (!binary)
    throw new DriverUnavailable(`MIKROM_DRIVER=firecracker but ${config.firecrackerBinary} is not installed`);
  const guest = await findGuest(config.guestDir);
  const kernel = config.firecrackerKernel ?? guest?.kernel;
  if (!kernel)
    throw new DriverUnavailable("MIKROM_DRIVER=firecracker needs MIKROM_FIRECRACKER_KERNEL or a built guest");
  const initrd = config.firecrackerInitrd ?? (config.firecrackerKernel ? undefined : guest?.initramfs);
  const jailed = config.firecrackerJailer
    ? await jailerFor(config, config.firecrackerJailer, binary)
    : undefined;
  const confinement = await guestCgroupsFor(config.guestCgroups);
  const fencing = await guestFenceFor(config.guestFence, config.bridge, { runDir: config.runDir });
  const driver = new FirecrackerDriver({
    runDir: config.runDir,
    ...(confinement.cgroups ? { cgroups: confinement.cgroups } : {}),
    ...jailed,
    ...(fencing.fence ? { fence: fencing.fence } : {}),
    kernel,
    command: [binary],
    ...(initrd ? { initrd } : {}),
    ...(config.firecrackerRootfs ? { rootfs: config.firecrackerRootfs } : {}),
    ...(config.bootTimeoutMs ? { bootTimeoutMs: config.bootTimeoutMs } : {}),
    ...(config.bridge ? { bridge: config.bridge } : {}),
  });
  const jailing = jailed
    ? `jailed by ${jailed.jailer.command[0]} in ${jailed.jailer.chrootBase}, a uid per guest`
    : "not jailed (no MIKROM_FIRECRACKER_JAILER): Firecracker runs as the agent's user";
  return {
    driver,
    name: "firecracker",
    reason: `MIKROM_DRIVER=firecracker (${binary}); ${jailing}; ${confinement.reason}; ${fencing.reason}`,
  };
}

/** The jailer: its binary, a root agent (it makes the chroot and changes user) and a uid for each guest. */
async function jailerFor(
  config: DriverConfig,
  jailer: string,
  firecrackerBinary: string,
): Promise<{ jailer: JailerOptions; guestUsers: GuestUsers }> {
  const binary = await onPath(jailer);
  if (!binary) throw new DriverUnavailable(`MIKROM_FIRECRACKER_JAILER: ${jailer} is not installed`);
  if (process.getuid?.() !== 0)
    throw new DriverUnavailable("MIKROM_FIRECRACKER_JAILER needs the agent to run as root");
  const uids = parseUidRange(config.guestUids);
  if (!uids)
    throw new DriverUnavailable(
      "MIKROM_FIRECRACKER_JAILER runs each guest as a uid of its own: MIKROM_GUEST_UIDS=off",
    );
  await checkUnused(uids);
  return {
    // The jailer names the chroot's folder after the file the binary's path resolves to.
    jailer: {
      command: [binary],
      execFile: await realpath(firecrackerBinary),
      chrootBase: config.firecrackerChrootBase,
    },
    guestUsers: new GuestUsers(uids, config.runDir),
  };
}

/** The executable's path: as given when it has a slash, else the first match on PATH. */
async function onPath(command: string): Promise<string | undefined> {
  const candidates = command.includes("/")
    ? [command]
    : (process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    if (!isAbsolute(candidate) && !command.includes("/")) continue;
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
