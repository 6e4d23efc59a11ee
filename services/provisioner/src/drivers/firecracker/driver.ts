import { symlink } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { BootSpec, InstanceStatus } from "../driver.ts";
import { BootFailed, type BootStep, BootTimeout } from "../errors.ts";
import { consoleTails } from "../guest-ready.ts";
import { macFor } from "../network.ts";
import { isAlive, terminate, waitForExit } from "../process.ts";
import { type Hypervisor, ProcessDriver, type ProcessDriverOptions } from "../process-driver.ts";
import type { VmPaths } from "../run-dir.ts";
import type { EndProcess } from "../supervision.ts";
import { FirecrackerApiError, firecrackerCall, loggedFirecrackerCall } from "./api.ts";
import { firecrackerBootArgs } from "./boot-args.ts";
import {
  checkJailId,
  chrootOf,
  furnishJail,
  JAILED_API_SOCKET,
  JAILED_FILES,
  type JailerOptions,
  jailDirOf,
  jailerArgv,
} from "./jail.ts";

const log = createLogger("mikrom.provisioner.driver.firecracker");

export interface FirecrackerDriverOptions extends ProcessDriverOptions {
  /** Uncompressed ELF kernel (guest/build.sh's vmlinux). */
  kernel: string;
  initrd?: string;
  /** Root filesystem image, attached read-only as drive `rootfs`. */
  rootfs?: string;
  /**
   * The command that starts Firecracker; the driver appends `--api-sock <path>`. Default
   * ["firecracker"]. This is the test seam: tests pass [node, test/support/firecracker/fake-cli.ts]
   * to run the fake Firecracker (spec-validating API server) as the process.
   */
  command?: readonly string[];
  /**
   * Start Firecracker through its jailer (jail.ts) instead of `command`: in a chroot of its own, as
   * the VM's own user (`guestUsers` is then required).
   */
  jailer?: JailerOptions;
  /** Spawn to readiness line. Default 20 s. */
  bootTimeoutMs?: number;
  /** How long the API socket may take to answer after spawn. Default 5 s. */
  apiTimeoutMs?: number;
  /** How long `stop` waits for the process to end after SendCtrlAltDel. Default 5 s. */
  shutdownTimeoutMs?: number;
}

/**
 * Firecracker through its REST API on a unix socket (ARCHITECTURE §5): machine-config,
 * boot-source, drives, network-interfaces, then InstanceStart (once). Firecracker has no stop
 * action and no event stream: stop is SendCtrlAltDel (the guest reboots, which ends Firecracker)
 * and then the process is ended; the driver supervises the process itself. The guest's address
 * goes on the kernel command line (`ip=` and mikrom.ip=). With a jailer (jail.ts), Firecracker runs
 * in a chroot of its own as the VM's own user.
 */
export class FirecrackerDriver extends ProcessDriver {
  constructor(options: FirecrackerDriverOptions) {
    if (options.jailer && !options.guestUsers) {
      throw new Error("the jailer runs each guest as a user of its own: give the driver guestUsers");
    }
    super(options, firecracker(options));
  }
}

function firecracker(options: FirecrackerDriverOptions): Hypervisor {
  const { jailer } = options;
  // Firecracker writes the guest's serial console to stdout and its own log to stderr (under the
  // jailer too, which keeps them, and writes its own refusals to stderr).
  const output = (paths: VmPaths) => ({ stdout: paths.console, stderr: paths.output });
  return {
    name: "firecracker",
    log,
    socketName: "firecracker.sock",
    bootTimeoutMs: options.bootTimeoutMs ?? 20_000,
    recordFields: (socket, vmId) => ({
      apiSocket: socket,
      ...(jailer && { jailDir: jailDirOf(jailer, vmId) }),
    }),
    socketOf: (instance) => instance.apiSocket,
    prepare: async (spec, paths, guestUid) => {
      if (!jailer) return;
      checkJailId(spec.vmId);
      const jailDir = jailDirOf(jailer, spec.vmId);
      await furnishJail(jailDir, options, jailedUid(guestUid));
      // The socket the agent calls stays in the VM's folder, a link to the one in the chroot: records
      // keep one shape, and the path connected to stays short (a unix socket's may have 107 bytes).
      await symlink(join(chrootOf(jailDir), JAILED_API_SOCKET), paths.socket);
    },
    command: (spec, paths, guestUid, netns) =>
      jailer
        ? {
            argv: jailerArgv(jailer, { vmId: spec.vmId, uid: jailedUid(guestUid), netns }),
            output: output(paths),
            joinsNetns: true,
          }
        : {
            argv: [...(options.command ?? ["firecracker"]), "--api-sock", paths.socket],
            output: output(paths),
          },
    launched: async (spec, paths, pid) => {
      await awaitApi(
        pid,
        paths,
        options.apiTimeoutMs ?? 5000,
        jailer ? "the jailer or firecracker" : "firecracker",
      );
      await configure(spec, paths, options);
      await call(spec.vmId, paths, "start", "PUT", "/actions", { action_type: "InstanceStart" });
      log.info({ vm_id: spec.vmId, pid }, "firecracker started the VM, waiting for the guest");
    },
    end: (vmId) => endWith(vmId, options.shutdownTimeoutMs ?? 5000),
    query: async (vm, socket): Promise<InstanceStatus> => {
      try {
        const info = (await firecrackerCall(socket, "GET", "/", undefined, 2000)) as { state?: string };
        return info.state === "Running" ? "running" : "stopped";
      } catch (error) {
        log.warn({ vm_id: vm.vmId, pid: vm.pid, ...errorFields(error) }, "Firecracker API does not answer");
        return "running";
      }
    },
  };
}

