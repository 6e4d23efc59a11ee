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
import { BootFailed, InvalidInstance } from "../errors.ts";
import { awaitGuestReady, consoleTails } from "../guest-ready.ts";
import { KeyedLock } from "../keyed-lock.ts";
import { macFor, netnsCommand } from "../network.ts";
import { spawnOrFail, terminate, waitForExit } from "../process.ts";
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
import { type Accel, qemuArgv } from "./args.ts";
import type { Guest } from "./guest.ts";
import { qmpExecute } from "./qmp.ts";

const log = createLogger("mikrom.provisioner.driver.qemu");

export interface QemuDriverOptions {
  guest: Pick<Guest, "kernel" | "initramfs">;
  accel: Accel;
  /** Folder for the VMs' sockets and logs (one sub-folder per VM). */
  runDir: string;
  binary?: string;
  /** Spawn to readiness line. Default 60 s under TCG (ten guests on two cores take ~35 s), 20 s under KVM. */
  bootTimeoutMs?: number;
  /** How long `stop` waits for the guest to power off after the ACPI power button, before `quit`. */
  powerDownTimeoutMs?: number;
  /** The console file is trimmed to half when it passes this. */
  consoleMaxBytes?: number;
  /** Create each VM's tap (BootSpec.tap) on this bridge, and remove it on destroy. */
  bridge?: string;
  /** Run qemu (and create taps) inside this network namespace. */
  netns?: string;
  /** The host TSC rate in kHz for the guest's clock under TCG (see args.ts). */
  tscKhz?: number;
}

const QMP_SOCKET = "qmp.sock";

export class QemuDriver implements Driver {
  readonly name = "qemu" as const;
  readonly accel: Accel;
  readonly #options: QemuDriverOptions;
  readonly #binary: string;
  readonly #bootTimeoutMs: number;
  readonly #keeper: ConsoleKeeper;
  readonly #lock = new KeyedLock();

  constructor(options: QemuDriverOptions) {
    this.#options = options;
    this.accel = options.accel;
    this.#binary = options.binary ?? "qemu-system-x86_64";
    this.#bootTimeoutMs = options.bootTimeoutMs ?? (options.accel === "kvm" ? 20_000 : 60_000);
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
      paths = vmPaths(this.#options.runDir, spec.vmId, QMP_SOCKET);
    } catch (error) {
      throw new BootFailed("prepare", (error as Error).message);
    }
    const netns = this.#options.netns;
    const { tapOwned } = await prepareVm(spec, paths, { bridge: this.#options.bridge, netns });

    const argv = qemuArgv({
      binary: this.#binary,
      accel: this.accel,
      kernel: this.#options.guest.kernel,
      initramfs: this.#options.guest.initramfs,
      ...spec,
      consoleLog: paths.console,
      qmpSocket: paths.socket,
      mac: macFor(spec.vmId),
      tap: spec.tap,
      tscKhz: this.#options.tscKhz,
    });
    const spawnedAt = Date.now();
    // Durations from the monotonic clock: a wall clock set back during a boot must not make it negative.
    const spawnedAtMono = performance.now();
    let instance: Instance = {
      vmId: spec.vmId,
      driver: "qemu",
      qmpSocket: paths.socket,
      consoleLog: paths.console,
      runDir: paths.dir,
      ipAddress: spec.ipAddress,
      prefixLength: spec.prefixLength,
      ...(spec.tap ? { tap: spec.tap, tapOwned } : {}),
      ...(netns ? { netns } : {}),
      accel: this.accel,
      startedAt: new Date(spawnedAt).toISOString(),
    };
    try {
      const pid = spawnOrFail(netnsCommand(netns, argv), { stdout: paths.output });
      instance = { ...instance, pid };
      await writeRecord(paths.dir, instance);
      await onSpawned?.(instance);
      log.info({ vm_id: spec.vmId, pid, accel: this.accel }, "qemu started, waiting for the guest");
      await awaitGuestReady({
        spec,
        pid,
        paths,
        timeoutMs: this.#bootTimeoutMs,
        hypervisor: "qemu",
        signal,
      });
      const bootMs = Math.round(performance.now() - spawnedAtMono);
      await this.#expectRunning(paths);
      instance = { ...instance, bootMs };
      await writeRecord(paths.dir, instance);
      this.#keeper.watch(paths.console);
      log.info({ vm_id: spec.vmId, pid, boot_ms: bootMs, ip: spec.ipAddress }, "guest ready");
      return instance;
    } catch (error) {
      await this.#teardown(instance).catch((cleanup) =>
        log.warn({ vm_id: spec.vmId, ...errorFields(cleanup) }, "cleanup after a failed boot failed"),
      );
      throw error;
    }
  }

  async #expectRunning(paths: VmPaths): Promise<void> {
    try {
      const status = (await qmpExecute(paths.socket, "query-status")) as { status?: string };
      if (status.status !== "running") throw new Error(`QMP says ${status.status}`);
    } catch (error) {
      throw new BootFailed("control", (error as Error).message, await consoleTails(paths, "qemu"));
    }
  }

  async stop(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => stopVm(vm, vm.qmpSocket, this.#keeper, this.#end));
  }

  /** ACPI power button (the guest powers off), then QMP quit, then signals. */
  readonly #end: EndProcess = async (pid, socket, graceful) => {
    if (graceful) {
      const pressed = await qmpExecute(socket, "system_powerdown").then(
        () => true,
        () => false,
      );
      if (pressed && (await waitForExit(pid, this.#options.powerDownTimeoutMs ?? 5000))) return;
    }
    const quit = await qmpExecute(socket, "quit", undefined, { closeIsSuccess: true, timeoutMs: 2000 }).then(
      () => true,
      () => false,
    );
    if (quit && (await waitForExit(pid, 2000))) return;
    await terminate(pid);
  };

  async destroy(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => this.#teardown(vm));
  }

  async #teardown(vm: Instance): Promise<void> {
    await teardownVm(vm, vm.qmpSocket, this.#keeper, this.#end);
  }

  /** Not serialized with boot and stop: QEMU queues a second monitor client until the first leaves. */
  async status(instance: Instance): Promise<InstanceStatus> {
    const vm = this.#own(instance);
    return supervisedStatus(vm, vm.qmpSocket, async (socket) => {
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
      QMP_SOCKET,
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
    if (instance.driver !== "qemu" || !instance.qmpSocket) {
      throw new InvalidInstance(`instance ${instance.vmId} belongs to the ${instance.driver} driver`);
    }
    return instance;
  }
}
