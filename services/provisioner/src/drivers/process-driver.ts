import { errorFields, type Logger } from "@mikrom/telemetry";
import type { GuestCgroups } from "./cgroup.ts";
import { ConsoleKeeper, readTail } from "./console-log.ts";
import {
  type AdoptResult,
  type BootOptions,
  BootSpec,
  DEFAULT_CONSOLE_BYTES,
  type Driver,
  type Instance,
  type InstanceStatus,
} from "./driver.ts";
import { BootFailed, InvalidInstance } from "./errors.ts";
import type { GuestFence } from "./guest-fence.ts";
import { awaitGuestReady } from "./guest-ready.ts";
import type { GuestUsers } from "./guest-users.ts";
import { KeyedLock } from "./keyed-lock.ts";
import { netnsCommand } from "./network.ts";
import { isAlive, spawnOrFail } from "./process.ts";
import { type VmPaths, vmPaths } from "./run-dir.ts";
import {
  adoptVm,
  type EndProcess,
  findVm,
  prepareVm,
  stopVm,
  supervisedStatus,
  teardownVm,
  writeRecord,
} from "./supervision.ts";

/**
 * What QEMU and Firecracker differ in: how the hypervisor is started and configured, how it is asked
 * its state and to end. ProcessDriver does the rest, which is the same for both (one copy, so that a
 * fix to adoption or teardown reaches both drivers).
 */
export interface Hypervisor {
  readonly name: "qemu" | "firecracker";
  readonly log: Logger;
  /** The control socket's file name in the VM's folder (QMP, or Firecracker's API). */
  readonly socketName: string;
  /** Spawn to readiness line. */
  readonly bootTimeoutMs: number;
  /** The record's fields of this hypervisor: its socket's path, and what else it notes. */
  recordFields(socket: string, vmId: string): Partial<Instance>;
  /** The control socket a record names; undefined when the record is not this hypervisor's. */
  socketOf(instance: Instance): string | undefined;
  /** Before the spawn, once the VM has its user: what the process needs in place (Firecracker's jail). */
  prepare?(spec: BootSpec, paths: VmPaths, guestUid?: number): Promise<void>;
  /**
   * The command line, and the files its stdout and stderr go to; `guestUid`: the user to run as;
   * `netns`: the namespace to run in, which the driver enters for it unless `joinsNetns` says the
   * command joins it itself (the jailer's --netns).
   */
  command(
    spec: BootSpec,
    paths: VmPaths,
    guestUid?: number,
    netns?: string,
  ): { argv: string[]; output: { stdout: string; stderr?: string }; joinsNetns?: boolean };
  /** Between the spawn and the guest's readiness line: configure and start the VM, if the hypervisor needs it. */
  launched(spec: BootSpec, paths: VmPaths, pid: number): Promise<void>;
  /** After the readiness line: a check that the hypervisor agrees the VM runs. */
  ready?(paths: VmPaths): Promise<void>;
  /** Ends the VM's process; `graceful` first asks the guest to shut down. */
  end(vmId: string): EndProcess;
  /** The hypervisor's own answer while the process is ours. */
  query(vm: Instance, socket: string): Promise<InstanceStatus>;
}

/** What every process driver is configured with. */
export interface ProcessDriverOptions {
  /** Folder for the VMs' sockets and logs (one sub-folder per VM). */
  runDir: string;
  /** The console file is trimmed to half when it passes this. */
  consoleMaxBytes?: number;
  /** Create each VM's tap (BootSpec.tap) on this bridge, and remove it on destroy. */
  bridge?: string;
  /** Run the hypervisor (and create taps) inside this network namespace. */
  netns?: string;
  /** Let each VM's tap send only from the VM's MAC and address (guest-fence.ts). */
  fence?: GuestFence;
  /** Confine each VM's hypervisor in a cgroup of its own with the VM's CPU and memory. */
  cgroups?: GuestCgroups;
  /** Run each VM's hypervisor as a user of its own (QEMU drops to it; Firecracker through its jailer). */
  guestUsers?: GuestUsers;
}

/**
 * A driver that runs each VM as a hypervisor process it supervises itself (see supervision.ts):
 * boots are serialized per VM, the run folder's record lets a restarted agent adopt or find the VM,
 * and the console is followed while the VM lives.
 */
export class ProcessDriver implements Driver {
  readonly name: Hypervisor["name"];
  readonly #options: ProcessDriverOptions;
  readonly #hypervisor: Hypervisor;
  readonly #keeper: ConsoleKeeper;
  readonly #lock = new KeyedLock();