/** A jailed boot always has its uid (the constructor requires guestUsers): never one without. */
function jailedUid(guestUid: number | undefined): number {
  if (guestUid === undefined) throw new BootFailed("prepare", "the jailer needs the VM's own uid");
  return guestUid;
}

/** The socket appears some milliseconds after spawn: poll `GET /` until it answers. */
async function awaitApi(pid: number, paths: VmPaths, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await firecrackerCall(paths.socket, "GET", "/", undefined, 1000);
      return;
    } catch {
      if (!(await isAlive(pid))) {
        throw new BootFailed("spawn", `${what} exited`, await consoleTails(paths, "firecracker"));
      }
      if (performance.now() >= deadline) {
        throw new BootTimeout("spawn", timeoutMs, await consoleTails(paths, "firecracker"));
      }
      await delay(20);
    }
  }
}

/** The boot files by the paths Firecracker opens them at: inside its chroot when jailed. */
function bootFiles(options: FirecrackerDriverOptions): { kernel: string; initrd?: string; rootfs?: string } {
  const jailed = options.jailer !== undefined;
  return {
    kernel: jailed ? JAILED_FILES.kernel : options.kernel,
    ...(options.initrd && { initrd: jailed ? JAILED_FILES.initrd : options.initrd }),
    ...(options.rootfs && { rootfs: jailed ? JAILED_FILES.rootfs : options.rootfs }),
  };
}

/** In the order ARCHITECTURE §5 gives: machine-config, boot-source, drives, network-interfaces. */
async function configure(spec: BootSpec, paths: VmPaths, options: FirecrackerDriverOptions): Promise<void> {
  const files = bootFiles(options);
  await call(spec.vmId, paths, "configure", "PUT", "/machine-config", {
    vcpu_count: spec.vcpuCount,
    mem_size_mib: spec.memoryMb,
  });
  await call(spec.vmId, paths, "configure", "PUT", "/boot-source", {
    kernel_image_path: files.kernel,
    ...(files.initrd ? { initrd_path: files.initrd } : {}),
    boot_args: firecrackerBootArgs(spec),
  });
  if (files.rootfs) {
    await call(spec.vmId, paths, "configure", "PUT", "/drives/rootfs", {
      drive_id: "rootfs",
      path_on_host: files.rootfs,
      is_root_device: true,
      is_read_only: true,
    });
  }
  if (spec.tap) {
    await call(spec.vmId, paths, "configure", "PUT", "/network-interfaces/eth0", {
      iface_id: "eth0",
      host_dev_name: spec.tap,
      guest_mac: macFor(spec.vmId),
    });
  }
}

async function call(
  vmId: string,
  paths: VmPaths,
  step: BootStep,
  method: "PUT" | "PATCH",
  path: string,
  body: unknown,
): Promise<void> {
  try {
    await loggedFirecrackerCall(vmId, paths.socket, method, path, body);
  } catch (error) {
    const reason =
      error instanceof FirecrackerApiError ? error.message : `${method} ${path}: ${(error as Error).message}`;
    throw new BootFailed(step, reason, await consoleTails(paths, "firecracker"));
  }
}

/** SendCtrlAltDel (the guest reboots and Firecracker exits), then signals; logs which ended it. */
function endWith(vmId: string, shutdownTimeoutMs: number): EndProcess {
  return async (pid, socket, graceful) => {
    if (graceful) {
      const action = { action_type: "SendCtrlAltDel" };
      const sent = await loggedFirecrackerCall(vmId, socket, "PUT", "/actions", action).then(
        () => true,
        () => false,
      );
      if (sent && (await waitForExit(pid, shutdownTimeoutMs))) {
        log.info({ vm_id: vmId, pid, ended_by: "SendCtrlAltDel" }, "firecracker ended");
        return;
      }
    }
    await terminate(pid);
    log.info({ vm_id: vmId, pid, ended_by: "signal" }, "firecracker ended");
  };
}
