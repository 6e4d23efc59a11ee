import { guestArgs } from "../readiness.ts";

export type Accel = "kvm" | "tcg";

export interface QemuLaunch {
  binary: string;
  accel: Accel;
  kernel: string;
  initramfs: string;
  vmId: string;
  vcpuCount: number;
  memoryMb: number;
  ipAddress: string;
  prefixLength: number;
  gateway?: string | undefined;
  consoleLog: string;
  qmpSocket: string;
  mac: string;
  /** A host tap; without one the NIC gets a user-mode network restricted to nothing. */
  tap?: string | undefined;
  /** The host's TSC rate: under TCG the guest cannot calibrate its clock reliably without it. */
  tscKhz?: number | undefined;
  /** The unprivileged user QEMU switches to before the guest runs (root only can switch). */
  runAs?: string | undefined;
}

/**
 * QEMU's seccomp sandbox: no obsolete system calls, no spawning processes, no changing its own
 * scheduling or affinity. Raising privileges stays allowed because `-runas` itself calls setuid
 * (after which root is out of reach anyway).
 */
export const SANDBOX = "on,obsolete=deny,spawn=deny,resourcecontrol=deny";

/**
 * The guest kernel's command line. Under TCG (see MICROVM-NOTES.md): `lpj=` skips the delay-loop
 * calibration that hangs; `tsc_early_khz=` + `tsc=reliable` skip the PIT calibration of the TSC,
 * which fails about one boot in three here and then hangs the boot at SMP bring-up.
 */
export function kernelCmdline(launch: QemuLaunch): string {
  const clock =
    launch.accel === "tcg"
      ? ["lpj=2000000", "tsc=reliable", ...(launch.tscKhz ? [`tsc_early_khz=${launch.tscKhz}`] : [])]
      : [];
  return ["console=ttyS0", "quiet", "panic=-1", ...clock, ...guestArgs(launch)].join(" ");
}

/**
 * qemu-system-x86_64 as a microvm: no firmware option ROMs (the ELF kernel is loaded directly,
 * faster under TCG), ACPI on (this kernel finds virtio-mmio devices only through ACPI), serial
 * console appended to a file (it must outlive the agent; append lets the driver trim it), QMP on
 * a unix socket, and `-no-reboot` so a guest panic ends the process instead of looping. Fenced:
 * the seccomp sandbox, and an unprivileged user once everything is open.
 */
export function qemuArgv(launch: QemuLaunch): string[] {
  const machine = "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on,pic=on,acpi=on";
  const netdev = launch.tap
    ? `tap,id=n0,ifname=${launch.tap},script=no,downscript=no`
    : "user,id=n0,restrict=on";
  return [
    launch.binary,
    "-name",
    `mikrom-${launch.vmId}`,
    "-M",
    machine,
    "-accel",
    launch.accel,
    ...(launch.accel === "kvm" ? ["-cpu", "host"] : []),
    "-m",
    String(launch.memoryMb),
    "-smp",
    String(launch.vcpuCount),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-sandbox",
    SANDBOX,
    ...(launch.runAs ? ["-runas", launch.runAs] : []),
    "-chardev",
    `file,id=con,path=${launch.consoleLog},append=on`,
    "-serial",
    "chardev:con",
    "-qmp",
    `unix:${launch.qmpSocket},server=on,wait=off`,
    "-kernel",
    launch.kernel,
    "-initrd",
    launch.initramfs,
    "-append",
    kernelCmdline(launch),
    "-netdev",
    netdev,
    "-device",
    `virtio-net-device,netdev=n0,mac=${launch.mac}`,
  ];
}
