import { describe, expect, it } from "vitest";
import { driverConfigFromEnv } from "../src/drivers/config.ts";
import { firecrackerBootArgs, prefixToNetmask } from "../src/drivers/firecracker/boot-args.ts";
import { macFor, tapNameFor } from "../src/drivers/network.ts";
import { kernelCmdline, type QemuLaunch, qemuArgv } from "../src/drivers/qemu/args.ts";
import { guestArgs, parseGuestReport } from "../src/drivers/readiness.ts";

const launch: QemuLaunch = {
  binary: "qemu-system-x86_64",
  accel: "tcg",
  kernel: "/g/vmlinux",
  initramfs: "/g/initramfs.cpio",
  vmId: "srv-0000abcd",
  vcpuCount: 2,
  memoryMb: 256,
  ipAddress: "10.1.2.3",
  prefixLength: 24,
  gateway: "10.1.2.1",
  consoleLog: "/run/vm/console.log",
  qmpSocket: "/run/vm/qmp.sock",
  mac: "52:54:00:01:02:03",
  tscKhz: 2_596_146,
};

describe("the guest's readiness report", () => {
  it("is read from a console line, even after kernel output on the same line", () => {
    expect(
      parseGuestReport("[    1.2] random: crng init done MIKROM-READY vm=srv-0000abcd ip=10.1.2.3/24"),
    ).toEqual({
      kind: "ready",
      vmId: "srv-0000abcd",
      ip: "10.1.2.3/24",
    });
  });

  it("reports a failed step with its reason", () => {
    expect(parseGuestReport("MIKROM-FAILED vm=a step=network reason=ip addr add 10.0.0.1/33")).toEqual({
      kind: "failed",
      vmId: "a",
      step: "network",
      reason: "ip addr add 10.0.0.1/33",
    });
  });

  it("ignores other lines", () => {
    expect(parseGuestReport("[    0.2] PCI: Fatal: No config space access function found")).toBeUndefined();
    expect(parseGuestReport("MIKROM-READY")).toBeUndefined();
  });

  it("asks the guest for its id, address with prefix, and gateway when there is one", () => {
    expect(guestArgs({ vmId: "v", ipAddress: "10.0.0.2", prefixLength: 16, gateway: "10.0.0.1" })).toEqual([
      "mikrom.vm=v",
      "mikrom.ip=10.0.0.2/16",
      "mikrom.gw=10.0.0.1",
    ]);
    expect(guestArgs({ vmId: "v", ipAddress: "10.0.0.2", prefixLength: 16 })).toHaveLength(2);
  });
});

describe("the qemu command line", () => {
  it("pins the guest clock under TCG and leaves it to KVM otherwise", () => {
    expect(kernelCmdline(launch)).toContain("lpj=2000000 tsc=reliable tsc_early_khz=2596146");
    expect(kernelCmdline({ ...launch, accel: "kvm" })).not.toContain("lpj=");
  });

  it("runs a microvm with ACPI, no option ROMs, the console in a file and QMP on a socket", () => {
    const argv = qemuArgv(launch);
    const after = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
    expect(after("-M")).toBe("microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on,pic=on,acpi=on");
    expect(after("-accel")).toBe("tcg");
    expect(after("-m")).toBe("256");
    expect(after("-smp")).toBe("2");
    expect(after("-chardev")).toBe("file,id=con,path=/run/vm/console.log,append=on");
    expect(after("-qmp")).toBe("unix:/run/vm/qmp.sock,server=on,wait=off");
    expect(argv).toContain("-no-reboot");
    expect(after("-append")).toContain("mikrom.ip=10.1.2.3/24");
  });

  it("uses the VM's tap when it has one and an isolated user network otherwise", () => {
    const withTap = qemuArgv({ ...launch, tap: "mk-0000abcd" });
    expect(withTap[withTap.indexOf("-netdev") + 1]).toBe(
      "tap,id=n0,ifname=mk-0000abcd,script=no,downscript=no",
    );
    const without = qemuArgv(launch);
    expect(without[without.indexOf("-netdev") + 1]).toBe("user,id=n0,restrict=on");
  });

  it("runs QEMU in its seccomp sandbox, as the unprivileged user it is given", () => {
    const argv = qemuArgv({ ...launch, runAs: "nobody" });
    expect(argv[argv.indexOf("-sandbox") + 1]).toBe("on,obsolete=deny,spawn=deny,resourcecontrol=deny");
    expect(argv[argv.indexOf("-runas") + 1]).toBe("nobody");
    // Without a user to switch to (an agent that is not root cannot) there is no -runas, the sandbox stays.
    expect(qemuArgv(launch)).not.toContain("-runas");
    expect(qemuArgv(launch)).toContain("-sandbox");
  });

  it("uses the host CPU under KVM", () => {
    const argv = qemuArgv({ ...launch, accel: "kvm" });
    expect(argv[argv.indexOf("-cpu") + 1]).toBe("host");
  });
});

describe("firecracker boot arguments", () => {
  it("carry the kernel's ip= and the mikrom arguments", () => {
    const args = firecrackerBootArgs({
      vmId: "v1",
      ipAddress: "10.0.3.7",
      prefixLength: 20,
      gateway: "10.0.0.1",
    });
    expect(args).toContain("ip=10.0.3.7::10.0.0.1:255.255.240.0::eth0:off");
    expect(args).toContain("mikrom.ip=10.0.3.7/20");
    expect(args).toContain("reboot=k");
  });

  it.each([
    [32, "255.255.255.255"],
    [24, "255.255.255.0"],
    [17, "255.255.128.0"],
    [1, "128.0.0.0"],
  ])("turn prefix /%i into netmask %s", (prefix, mask) => {
    expect(prefixToNetmask(prefix)).toBe(mask);
  });
});

describe("per-VM host names", () => {
  it("names a VM's tap from its id within the 15-character limit", () => {
    expect(tapNameFor("srv-0000abcd")).toBe("mk-0000abcd");
    expect(tapNameFor("some-other-long-vm-name").length).toBeLessThanOrEqual(15);
  });

  it("gives each VM a stable locally administered MAC", () => {
    expect(macFor("a")).toBe(macFor("a"));
    expect(macFor("a")).not.toBe(macFor("b"));
    expect(macFor("a")).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
  });
});

describe("driver configuration from the environment", () => {
  it("defaults to choosing the driver and probing KVM", () => {
    const config = driverConfigFromEnv({ HOME: "/home/u" });
    expect(config.driver).toBeUndefined();
    expect(config.qemuAccel).toBe("auto");
    expect(config.guestDir).toBe("/home/u/.cache/mikrom/guest");
    expect(config.fakeLatencyMs).toBe(0);
  });

  it("reads a fake latency range and failure rate", () => {
    const config = driverConfigFromEnv({
      MIKROM_FAKE_LATENCY_MS: "20-200",
      MIKROM_FAKE_FAILURE_RATE: "0.25",
    });
    expect(config.fakeLatencyMs).toEqual([20, 200]);
    expect(config.fakeFailureRate).toBe(0.25);
  });

  it("names every malformed variable", () => {
    expect(() => driverConfigFromEnv({ MIKROM_DRIVER: "xen", MIKROM_FAKE_FAILURE_RATE: "2" })).toThrow(
      /MIKROM_DRIVER.*MIKROM_FAKE_FAILURE_RATE/,
    );
  });
});
