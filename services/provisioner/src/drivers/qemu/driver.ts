import { createLogger, errorFields } from "@mikrom/telemetry";
import type { InstanceStatus } from "../driver.ts";
import { BootFailed } from "../errors.ts";
import { consoleTails } from "../guest-ready.ts";
import { macFor } from "../network.ts";
import { terminate, waitForExit } from "../process.ts";
import { type Hypervisor, ProcessDriver, type ProcessDriverOptions } from "../process-driver.ts";
import type { VmPaths } from "../run-dir.ts";
import type { EndProcess } from "../supervision.ts";
import { type Accel, qemuArgv } from "./args.ts";
import type { Guest } from "./guest.ts";
import { qmpExecute } from "./qmp.ts";

const log = createLogger("mikrom.provisioner.driver.qemu");

export interface QemuDriverOptions extends ProcessDriverOptions {
  guest: Pick<Guest, "kernel" | "initramfs">;
  accel: Accel;
  binary?: string;
  /** Spawn to readiness line. Default 60 s under TCG (ten guests on two cores take ~35 s), 20 s under KVM. */
  bootTimeoutMs?: number;
  /** How long `stop` waits for the guest to power off after the ACPI power button, before `quit`. */
  powerDownTimeoutMs?: number;
  /** The host TSC rate in kHz for the guest's clock under TCG (see args.ts). */
  tscKhz?: number;
  /**
   * The user QEMU drops to once it has opened its files, tap and socket, when the VM has no user of
   * its own (guestUsers). Default: `nobody` when the agent runs as root, none otherwise.
   */
  runAs?: string;
}

/** QEMU with the guest's console in a file and QMP on a unix socket, for control and state. */
export class QemuDriver extends ProcessDriver {
  readonly accel: Accel;

  constructor(options: QemuDriverOptions) {
    super(options, qemu(options));
    this.accel = options.accel;
  }
}

function qemu(options: QemuDriverOptions): Hypervisor {
  const { accel } = options;
  return {
    name: "qemu",
    log,
    socketName: "qmp.sock",
    bootTimeoutMs: options.bootTimeoutMs ?? (accel === "kvm" ? 20_000 : 60_000),
    recordFields: (socket) => ({ qmpSocket: socket, accel }),
    socketOf: (instance) => instance.qmpSocket,
    command: (spec, paths, guestUid) => ({
      argv: qemuArgv({
        binary: options.binary ?? "qemu-system-x86_64",
        accel,
        kernel: options.guest.kernel,
        initramfs: options.guest.initramfs,
        ...spec,
        consoleLog: paths.console,
        qmpSocket: paths.socket,
        mac: macFor(spec.vmId),
        tap: spec.tap,
        tscKhz: options.tscKhz,
        runAs:
          guestUid !== undefined
            ? `${guestUid}:${guestUid}`
            : (options.runAs ?? (process.getuid?.() === 0 ? "nobody" : undefined)),
      }),
      output: { stdout: paths.output },
    }),
    launched: async (spec, _paths, pid) => {
      log.info({ vm_id: spec.vmId, pid, accel }, "qemu started, waiting for the guest");
    },
    ready: expectRunning,
    end: () => endWith(options.powerDownTimeoutMs ?? 5000),
    query: async (vm, socket): Promise<InstanceStatus> => {
      try {
        const status = (await qmpExecute(socket, "query-status", undefined, { timeoutMs: 2000 })) as {
          status?: string;
        };
        return status.status === "running" ? "running" : "stopped";
      } catch (error) {
        // The process is there even if its monitor does not answer: it still holds the VM.
        log.warn({ vm_id: vm.vmId, pid: vm.pid, ...errorFields(error) }, "QMP does not answer");
        return "running";
      }
    },
  };
}

async function expectRunning(paths: VmPaths): Promise<void> {
  try {
    const status = (await qmpExecute(paths.socket, "query-status")) as { status?: string };
    if (status.status !== "running") throw new Error(`QMP says ${status.status}`);
  } catch (error) {
    throw new BootFailed("control", (error as Error).message, await consoleTails(paths, "qemu"));
  }
}

/** ACPI power button (the guest powers off), then QMP quit, then signals. */
function endWith(powerDownTimeoutMs: number): EndProcess {
  return async (pid, socket, graceful) => {
    if (graceful) {
      const pressed = await qmpExecute(socket, "system_powerdown").then(
        () => true,
        () => false,
      );
      if (pressed && (await waitForExit(pid, powerDownTimeoutMs))) return;
    }
    const quit = await qmpExecute(socket, "quit", undefined, { closeIsSuccess: true, timeoutMs: 2000 }).then(
      () => true,
      () => false,
    );
    if (quit && (await waitForExit(pid, 2000))) return;
    await terminate(pid);
  };
}
