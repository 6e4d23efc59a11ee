import { DriverName } from "@mikrom/contracts";
import { z } from "zod";

export { DriverName };

/** What the agent asks for: the VM's size and the address the IP pool gave it. */
export const BootSpec = z.object({
  /** Goes on the guest's kernel command line and into paths: keep it to a safe alphabet. */
  vmId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, '-' and '_' only (at most 64)"),
  vcpuCount: z.int().min(1).max(32),
  memoryMb: z.int().min(64).max(32768),
  ipAddress: z.ipv4(),
  prefixLength: z.int().min(1).max(32),
  gateway: z.ipv4().optional(),
  /**
   * Host tap device for the guest's network. When the driver was given a bridge it creates the
   * tap on it (and removes it on destroy); otherwise the tap must exist already. Without a tap
   * the guest still gets eth0 and its address, on a network that reaches nothing.
   */
  tap: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,15}$/, "a Linux interface name (at most 15 characters)")
    .optional(),
});
export type BootSpec = z.infer<typeof BootSpec>;

/**
 * Everything needed to find a VM again: the agent stores this record and hands it back to
 * `adopt` after its own restart. Plain JSON, no handles.
 */
export const Instance = z.object({
  vmId: z.string(),
  driver: DriverName,
  pid: z.int().positive().optional(),
  /** qemu: the QMP socket. */
  qmpSocket: z.string().optional(),
  /** firecracker: the API socket. */
  apiSocket: z.string().optional(),
  consoleLog: z.string(),
  /** Folder holding the VM's sockets and logs; destroy removes it. */
  runDir: z.string(),
  ipAddress: z.ipv4(),
  prefixLength: z.int(),
  tap: z.string().optional(),
  /** The tap was created by the driver, so destroy removes it. */
  tapOwned: z.boolean().optional(),
  /** Network namespace the hypervisor runs in (tests), if any. */
  netns: z.string().optional(),
  /** qemu: how the CPU is run. */
  accel: z.enum(["kvm", "tcg"]).optional(),
  /** The uid (and gid) the hypervisor runs as, the VM's own (guest-users.ts), if it has one. */
  guestUid: z.int().positive().optional(),
  /**
   * firecracker under the jailer: the VM's folder under the chroot base (its chroot is `root/`
   * inside), removed once the process has ended.
   */
  jailDir: z.string().optional(),
  startedAt: z.iso.datetime(),
  /**
   * Milliseconds from spawn to the guest's readiness line. Set only once the guest reported ready:
   * a record without it whose process still runs is a boot cut short (the agent died waiting).
   */
  bootMs: z.number().nonnegative().optional(),
});
export type Instance = z.infer<typeof Instance>;

/**
 * - `running`: the hypervisor process lives and the VM runs.
 * - `stopped`: the VM does not run but was stopped on purpose (paused, or ended by `stop`).
 * - `gone`: no process and no record of a stop: the VM was lost (or destroyed).
 */
export type InstanceStatus = "running" | "stopped" | "gone";

export interface AdoptResult {
  status: InstanceStatus;
  instance: Instance;
}

export interface BootOptions {
  /** Aborting kills the half-booted VM and rejects with the abort reason. */
  signal?: AbortSignal;
  /**
   * Called once the hypervisor process exists, before the guest is ready, with the record as it
   * stands (pid, sockets): the agent stores it so that a boot cut short by its own crash can be
   * cleaned up. A throw fails the boot (the half-booted VM is torn down, the error passed on).
   */
  onSpawned?: (instance: Instance) => Promise<void> | void;
}

/** What the agent calls. Implementations: qemu, firecracker, fake. */
export interface Driver {
  readonly name: DriverName;
  /** Starts the VM and resolves once the guest reported ready with its address; cleans up on failure. */
  boot(spec: BootSpec, options?: BootOptions): Promise<Instance>;
  /** Ends the VM (power-down, then harder); keeps its console and run folder. Idempotent. */
  stop(instance: Instance): Promise<void>;
  /** Stops if needed and removes everything: process, sockets, logs, tap. Idempotent. */
  destroy(instance: Instance): Promise<void>;
  status(instance: Instance): Promise<InstanceStatus>;
  /** Re-attaches to a VM from a stored record (after an agent restart) and says whether it still runs. */
  adopt(record: unknown): Promise<AdoptResult>;
  /**
   * What the driver has for the VM now, read from the VM's own run folder whatever the agent's store
   * says (the agent may have died between a boot and its record): undefined when it has nothing. A
   * VM found running is re-attached, as by `adopt`.
   */
  find(vmId: string): Promise<AdoptResult | undefined>;
  /** The last `maxBytes` of the VM's console output. */
  console(instance: Instance, maxBytes?: number): Promise<string>;
  /** Releases the driver's own resources (timers); running VMs are left running. */
  close(): Promise<void>;
}

export const DEFAULT_CONSOLE_BYTES = 16 * 1024;
