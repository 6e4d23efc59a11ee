import { readFile, rm, writeFile } from "node:fs/promises";
import { createLogger, errorFields } from "@mikrom/telemetry";
import { ConsoleKeeper, readTail } from "../console-log.ts";
import {
  type AdoptResult,
  type BootOptions,
  BootSpec,
  DEFAULT_CONSOLE_BYTES,
  type Driver,
  Instance,
  type InstanceStatus,
} from "../driver.ts";
import { BootFailed, InvalidInstance } from "../errors.ts";
import { awaitGuestReady, consoleTails } from "../guest-ready.ts";
import { KeyedLock } from "../keyed-lock.ts";
import { createTap, macFor, netnsCommand, removeTap } from "../network.ts";
import { isAlive, isOurProcess, spawnOrFail, terminate, waitForExit } from "../process.ts";
import { ensureDir, type VmPaths, vmPaths } from "../run-dir.ts";
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
const RECORD = "instance.json";

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
    await this.#refuseIfRunning(paths);
    await ensureDir(paths.dir);
    await Promise.all(
      [paths.console, paths.output, paths.socket, paths.stoppedMarker].map((p) => rm(p, { force: true })),
    );

    const netns = this.#options.netns;
    const tapOwned = Boolean(spec.tap && this.#options.bridge);
    if (spec.tap && this.#options.bridge) {
      try {
        await createTap({ name: spec.tap, bridge: this.#options.bridge, ...(netns ? { netns } : {}) });
      } catch (error) {
        await rm(paths.dir, { recursive: true, force: true });
        throw new BootFailed("network", (error as Error).message);
      }
    }

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
      await writeFile(`${paths.dir}/${RECORD}`, JSON.stringify(instance));
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
      const bootMs = Date.now() - spawnedAt;
      await this.#expectRunning(paths);
      instance = { ...instance, bootMs };
      await writeFile(`${paths.dir}/${RECORD}`, JSON.stringify(instance));
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

  async #refuseIfRunning(paths: VmPaths): Promise<void> {
    const previous = await readRecord(`${paths.dir}/${RECORD}`);
    if (previous?.pid && (await isOurProcess(previous.pid, paths.socket))) {
      throw new BootFailed("prepare", `VM ${previous.vmId} already runs (pid ${previous.pid})`);
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
    await this.#lock.run(vm.vmId, () => this.#stop(vm, true));
  }

  async #stop(vm: Instance, graceful: boolean): Promise<void> {
    this.#keeper.unwatch(vm.consoleLog);
    if (vm.pid && (await isOurProcess(vm.pid, vm.qmpSocket!))) {
      await this.#end(vm.pid, vm.qmpSocket!, graceful);
    }
    await writeFile(`${vm.runDir}/stopped`, new Date().toISOString()).catch(() => {});
  }

  /** ACPI power button (the guest powers off), then QMP quit, then signals. */
  async #end(pid: number, socket: string, graceful: boolean): Promise<void> {
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
  }

  async destroy(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => this.#teardown(vm));
  }

  async #teardown(vm: Instance): Promise<void> {
    this.#keeper.unwatch(vm.consoleLog);
    if (vm.pid && vm.qmpSocket && (await isOurProcess(vm.pid, vm.qmpSocket))) {
      await this.#end(vm.pid, vm.qmpSocket, false);
    }
    if (vm.tap && vm.tapOwned) await removeTap({ name: vm.tap, ...(vm.netns ? { netns: vm.netns } : {}) });
    await rm(vm.runDir, { recursive: true, force: true });
  }

  /** Not serialized with boot and stop: QEMU queues a second monitor client until the first leaves. */
  async status(instance: Instance): Promise<InstanceStatus> {
    const vm = this.#own(instance);
    if (vm.pid && vm.qmpSocket && (await isOurProcess(vm.pid, vm.qmpSocket))) {
      try {
        const status = (await qmpExecute(vm.qmpSocket, "query-status", undefined, { timeoutMs: 2000 })) as {
          status?: string;
        };
        return status.status === "running" ? "running" : "stopped";
      } catch (error) {
        // The process is there even if its monitor does not answer: it still holds the VM.
        log.warn({ vm_id: vm.vmId, pid: vm.pid, ...errorFields(error) }, "QMP does not answer");
        return "running";
      }
    }
    const stopped = await readFile(`${vm.runDir}/stopped`).then(
      () => true,
      () => false,
    );
    return stopped ? "stopped" : "gone";
  }

  async adopt(record: unknown): Promise<AdoptResult> {
    const parsed = Instance.safeParse(record);
    if (!parsed.success) throw new InvalidInstance(`not an instance record: ${parsed.error.message}`);
    const vm = this.#own(parsed.data);
    const status = await this.status(vm);
    if (vm.pid && (await isAlive(vm.pid)) && status !== "gone") this.#keeper.watch(vm.consoleLog);
    log.info({ vm_id: vm.vmId, pid: vm.pid, status }, "adopted");
    return { status, instance: vm };
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

async function readRecord(path: string): Promise<Instance | undefined> {
  try {
    const parsed = Instance.safeParse(JSON.parse(await readFile(path, "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