  constructor(options: ProcessDriverOptions, hypervisor: Hypervisor) {
    this.name = hypervisor.name;
    this.#options = options;
    this.#hypervisor = hypervisor;
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
    const hypervisor = this.#hypervisor;
    const { log } = hypervisor;
    let paths: VmPaths;
    try {
      paths = vmPaths(this.#options.runDir, spec.vmId, hypervisor.socketName);
    } catch (error) {
      throw new BootFailed("prepare", (error as Error).message);
    }
    const netns = this.#options.netns;
    const { bridge, fence } = this.#options;
    const { tapOwned } = await prepareVm(spec, paths, { bridge, netns, fence });
    const spawnedAt = Date.now();
    // Durations from the monotonic clock: a wall clock set back during a boot must not make it negative.
    const spawnedAtMono = performance.now();
    let instance: Instance = {
      vmId: spec.vmId,
      driver: hypervisor.name,
      consoleLog: paths.console,
      runDir: paths.dir,
      ipAddress: spec.ipAddress,
      prefixLength: spec.prefixLength,
      ...(spec.tap ? { tap: spec.tap, tapOwned } : {}),
      ...(netns ? { netns } : {}),
      ...hypervisor.recordFields(paths.socket, spec.vmId),
      startedAt: new Date(spawnedAt).toISOString(),
    };
    // Everything from here is undone by the teardown below: the uid, the jail, the process, the folder.
    try {
      const guestUid = await this.#options.guestUsers?.take(spec.vmId);
      if (guestUid !== undefined) instance = { ...instance, guestUid };
      await hypervisor.prepare?.(spec, paths, guestUid);
      const { argv, output, joinsNetns } = hypervisor.command(spec, paths, guestUid, netns);
      const pid = spawnOrFail(joinsNetns ? argv : netnsCommand(netns, argv), output);
      instance = { ...instance, pid };
      // The record first: an agent that dies from here on finds the process, and its uid, again.
      await writeRecord(paths.dir, instance);
      await this.#options.cgroups?.confine(spec.vmId, pid, spec).catch(async (error: Error) => {
        // A hypervisor that ended at once cannot be moved: the readiness wait reports it, with its output.
        if (!(await isAlive(pid))) return;
        throw new BootFailed("spawn", `cannot confine the hypervisor in its cgroup: ${error.message}`);
      });
      await onSpawned?.(instance);
      await hypervisor.launched(spec, paths, pid);
      await awaitGuestReady({
        spec,
        pid,
        paths,
        timeoutMs: hypervisor.bootTimeoutMs,
        hypervisor: hypervisor.name,
        signal,
      });
      const bootMs = Math.round(performance.now() - spawnedAtMono);
      await hypervisor.ready?.(paths);
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

  async stop(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    const socket = this.#hypervisor.socketOf(vm);
    await this.#lock.run(vm.vmId, () => stopVm(vm, socket, this.#keeper, this.#hypervisor.end(vm.vmId)));
  }

  async destroy(instance: Instance): Promise<void> {
    const vm = this.#own(instance);
    await this.#lock.run(vm.vmId, () => this.#teardown(vm));
  }

  async #teardown(vm: Instance): Promise<void> {
    await teardownVm(
      vm,
      this.#hypervisor.socketOf(vm),
      this.#keeper,
      this.#hypervisor.end(vm.vmId),
      this.#options.fence,
    );
    await this.#options.cgroups?.release(vm.vmId);
    await this.#options.guestUsers?.release(vm.vmId);
  }

  /** Not serialized with boot and stop: the hypervisor answers a second client (QEMU queues it). */
  async status(instance: Instance): Promise<InstanceStatus> {
    const vm = this.#own(instance);
    return supervisedStatus(vm, this.#hypervisor.socketOf(vm), (socket) =>
      this.#hypervisor.query(vm, socket),
    );
  }

  async adopt(record: unknown): Promise<AdoptResult> {
    const adopted = await adoptVm(
      record,
      (instance) => this.#own(instance),
      (vm) => this.status(vm),
      this.#keeper,
    );
    const { instance, status } = adopted;
    this.#hypervisor.log.info({ vm_id: instance.vmId, pid: instance.pid, status }, "adopted");
    return adopted;
  }

  async find(vmId: string): Promise<AdoptResult | undefined> {
    return findVm(
      this.#options.runDir,
      vmId,
      this.#hypervisor.socketName,
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

  /** A record of another driver's (the host changed drivers) is not one this driver can act on. */
  #own(instance: Instance): Instance {
    if (instance.driver !== this.name || !this.#hypervisor.socketOf(instance)) {
      throw new InvalidInstance(`instance ${instance.vmId} belongs to the ${instance.driver} driver`);
    }
    return instance;
  }
}
