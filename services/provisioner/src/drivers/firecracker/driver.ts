import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { ConsoleKeeper, readTail } from "../console-log.ts";
import {
  type AdoptResult,
  type BootOptions,
  BootSpec,
  DEFAULT_CONSOLE_BYTES,
  type Driver,
  type Instance,
  type InstanceStatus,
} from "../driver.ts";
import { BootFailed, type BootStep, BootTimeout, InvalidInstance } from "../errors.ts";
import { awaitGuestReady, consoleTails } from "../guest-ready.ts";
import { KeyedLock } from "../keyed-lock.ts";
import { macFor, netnsCommand } from "../network.ts";
import { isAlive, spawnOrFail, terminate, waitForExit } from "../process.ts";
import { type VmPaths, vmPaths } from "../run-dir.ts";
import {
  adoptVm,
  type EndProcess,
  findVm,
  prepareVm,
  stopVm,
  supervisedStatus,
  teardownVm,
  writeRecord,
} from "../supervision.ts";
import { FirecrackerApiError, firecrackerCall, loggedFirecrackerCall } from "./api.ts";
import { firecrackerBootArgs } from "./boot-args.ts";

const log = createLogger("mikrom.provisioner.driver.firecracker");

export interface FirecrackerDriverOptions {
  runDir: string;
  /** Uncompressed ELF kernel (guest/build.sh's vmlinux). */
  kernel: string;
  initrd?: string;
  /** Root filesystem image, attached read-only as drive `rootfs`. */
  rootfs?: string;
  /**
   * The command that starts Firecracker; the driver appends `--api-sock <path>`. Default
   * ["firecracker"]. This is the test seam: tests pass [node, fake-cli.ts] to run the fake
   * Firecracker (spec-validating API server) as the process.
   */
  command?: readonly string[];
  /** Spawn to readiness line. Default 20 s. */
  bootTimeoutMs?: number;
  /** How long the API socket may take to answer after spawn. Default 5 s. */
  apiTimeoutMs?: number;
  /** How long `stop` waits for the process to end after SendCtrlAltDel. Default 5 s. */
  shutdownTimeoutMs?: number;
  consoleMaxBytes?: number;
  bridge?: string;
  netns?: string;
}

const API_SOCKET = "firecracker.sock";

/**
 * Firecracker through its REST API on a unix socket (ARCHITECTURE §5): machine-config,
 * boot-source, drives, network-interfaces, then InstanceStart (once). Firecracker has no stop
 * action and no event stream: stop is SendCtrlAltDel (the guest reboots, which ends Firecracker)
 * and then the process is ended; the driver supervises the process itself. The guest's address
 * goes on the kernel command line (`ip=` and mikrom.ip=).
 */
export class FirecrackerDriver implements Driver {
  readonly name = "firecracker" as const;
  readonly #options: FirecrackerDriverOptions;
  readonly #keeper: ConsoleKeeper;
  readonly #lock = new KeyedLock();

  constructor(options: FirecrackerDriverOptions) {
    this.#options = options;
    this.#keeper = new ConsoleKeeper(options.consoleMaxBytes ?? 256 * 1024);
  }

  async boot(input: BootSpec, options: BootOptions = {}): Promise<Instance> {
    const parsed = BootSpec.safeParse(input);
    if (!parsed.success) throw new BootFailed("prepare", `invalid boot spec: ${parsed.error.message}`);
    const spec = parsed.data;
    return this.#lock.run(spec.vmId, () => this.#boot(spec, options.signal, options.onSpawned));
  }

