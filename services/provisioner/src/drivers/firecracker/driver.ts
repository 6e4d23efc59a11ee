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
 * goes on the kernel command line (`ip=` and mikrom.ip=).
 */
export class FirecrackerDriver extends ProcessDriver {
  constructor(options: FirecrackerDriverOptions) {
    super(options, firecracker(options));
  }
}

function firecracker(options: FirecrackerDriverOptions): Hypervisor {
  return {
    name: "firecracker",
    log,
    socketName: "firecracker.sock",
    bootTimeoutMs: options.bootTimeoutMs ?? 20_000,
    recordFields: (socket) => ({ apiSocket: socket }),
    socketOf: (instance) => instance.apiSocket,
    command: (_spec, paths) => ({
      argv: [...(options.command ?? ["firecracker"]), "--api-sock", paths.socket],
      // Firecracker writes the guest's serial console to stdout and its own log to stderr.
      output: { stdout: paths.console, stderr: paths.output },
    }),
    launched: async (spec, paths, pid) => {
      await awaitApi(pid, paths, options.apiTimeoutMs ?? 5000);
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

/** The socket appears some milliseconds after spawn: poll `GET /` until it answers. */
async function awaitApi(pid: number, paths: VmPaths, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await firecrackerCall(paths.socket, "GET", "/", undefined, 1000);
      return;
    } catch {
      if (!(await isAlive(pid))) {
        throw new BootFailed("spawn", "firecracker exited", await consoleTails(paths, "firecracker"));
      }
      if (performance.now() >= deadline) {
        throw new BootTimeout("spawn", timeoutMs, await consoleTails(paths, "firecracker"));
      }
      await delay(20);
    }
  }
}

/** In the order ARCHITECTURE §5 gives: machine-config, boot-source, drives, network-interfaces. */
async function configure(spec: BootSpec, paths: VmPaths, options: FirecrackerDriverOptions): Promise<void> {
  await call(spec.vmId, paths, "configure", "PUT", "/machine-config", {
    vcpu_count: spec.vcpuCount,
    mem_size_mib: spec.memoryMb,
  });
  await call(spec.vmId, paths, "configure", "PUT", "/boot-source", {
    kernel_image_path: options.kernel,
    ...(options.initrd ? { initrd_path: options.initrd } : {}),
    boot_args: firecrackerBootArgs(spec),
  });
  if (options.rootfs) {
    await call(spec.vmId, paths, "configure", "PUT", "/drives/rootfs", {
      drive_id: "rootfs",
      path_on_host: options.rootfs,
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