  async #boot(
    spec: BootSpec,
    signal: AbortSignal | undefined,
    onSpawned: BootOptions["onSpawned"],
  ): Promise<Instance> {
    let paths: VmPaths;
    try {
      paths = vmPaths(this.#options.runDir, spec.vmId, API_SOCKET);
    } catch (error) {
      throw new BootFailed("prepare", (error as Error).message);
    }
    const netns = this.#options.netns;
    const { tapOwned } = await prepareVm(spec, paths, { bridge: this.#options.bridge, netns });
    const spawnedAt = Date.now();
    // Durations from the monotonic clock: a wall clock set back during a boot must not make it negative.
    const spawnedAtMono = performance.now();
    let instance: Instance = {
      vmId: spec.vmId,
      driver: "firecracker",
      apiSocket: paths.socket,
      consoleLog: paths.console,
      runDir: paths.dir,
      ipAddress: spec.ipAddress,
      prefixLength: spec.prefixLength,
      ...(spec.tap ? { tap: spec.tap, tapOwned } : {}),
      ...(netns ? { netns } : {}),
      startedAt: new Date(spawnedAt).toISOString(),
    };
    try {
      const command = [...(this.#options.command ?? ["firecracker"]), "--api-sock", paths.socket];
      // Firecracker writes the guest's serial console to stdout and its own log to stderr.
      const pid = spawnOrFail(netnsCommand(netns, command), { stdout: paths.console, stderr: paths.output });
      instance = { ...instance, pid };
      await writeRecord(paths.dir, instance);
      await onSpawned?.(instance);
      await this.#awaitApi(pid, paths);
      await this.#configure(spec, paths);
      await this.#call(spec.vmId, paths, "start", "PUT", "/actions", { action_type: "InstanceStart" });
      log.info({ vm_id: spec.vmId, pid }, "firecracker started the VM, waiting for the guest");
      await awaitGuestReady({
        spec,
        pid,
        paths,
        timeoutMs: this.#options.bootTimeoutMs ?? 20_000,
        hypervisor: "firecracker",
        signal,
      });
      instance = { ...instance, bootMs: Math.round(performance.now() - spawnedAtMono) };
      await writeRecord(paths.dir, instance);
      this.#keeper.watch(paths.console);
      log.info({ vm_id: spec.vmId, pid, boot_ms: instance.bootMs, ip: spec.ipAddress }, "guest ready");
      return instance;
    } catch (error) {
      await this.#teardown(instance).catch((cleanup) =>
        log.warn({ vm_id: spec.vmId, ...errorFields(cleanup) }, "cleanup after a failed boot failed"),
      );
      throw error;
    }
  }

  /** The socket appears some milliseconds after spawn: poll `GET /` until it answers. */
  async #awaitApi(pid: number, paths: VmPaths): Promise<void> {
    const timeoutMs = this.#options.apiTimeoutMs ?? 5000;
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
  async #configure(spec: BootSpec, paths: VmPaths): Promise<void> {
    await this.#call(spec.vmId, paths, "configure", "PUT", "/machine-config", {
      vcpu_count: spec.vcpuCount,
      mem_size_mib: spec.memoryMb,
    });
    await this.#call(spec.vmId, paths, "configure", "PUT", "/boot-source", {
      kernel_image_path: this.#options.kernel,
      ...(this.#options.initrd ? { initrd_path: this.#options.initrd } : {}),
      boot_args: firecrackerBootArgs(spec),
    });
    if (this.#options.rootfs) {
      await this.#call(spec.vmId, paths, "configure", "PUT", "/drives/rootfs", {
        drive_id: "rootfs",
        path_on_host: this.#options.rootfs,
        is_root_device: true,
        is_read_only: true,
      });
    }
    if (spec.tap) {
      await this.#call(spec.vmId, paths, "configure", "PUT", "/network-interfaces/eth0", {
        iface_id: "eth0",
        host_dev_name: spec.tap,
        guest_mac: macFor(spec.vmId),
      });
    }
  }

  async #call(
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
        error instanceof FirecrackerApiError
          ? error.message
          : `${method} ${path}: ${(error as Error).message}`;
      throw new BootFailed(step, reason, await consoleTails(paths, "firecracker"));
    }
  }

  async stop(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => stopVm(vm, vm.apiSocket, this.#keeper, this.#endOf(vm.vmId)));
  }

  /** SendCtrlAltDel (the guest reboots and Firecracker exits), then signals. */
  #endOf(vmId: string): EndProcess {
    return async (pid, socket, graceful) => {
      if (graceful) {
        const action = { action_type: "SendCtrlAltDel" };
        const sent = await loggedFirecrackerCall(vmId, socket, "PUT", "/actions", action).then(
          () => true,
          () => false,
        );
        if (sent && (await waitForExit(pid, this.#options.shutdownTimeoutMs ?? 5000))) {
          log.info({ vm_id: vmId, pid, ended_by: "SendCtrlAltDel" }, "firecracker ended");
          return;
        }
      }
      await terminate(pid);
      log.info({ vm_id: vmId, pid, ended_by: "signal" }, "firecracker ended");
    };
  }

  async destroy(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => this.#teardown(vm));
  }

  async #teardown(vm: Instance): Promise<void> {
    await teardownVm(vm, vm.apiSocket, this.#keeper, this.#endOf(vm.vmId));
  }

  async status(instance: Instance): Promise<InstanceStatus> {
    const vm = this.#own(instance);
    return supervisedStatus(vm, vm.apiSocket, async (socket) => {
      try {
        const info = (await firecrackerCall(socket, "GET", "/", undefined, 2000)) as { state?: string };
        return info.state === "Running" ? "running" : "stopped";
      } catch (error) {
        log.warn({ vm_id: vm.vmId, pid: vm.pid, ...errorFields(error) }, "Firecracker API does not answer");
        return "running";
      }
    });
  }

  async adopt(record: unknown): Promise<AdoptResult> {
    const adopted = await adoptVm(
      record,
      (instance) => this.#own(instance),
      (vm) => this.status(vm),
      this.#keeper,
    );
    log.info({ vm_id: adopted.instance.vmId, pid: adopted.instance.pid, status: adopted.status }, "adopted");
    return adopted;
  }

  async find(vmId: string): Promise<AdoptResult | undefined> {
    return findVm(
      this.#options.runDir,
      vmId,
      API_SOCKET,
      (instance) => this.#own(instance),
      (vm) => this.status(vm),
      this.#keeper,
    );
  }

  async console(instance: Instance, maxBytes = DEFAULT_CONSOLE_BYTES): Promise<string> {
    return readTail(this.#own(instance).consoleLog, maxBytes);
  }

  async close(): Promise<void> {
    this.#keeper.close();
  }

  #own(instance: Instance): Instance {
    if (instance.driver !== "firecracker" || !instance.apiSocket) {
      throw new InvalidInstance(`instance ${instance.vmId} belongs to the ${instance.driver} driver`);
    }
    return instance;
  }
}
